"""The ladder's transformer rungs (README, "The ladder"): the times node (rung 4) and the
gated MLPs (rung 5). A file of their own so that the two test processes share the ladder."""
import jax
import numpy as np
import pytest
from flax import nnx

from helpers import assert_only_these_stayed, leaves, phase2_frozen_keys
from toy import data as data_lib
from toy.config import make_config
from toy.engine import build_model, train
from toy.model import Transformer, TransformerConfig, mlp_width

A_KEY, C_KEY = "['times']['a']", "['times']['c']"  # the times node's leaves in ``leaves``


def test_times_node_learns_in_phase3_only(tmp_path):
  snaps = {}
  cfg = make_config("tiny", times_node=True, out_dir=str(tmp_path))
  train(cfg, progress=False, save=False,
        on_phase_end=lambda phase, params: snaps.update({phase: leaves(params)}))
  for phase in ("pretrain", "dpo"):
    assert snaps[phase][A_KEY].tolist() == [1.0], phase
    assert snaps[phase][C_KEY].tolist() == [0.0], phase
  assert snaps["mix"][C_KEY][0] != 0.0
  # the node reads the prefix: under "reverse" it multiplies by a - c, under "regular" a + c
  model = build_model(cfg, None, nnx.Rngs(0))
  model.times.c[...] = 0.5
  hooks = {}
  tokens = np.asarray([[data_lib.prefix_token(cfg, w), 0, 1, 2] for w in (data_lib.REGULAR, data_lib.REVERSE,
                                                                    data_lib.NEUTRAL)])
  model(tokens, hooks=hooks)
  np.testing.assert_allclose(np.asarray(hooks["times.hook_s"]), [1.5, 0.5, 1.0])


@pytest.mark.parametrize("mlp", ["swiglu", "bilinear"])
def test_gated_mlp_trains_and_freezes_like_gelu(mlp, tmp_path):
  """Rung 5: each MLP kind trains at tiny without NaN and phase 2 moves only the embedding
  and the lower half."""
  snaps = {}
  result = train(make_config("tiny", mlp=mlp, out_dir=str(tmp_path)), progress=False,
                 save=False, on_phase_end=lambda phase, p: snaps.update({phase: leaves(p)}))
  assert all(np.isfinite(v) for row in result.history for k, v in row.items()
             if isinstance(v, float))
  before, after = snaps["pretrain"], snaps["dpo"]
  assert any("['mlp']['gate']" in k for k in before)
  assert_only_these_stayed(before, after, phase2_frozen_keys(before, result.cfg.n_layers),
                           "during phase 2")


def test_gated_mlps_are_parameter_matched():
  count = lambda mlp: sum(x.size for x in jax.tree.leaves(nnx.state(Transformer(
      TransformerConfig(vocab_size=29, n_layers=2, d_model=64, mlp=mlp), nnx.Rngs(0)), nnx.Param)))
  gelu = count("gelu")
  assert mlp_width(TransformerConfig(vocab_size=29, d_model=64, mlp="swiglu")) == 171
  for mlp in ("swiglu", "bilinear"):
    assert abs(count(mlp) - gelu) / gelu < 0.01, mlp


# Last in the file: its plain run is test_engine's first program, which the other test
# process compiles at the start; coming after the gated runs, this one finds it in the
# compile cache instead of compiling it at the same time.
def test_times_node_at_c0_is_the_plain_transformer(tmp_path):
  """Rung 4 at a = 1, c = 0: the forward pass equals the plain transformer's bitwise (same
  weights), and a whole run with the node frozen matches the plain run. The run is compared
  to float rounding, not bitwise: inside jit, XLA fuses the multiplication by the traced
  1.0 into neighbouring kernels, which can reorder a reduction (measured: 2e-7 on one
  evaluation), so every evaluation and loss is compared at rel 1e-5."""
  cfg = make_config("tiny", out_dir=str(tmp_path))
  plain_model = build_model(cfg, None, nnx.Rngs(3))
  timed_model = build_model(cfg.replace(times_node=True), None, nnx.Rngs(3))
  tokens = np.asarray([[data_lib.prefix_token(cfg, w), 0, 1, 2] for w in (data_lib.REGULAR, data_lib.REVERSE)])
  assert np.array_equal(np.asarray(plain_model(tokens)), np.asarray(timed_model(tokens)))

  plain = train(cfg, progress=False, save=False)
  timed = train(cfg.replace(times_node=True, toy_train_sign=False), progress=False, save=False)
  assert len(plain.history) == len(timed.history)
  for row_p, row_t in zip(plain.history, timed.history):
    assert row_p.keys() == row_t.keys()
    for k, v in row_p.items():
      if isinstance(v, str):
        assert v == row_t[k], k
      elif "accuracies" not in k:  # at policy = reference the rewards are rounding noise
        # whose sign decides the accuracy
        assert v == pytest.approx(row_t[k], rel=1e-5, abs=1e-6), k
  # (Parameters are not compared leaf by leaf: Adam turns rounding-level differences in
  # near-zero gradients into lr-sized steps on a few entries.)
  p, t = leaves(plain.params), leaves(timed.params)
  assert set(t) - set(p) == {A_KEY, C_KEY}
  assert t[A_KEY].tolist() == [1.0] and t[C_KEY].tolist() == [0.0]
