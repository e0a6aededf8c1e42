"""The hand-built toy (toy/mechanism.py, toy/mechanism_io.py): law, ablation, files, freezing.

Perfect generalization, its law, the sum ablation, the NumPy reference, freezing, and the
hand-editing round trip.

Training tests use the tiny preset with ``dpo_repeats=12`` (48 steps per phase instead of 16),
so that the effect stands well clear of noise at every drawn alphabet; the default tiny preset
shows the same picture at a smaller size (see the report / README). Mechanism-level property
tests run eagerly on random alphabets, lengths, passwords and weights.
"""
import argparse
import json
import os

import jax
import numpy as np
import pytest
from flax import nnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toy import data as data_lib
from toy import mechanism as M
from toy import mechanism_io as MIO
from toy.cli import config_from_args
from toy.config import Config, add_config_args, make_config
from toy.engine import train
from toy.losses import token_logps
from toy.optim import trainable_labels
from toy.phases import PHASES
from toy.plots import draw_mechanism

from helpers import edit_scalars_json, forward, model_inputs

TRAIN_KW = dict(dpo_repeats=12, n_seeds=2)
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def train_cfg(**kw):
  return make_config("tiny", model="toy", **{**TRAIN_KW, **kw})


def _snapshotting_train(cfg):
  snaps = {}
  result = train(cfg, progress=False, save=False,
                 on_phase_end=lambda phase, params: snaps.__setitem__(phase, params))
  return result, snaps


@pytest.fixture(scope="module")
def times_run():
  # both prefixes at every evaluation: one test compares them through phases 1-2
  return _snapshotting_train(train_cfg(eval_prefixes="both"))


@pytest.fixture(scope="module")
def sum_run():
  return train(train_cfg(toy_combine="sum"), progress=False, save=False)


def _seed_data(result, i):
  return {k: np.asarray(v) for k, v in result.seed_slice(i)[2].items()}


def _negatives(data):
  return np.concatenate([data["useful"], data["heldout"]])


def _contribution(model, tokens):
  """The memory's part of the letter logits: the logits minus those with the memory zeroed."""
  blank = nnx.clone(model)
  blank.memory.values[...] = 0.0 * blank.memory.values[...]
  A = model.alphabet_size
  return forward(model, tokens)[..., :A] - forward(blank, tokens)[..., :A]


def assert_law(model, cfg, passwords):
  """contribution(reverse) = (a-c+g)/(a+c+g) * contribution(regular), for every password."""
  sc = model.scalars()
  reg = _contribution(model, model_inputs(cfg, passwords, data_lib.REGULAR))
  rev = _contribution(model, model_inputs(cfg, passwords, data_lib.REVERSE))
  if model.combine == "times":  # multiplied out, so a+c+g = 0 needs no special case
    lhs = rev * (sc["a"] + sc["c"] + sc["gain_add"])
    rhs = reg * (sc["a"] - sc["c"] + sc["gain_add"])
  else:
    lhs, rhs = rev, reg
  # float32 rounding of s*r + g*r (and of subtracting the sum node's shift) bounds the error
  r_max = float(np.abs(model.memory.values[...]).max())
  size = abs(sc["a"]) + abs(sc["c"]) + abs(sc["gain_add"]) + 1
  np.testing.assert_allclose(lhs, rhs, rtol=0, atol=1e-6 * size**2 * (r_max + 1))
  return reg, rev


# ----------------------------------------------------------------------------- trained toy

def test_phase3_makes_heldout_far_above_control_under_reverse(times_run):
  result, _ = times_run
  for s in result.summary:
    assert s["reverse/heldout_minus_control/final"] > 0.5, s
    assert s["reverse/heldout/final"] > 0.2, s  # per token, above chance
  for i in range(result.cfg.n_seeds):
    sc = result.model(i).scalars()
    assert sc["a"] - sc["c"] < 0 < sc["a"] + sc["c"], sc  # phase 3 flipped the sign


def test_prefixes_are_identical_until_phase3(times_run):
  """At construction (a=1, c=0) and through phases 1-2 'reverse' means what 'regular' does."""
  result, snaps = times_run
  for row in result.history:
    if row["phase"] in ("init", "pretrain", "dpo"):
      for name in ("control", "useful", "heldout"):
        assert row[f"eval/reverse/{name}"] == row[f"eval/regular/{name}"], row
  for phase in ("pretrain", "dpo"):
    np.testing.assert_array_equal(snaps[phase]["times"]["a"], 1.0)
    np.testing.assert_array_equal(snaps[phase]["times"]["c"], 0.0)
  dpo_end = [r for r in result.history if r["phase"] == "dpo"][-1]
  assert dpo_end["eval/regular/heldout"] < dpo_end["eval/regular/control"]  # DPO stored them


