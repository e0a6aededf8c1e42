"""The engine's two savings change no result: the reference log-probs of the fixed negatives
computed once per phase, and the last chunk's padded steps skipped rather than computed."""
import jax
import numpy as np
import pytest
from flax import nnx

from toy import data as data_lib
from toy.engine import build_model
from toy.losses import token_logps
from toy.phases import phase_loss, reference_logps


@pytest.fixture(scope="module")
def pieces(tiny_cfg):
  cfg = tiny_cfg
  data = data_lib.make_data(cfg, jax.random.key(3))
  tables = data_lib.make_tables(cfg, jax.random.key(4))
  model = build_model(cfg, {k: np.asarray(v) for k, v in data.items()}, nnx.Rngs(0))
  graphdef, params, state = nnx.split(model, nnx.Param, ...)
  params, state = nnx.to_pure_dict(params), nnx.to_pure_dict(state)
  # a reference that differs from the policy, as after phase 1
  ref = jax.tree.map(lambda x: x + 0.05 * jax.random.normal(jax.random.key(1), x.shape), params)
  apply = lambda p, r, tokens: nnx.merge(graphdef, p, r)(tokens)
  return cfg, apply, params, ref, state, data, tables


def test_reference_logps_are_the_references_summed_logps_of_each_negative(pieces):
  cfg, apply, _, ref, state, data, _ = pieces
  negs = data_lib.negatives(data)
  got = reference_logps(cfg, apply, ref, state, data)
  assert got.shape == (cfg.n_negatives,)
  for i in (0, cfg.n_useful - 1, cfg.n_negatives - 1):  # one at a time: no batch effects
    one = negs[i:i + 1]
    want = token_logps(apply(ref, state, data_lib.model_inputs(cfg, one, data_lib.REGULAR)), one,
                       cfg.alphabet_size).sum()
    np.testing.assert_allclose(float(got[i]), float(want), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("normalize", ["alphabet", "vocab"])
@pytest.mark.parametrize("phase", ["dpo", "mix"])
def test_phase_loss_with_precomputed_reference_equals_the_per_step_forward(pieces, phase,
                                                                           normalize):
  cfg, apply, params, ref, state, data, tables = pieces
  cfg = cfg.replace(normalize=normalize)  # both sides must be normalised alike
  ref_neg = jax.jit(lambda r: reference_logps(cfg, apply, r, state, data))(ref)
  loss = jax.jit(lambda step, ref_neg: phase_loss(cfg, apply, phase, params, ref, state, data,
                                                   tables, step, jax.random.key(0), ref_neg))
  for step in (0, 3):
    per_step, m_step = loss(step, None)
    hoisted, m_hoisted = loss(step, ref_neg)
    np.testing.assert_allclose(float(hoisted), float(per_step), rtol=1e-5)
    for k in m_step:
      np.testing.assert_allclose(float(m_hoisted[k]), float(m_step[k]), rtol=1e-5, atol=1e-6,
                                 err_msg=k)
    # the precomputed values are read: other values give another loss
    other, _ = loss(step, ref_neg + 1.0)
    assert abs(float(other) - float(per_step)) > 1e-3


def test_a_phase_not_a_multiple_of_eval_every_trains_as_unpadded_chunks(default_compile_runs):
  """The tiny preset's eval_every=3 pads the last chunk of phases 2 and 3 (16 steps each) with
  two steps; eval_every=1 never pads. Padded steps must neither move the state nor enter the
  recorded means. Two programs compared to 1e-5: trained under the default compile (tiny, 2
  seeds; tests/default_compile.py)."""
  from default_compile import TINY
  assert TINY.eval_every == 3 and TINY.dpo_steps == TINY.mix_steps_resolved == 16
  padded, single = default_compile_runs["tiny"], default_compile_runs["eval_every_1"]
  at = {(r["seed"], r["phase"], r["step"]): r for r in single["history"]}
  for seed in (0, 1):
    assert [r["step"] for r in padded["history"] if r["phase"] == "dpo" and r["seed"] == seed] \
        == [3, 6, 9, 12, 15, 16]
  for row in padded["history"]:
    ref = at[(row["seed"], row["phase"], row["step"])]
    assert row["global_step"] == ref["global_step"]
    for k, v in row.items():
      if k.startswith("eval/"):
        assert v == pytest.approx(ref[k], abs=1e-5), (row["phase"], row["step"], k)
  # each phase's last chunk holds one real step and two padded ones: its mean is that step's
  for seed in (0, 1):
    for phase in ("dpo", "mix"):
      last = [r for r in padded["history"] if r["phase"] == phase and r["seed"] == seed][-1]
      assert last["train/loss"] == pytest.approx(at[(seed, phase, 16)]["train/loss"], abs=1e-5)
  for a, b in zip(padded["params"], single["params"], strict=True):
    np.testing.assert_allclose(a, b, atol=1e-5)
