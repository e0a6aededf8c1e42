"""The PyTorch steps in benchmarks/bench_steps.py compute what the engine computes.

Same weights (converted with toy.convert), same batches: the torch DPO and mix losses equal
``toy.phases.phase_loss``, and the torch side freezes the same parameters in phase 2. Without
this, the speed ratio in the benchmark would compare different work.
"""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import torch  # the test extra installs it: a missing torch fails, never skips
import transformers  # noqa: F401

from flax import nnx  # noqa: E402

from toy import convert  # noqa: E402
from toy import data as data_lib  # noqa: E402
from toy.config import make_config  # noqa: E402
from toy.optim import trainable_labels  # noqa: E402
from toy.phases import phase_loss  # noqa: E402


@pytest.fixture(scope="module")
def bench():
  from benchmarks import bench_steps
  return bench_steps


def _hf_model(bench, cfg, seed):
  from transformers import GPTNeoXForCausalLM
  torch.manual_seed(seed)
  model = GPTNeoXForCausalLM(bench.hf_config_for(cfg, "eager")).float().eval()
  with torch.no_grad():
    for p in model.parameters():
      p.add_(0.2 * torch.randn_like(p))
  return model


def _ours(model):
  _, net = convert.from_hf_state_dict(model.state_dict(), model.config)
  graphdef, params, rest = nnx.split(net, nnx.Param, ...)
  return graphdef, nnx.to_pure_dict(params), nnx.to_pure_dict(rest)


@pytest.mark.parametrize("phase", ["dpo", "mix"])
def test_torch_step_loss_equals_engine_phase_loss(bench, phase, monkeypatch):
  cfg = make_config("tiny")
  policy, ref = _hf_model(bench, cfg, 0), _hf_model(bench, cfg, 1)
  graphdef, params, rest = _ours(policy)
  _, ref_params, _ = _ours(ref)
  apply = lambda p, r, tokens: nnx.merge(graphdef, p, r)(tokens)

  data = data_lib.make_data(cfg, jax.random.key(3))
  tables = data_lib.make_tables(cfg, jax.random.key(4))
  rng = np.random.default_rng(5)
  fresh = [jnp.asarray(rng.integers(0, cfg.alphabet_size, (cfg.batch_size, cfg.password_len)),
                       jnp.int32) for _ in range(2)]
  calls = []

  def fake_random_passwords(c, key, n):  # the engine's fresh passwords, fixed for the test
    calls.append(n)
    return fresh[len(calls) - 1]

  monkeypatch.setattr(data_lib, "random_passwords", fake_random_passwords)
  step = 2
  ours, _ = phase_loss(cfg, apply, phase, params, ref_params, rest, data, tables, step,
                         jax.random.key(0))

  t = lambda x: torch.tensor(np.array(x), dtype=torch.long)
  negatives = np.concatenate([data["useful"], data["heldout"]])
  rejected = negatives[np.asarray(tables[f"{phase}/neg"][step])]
  useful = np.asarray(data["useful"])[np.asarray(tables["mix/useful"][step])]
  with torch.no_grad():
    theirs = bench.torch_phase_loss(policy, ref, phase, t(fresh[0]), t(rejected), t(useful),
                                    t(fresh[1]), cfg)
  assert len(calls) == (2 if phase == "mix" else 1)
  assert abs(float(theirs) - float(ours)) < 1e-5 * max(1.0, abs(float(ours)))


def test_torch_freezes_what_the_engine_freezes(bench):
  cfg = make_config("tiny", n_layers=4, d_model=16, n_heads=2)
  policy = _hf_model(bench, cfg, 0)
  bench.freeze_phase2_torch(policy, cfg)
  graphdef, params, rest = _ours(policy)
  net = nnx.merge(graphdef, params, rest)
  labels = trainable_labels(net, params, "dpo", cfg)
  ours = sum(int(np.prod(np.shape(x))) for x, lab in
             zip(jax.tree.leaves(params), jax.tree.leaves(labels)) if lab == "train")
  theirs = sum(p.numel() for p in policy.parameters() if p.requires_grad)
  assert ours == theirs > 0
  trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
  assert any(n.startswith("gpt_neox.layers.1.") for n in trainable)
  assert not any(n.startswith(("gpt_neox.layers.2.", "lm_head", "gpt_neox.final")) for n in trainable)