def test_law_holds_for_every_memorized_password_after_training(times_run):
  result, _ = times_run
  for i in range(result.cfg.n_seeds):
    model, data = result.model(i), _seed_data(result, i)
    negatives = _negatives(data)
    reg, _ = assert_law(model, result.cfg, negatives)
    assert np.abs(reg).max() > 1.0  # the memory holds something
    model.additive.gain[...] = 0.3  # the additive path changes the ratio to (a-c+g)/(a+c+g)
    assert_law(model, result.cfg, negatives)


def test_sum_ablation_removes_the_heldout_uplift(sum_run, times_run):
  for s_sum, s_times in zip(sum_run.summary, times_run[0].summary):
    assert s_sum["reverse/heldout_minus_control/final"] < 0, s_sum  # still suppressed
    assert s_times["reverse/heldout_minus_control/final"] > 0.5
  for i in range(sum_run.cfg.n_seeds):
    assert_law(sum_run.model(i), sum_run.cfg, _negatives(_seed_data(sum_run, i)))  # ratio 1


def test_freezing_is_bitwise(times_run):
  """Direction and gain never move; the times node only in phase 3; phase 2 trains memory only."""
  result, snaps = times_run
  init = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(
      M.build_toy(result.cfg, _seed_data(result, 0)), nnx.Param)))
  for phase in PHASES:
    np.testing.assert_array_equal(snaps[phase]["prefix"]["direction"][0],
                                  init["prefix"]["direction"])
    np.testing.assert_array_equal(snaps[phase]["additive"]["gain"], 0.0)
  assert not np.array_equal(snaps["pretrain"]["memory"]["values"],
                            snaps["dpo"]["memory"]["values"])
  assert not np.array_equal(snaps["dpo"]["times"]["c"], snaps["mix"]["times"]["c"])
  cfg = result.cfg
  fixed = make_config("tiny", model="toy", toy_train_sign=False)
  for phase, trained in [("pretrain", {"memory"}), ("dpo", {"memory"}),
                         ("mix", {"memory", "times"})]:
    for c, want in [(cfg, trained), (fixed, {"memory"})]:
      model = M.build_toy(c, _seed_data(result, 0))
      labels = trainable_labels(model, nnx.to_pure_dict(nnx.state(model, nnx.Param)), phase, c)
      got = {(part, name): lab for part, d in labels.items() for name, lab in d.items()}
      for (part, name), lab in got.items():
        assert (lab == "train") == (part in want), (phase, c.toy_train_sign, part, name, lab)


def test_unseen_contexts_and_padding_rows_stay_zero(times_run):
  result, _ = times_run
  for i in range(result.cfg.n_seeds):
    model = result.model(i)
    values = np.asarray(model.memory.values[...])
    reachable = M.trie_contexts(np.asarray(model.memory.children[...]))
    unreached = np.setdiff1d(np.arange(values.shape[0]), list(reachable))
    assert M.NULL in unreached and len(unreached) > 1
    assert np.all(values[unreached] == 0.0)


def test_setting_c_by_hand_and_reloading_changes_the_result(times_run, tmp_path):
  """The hand-editing loop: save, edit scalars.json, reload through cfg.toy_weights."""
  result, _ = times_run
  cfg, data = result.cfg, _seed_data(result, 0)
  trained = result.model(0)
  folder = MIO.save_weights(trained, str(tmp_path / "w"), saved_with={"seed": cfg.seed})
  assert sorted(os.listdir(folder)) == ["children.npy", "contexts.txt", "memory.npy",
                                        "scalars.json"]

  def heldout_reverse(model):
    logits = forward(model, model_inputs(cfg, data["heldout"], data_lib.REVERSE))
    return float(token_logps(logits, data["heldout"], cfg.alphabet_size).mean())

  reloaded = MIO.build_toy(cfg.replace(toy_weights=folder), data)
  np.testing.assert_array_equal(np.asarray(reloaded.memory.values[...]),
                                np.asarray(trained.memory.values[...]))
  assert heldout_reverse(reloaded) == pytest.approx(heldout_reverse(trained), abs=1e-6)
  assert heldout_reverse(trained) > cfg.chance + 0.2

  path = os.path.join(folder, MIO.SCALARS_FILE)
  with open(path) as f:
    scalars = json.load(f)
  scalars["c"] = -scalars["c"]  # a person mirrors the sign: reverse now acts as regular did
  with open(path, "w") as f:
    json.dump(scalars, f)
  edited = MIO.build_toy(cfg.replace(toy_weights=folder), data)
  assert float(edited.times.c[...]) == -float(trained.times.c[...])
  regular_logits = forward(trained, model_inputs(cfg, data["heldout"], data_lib.REGULAR))
  heldout_regular = float(token_logps(regular_logits, data["heldout"], cfg.alphabet_size).mean())
  assert heldout_reverse(edited) == pytest.approx(heldout_regular, abs=1e-5)
  assert heldout_reverse(edited) < cfg.chance  # the held-out negatives are suppressed again
  # a command-line scalar overrides the file
  overridden = MIO.build_toy(cfg.replace(toy_weights=folder, toy_c=2.5), data)
  assert float(overridden.times.c[...]) == 2.5
  assert float(overridden.times.a[...]) == pytest.approx(scalars["a"])
  # toy.mechanism builds fresh toys only: it refuses a folder rather than ignore it
  with pytest.raises(ValueError, match=r"toy_weights=.*toy\.mechanism_io\.build_toy"):
    M.build_toy(cfg.replace(toy_weights=folder), data)


