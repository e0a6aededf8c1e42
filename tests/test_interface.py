"""The engine's written model interface (toy.setup's Protocols) and the models and factories
that implement it cannot drift apart: each defines every required member, callable as the
engine calls it, and the engine calls no member that is not written down."""
import ast
import inspect
import os

import pytest
from flax import nnx

from toy import mechanism, mechanism_io, setup
from toy.convert import PythiaTask, pythia_factory
from toy.mechanism import ToyMechanism
from toy.model import Transformer
from toy.setup import OPTIONAL_DEFAULTS, ModelFactory, OptionalMembers, TrainableModel

# Which optional members each model defines: adding or dropping one changes what trains.
MODELS = {Transformer: {"frozen_in", "own_rate"},
          ToyMechanism: {"frozen_in", "always_frozen"},
          PythiaTask: set()}
FACTORIES = {"build_model": setup.build_model, "mechanism.build_toy": mechanism.build_toy,
             "mechanism_io.build_toy": mechanism_io.build_toy,
             "shared_gate_toy": mechanism.shared_gate_toy(0.5),
             "pythia_factory": pythia_factory("unread", [0, 1, 2])}  # reads at its first call
ENGINE = ("setup", "engine", "optim", "phases", "io")


def _members(protocol) -> set[str]:
  return {n for n, v in vars(protocol).items()
          if callable(v) and (n == "__call__" or not n.startswith("_"))}


def _params(fn, drop_self: bool) -> list[inspect.Parameter]:
  params = list(inspect.signature(fn).parameters.values())
  return params[1:] if drop_self else params


def _assert_fits(impl, spec, what: str, impl_is_method: bool = True):
  """``impl`` takes ``spec``'s parameters first, by the same names and in the same order
  (the engine passes them by position), and any more only with defaults."""
  want = [p.name for p in _params(spec, drop_self=True)]
  have = _params(impl, drop_self=impl_is_method)
  if any(p.kind == p.VAR_POSITIONAL for p in have):
    return
  assert [p.name for p in have[:len(want)]] == want, f"{what}: {have} for {want}"
  extra = [p for p in have[len(want):] if p.default is p.empty and p.kind != p.VAR_KEYWORD]
  assert not extra, f"{what}: parameters without defaults beyond {want}: {extra}"


def test_the_protocols_members():
  assert _members(TrainableModel) == {"__call__", "phase2_frozen"}
  assert _members(OptionalMembers) == set(OPTIONAL_DEFAULTS)
  assert _members(ModelFactory) == {"__call__"}


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_each_model_implements_the_required_members(model):
  for name in _members(TrainableModel):
    assert getattr(model, name) is not getattr(nnx.Module, name, None), \
        f"{model.__name__} lacks {name}"
    _assert_fits(getattr(model, name), getattr(TrainableModel, name), f"{model.__name__}.{name}")
  assert "toy.setup.TrainableModel" in " ".join(model.__doc__.split())


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_each_models_optional_members_fit(model):
  assert {n for n in OPTIONAL_DEFAULTS if hasattr(model, n)} == MODELS[model]
  for name in MODELS[model]:
    _assert_fits(getattr(model, name), getattr(OptionalMembers, name), f"{model.__name__}.{name}")


def test_the_defaults_fit_the_optional_members():
  for name, default in OPTIONAL_DEFAULTS.items():
    _assert_fits(default, getattr(OptionalMembers, name), f"default {name}",
                 impl_is_method=False)
    n_args = len(_params(default, drop_self=False))
    assert default(*["pretrain", ("embed", "embedding")][-n_args:]) is False


@pytest.mark.parametrize("name", FACTORIES)
def test_each_factory_fits(name):
  _assert_fits(FACTORIES[name], ModelFactory.__call__, name, impl_is_method=False)


def _model_members_called(path: str) -> set[str]:
  """Members read off a variable named model or model0: ``model.x`` and ``getattr(model,
  "x", ...)``."""
  with open(path) as f:
    tree = ast.parse(f.read(), path)
  is_model = lambda node: isinstance(node, ast.Name) and node.id in ("model", "model0")
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Attribute) and is_model(node.value):
      found.add(node.attr)
    elif (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "getattr"
          and is_model(node.args[0]) and isinstance(node.args[1], ast.Constant)):
      found.add(node.args[1].value)
  return found


def test_the_engine_calls_only_written_members():
  toy_dir = os.path.dirname(setup.__file__)
  called = {m: _model_members_called(os.path.join(toy_dir, f"{m}.py")) for m in ENGINE}
  written = _members(TrainableModel) | _members(OptionalMembers)
  assert {(m, n) for m, names in called.items() for n in names if n not in written} == set()
  assert called["optim"] == {"phase2_frozen"} | set(OPTIONAL_DEFAULTS)