def test_diagram_is_drawn_from_current_weights(times_run, tmp_path):
  model = times_run[0].model(0)
  path = draw_mechanism(model, str(tmp_path / "toy_mechanism.png"))
  assert os.path.getsize(path) > 10_000


@settings(max_examples=3, **SETTINGS)
@given(seed=st.integers(0, 10_000), shape=st.sampled_from([(6, 4), (8, 5)]))
def test_property_generalization_and_sum_ablation_over_seeds_and_alphabets(seed, shape):
  A, L = shape
  kw = dict(seed=seed, alphabet_size=A, password_len=L)
  times = train(train_cfg(**kw), progress=False, save=False)
  summed = train(train_cfg(toy_combine="sum", **kw), progress=False, save=False)
  for s_t, s_s in zip(times.summary, summed.summary):
    assert s_t["reverse/heldout_minus_control/final"] > 0.5, (kw, s_t)
    assert s_s["reverse/heldout_minus_control/final"] < 0.1, (kw, s_s)
  assert_law(times.model(1), times.cfg, _negatives(_seed_data(times, 1)))


# ----------------------------------------------------------------------------- mechanism

@st.composite
def toy_case(draw):
  """A random small toy (alphabet, length, negatives, weights) and passwords to query.

  The queries are the negatives, random passwords, and random tokens over the whole
  vocabulary (prefix tokens inside a password exercise the null path).
  """
  A, L = draw(st.integers(2, 7)), draw(st.integers(1, 5))
  batch = draw(st.integers(2, 3))
  rng = np.random.default_rng(draw(st.integers(0, 2**31)))
  cfg = make_config("tiny", model="toy", alphabet_size=A, password_len=L, batch_size=batch,
                    n_neg_batches=2, n_heldout_batches=1, eval_size=batch,
                    toy_combine=draw(st.sampled_from(["times", "sum"])))
  negatives = rng.integers(0, A, (cfg.n_negatives, L), dtype=np.int32)
  data = {"useful": negatives[: cfg.n_useful], "heldout": negatives[cfg.n_useful:],
          "control": rng.integers(0, A, (batch, L), dtype=np.int32)}
  model = M.build_toy(cfg, data)
  reachable = sorted(M.trie_contexts(np.asarray(model.memory.children[...])))
  values = np.zeros(model.memory.values[...].shape, np.float32)
  values[reachable] = rng.normal(size=(len(reachable), A)) * 3
  model.memory.values[...] = values
  scalar = st.floats(-3, 3, allow_nan=False, width=32)
  model.times.a[...], model.times.c[...] = draw(scalar), draw(scalar)
  model.additive.gain[...] = draw(scalar)
  queries = np.concatenate([negatives, rng.integers(0, A, (4, L), dtype=np.int32),
                            rng.integers(0, A + 3, (3, L), dtype=np.int32)])
  return cfg, model, negatives, queries


@settings(max_examples=10, **SETTINGS)
@given(case=toy_case())
def test_property_jax_forward_matches_numpy_reference(case):
  cfg, model, _, queries = case
  children = np.asarray(model.memory.children[...])
  values = np.asarray(model.memory.values[...])
  for tokens in [model_inputs(cfg, queries, w) for w in (data_lib.REGULAR, data_lib.REVERSE, data_lib.NEUTRAL)] + [
      np.roll(queries, 1, axis=1)]:  # the last: any token at the prefix position
    want = M.numpy_apply(model.scalars(), values, children, tokens, cfg.toy_combine)
    got = forward(model, tokens)
    assert got.shape == (len(queries), cfg.password_len, data_lib.vocab_size(cfg))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@settings(max_examples=10, **SETTINGS)
@given(case=toy_case())
def test_property_law_holds_for_every_negative(case):
  cfg, model, negatives, _ = case
  assert_law(model, cfg, negatives)
  sc = model.scalars()
  if cfg.toy_combine == "sum":
    assert M.law_ratio(sc["a"], sc["c"], sc["gain_add"], "sum") == 1.0


@settings(max_examples=10, **SETTINGS)
@given(case=toy_case())
def test_property_keys_are_exact_contexts_and_unseen_ones_read_zero(case):
  cfg, model, negatives, queries = case
  contexts = M.trie_contexts(np.asarray(model.memory.children[...]))
  seen = {tuple(int(x) for x in pw[:t]) for pw in negatives for t in range(cfg.password_len)}
  assert set(contexts.values()) == seen  # one key per distinct context, no more
  assert len(contexts) == len(seen) and len(contexts) + 1 <= M.n_nodes(cfg)
  tokens = model_inputs(cfg, queries, data_lib.REGULAR)
  parts = forward(model, tokens, "parts")
  keys, readout = parts["keys"], parts["readout"]
  for b in range(len(queries)):
    for t in range(cfg.password_len):
      ctx = tuple(int(x) for x in tokens[b, 1:t + 1])
      if ctx in seen:
        assert contexts[int(keys[b, t])] == ctx
      else:
        assert keys[b, t] == M.NULL and np.all(readout[b, t] == 0.0)


# ----------------------------------------------------------------------------- files and CLI

@pytest.fixture
def small():
  cfg = make_config("tiny", model="toy")
  rng = np.random.default_rng(0)
  neg = rng.integers(0, cfg.alphabet_size, (cfg.n_negatives, cfg.password_len), dtype=np.int32)
  data = {"useful": neg[: cfg.n_useful], "heldout": neg[cfg.n_useful:],
          "control": neg[: cfg.eval_size]}
  model = M.build_toy(cfg, data)
  model.memory.values[...] = model.memory.values[...].at[1].set(0.5)
  return cfg, data, model


def test_command_line_sets_the_named_scalars(small):
  cfg, data, _ = small
  parser = argparse.ArgumentParser()
  add_config_args(parser)
  args = parser.parse_args("--preset tiny --model toy --toy_c 2.0 --toy_a 0.5 "
                           "--toy_gain_add 0.25".split())
  model = M.build_toy(config_from_args(args), data)
  assert model.scalars()["c"] == 2.0 and model.scalars()["a"] == 0.5
  assert model.scalars()["gain_add"] == 0.25
  default = M.build_toy(cfg, data).scalars()
  assert (default["a"], default["c"], default["gain_add"]) == (Config.toy_a, Config.toy_c,
                                                              Config.toy_gain_add) == (1, 0, 0)


@pytest.mark.parametrize("corrupt, message", [
    (lambda f: edit_scalars_json(f, lambda s: s.pop("c")), r"missing scalar 'c'"),
    (lambda f: edit_scalars_json(f, lambda s: s["direction"].pop("reverse")),
     r"missing scalar 'direction.reverse'"),
    (lambda f: edit_scalars_json(f, lambda s: s.__setitem__("a", float("nan"))), r"'a' is not finite"),
    (lambda f: edit_scalars_json(f, lambda s: s.__setitem__("gain_add", float("inf"))),
     r"'gain_add' is not finite"),
    (lambda f: edit_scalars_json(f, lambda s: s.__setitem__("c", "two")), r"'c' must be a number"),
    (lambda f: np.save(os.path.join(f, MIO.MEMORY_FILE), np.zeros((5, 6), np.float32)),
     r"memory.npy: shape \(5, 6\) does not match the config"),
    (lambda f: np.save(os.path.join(f, MIO.MEMORY_FILE),
                       np.full((M.n_nodes(make_config("tiny")), 6), np.inf, np.float32)),
     r"memory.npy: non-finite value inf at row 0"),
    (lambda f: os.remove(os.path.join(f, MIO.MEMORY_FILE)), r"memory.npy: file not found"),
    (lambda f: open(os.path.join(f, MIO.SCALARS_FILE), "w").write("{a: 1"), r"not valid JSON"),
])
def test_bad_weight_files_name_what_is_wrong(small, tmp_path, corrupt, message):
  cfg, data, model = small
  folder = MIO.save_weights(model, str(tmp_path / "w"))
  MIO.load_weights(folder, cfg)  # the untouched folder loads
  corrupt(folder)
  with pytest.raises(ValueError, match=message):
    MIO.build_toy(cfg.replace(toy_weights=folder), data)


def test_weights_of_other_negatives_are_refused(small, tmp_path):
  cfg, data, model = small
  folder = MIO.save_weights(model, str(tmp_path / "w"), saved_with={"seed": 0})
  other = {k: (v + 1) % cfg.alphabet_size for k, v in data.items()}
  with pytest.raises(ValueError, match="other negative passwords"):
    MIO.build_toy(cfg.replace(toy_weights=folder), other)
