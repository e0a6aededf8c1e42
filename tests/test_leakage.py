"""Issue 19's measures and toy: the law per position (toy.measure.position_law) on hand-built
cases whose answer is known, and the shared-gate toy (toy.mechanism.shared_gate_toy) at its
two ends (w = 0 is one gate per row, w = 1 the toy)."""
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from toy import mechanism as M
from toy.config import make_config
from toy.data import seed_data
from toy.engine import apply_fn, train
from toy.measure import position_law, position_law_values, shared_positions

from helpers import assert_histories_close


def test_shared_positions_reads_the_passwords_contexts():
  useful = np.array([[0, 1, 2, 3], [0, 2, 2, 2]])
  heldout = np.array([[0, 1, 3, 3],   # contexts (), (0), (0,1) shared; (0,1,3) not
                      [1, 0, 0, 0],   # only the root is shared
                      [0, 2, 2, 5]])  # (0,2,2) is a useful context: all shared
  want = np.array([[True, True, True, False],
                   [True, False, False, False],
                   [True, True, True, True]])
  np.testing.assert_array_equal(shared_positions(useful, heldout), want)


def test_position_law_values_slope_per_group():
  x = np.array([[[1.0, 2.0, -1.0], [0.5, 1.0, 3.0]]])  # 1 seed, 2 passwords, 3 letters
  shared = np.array([[[True, True, False], [True, False, False]]])
  y = np.where(shared, -0.5 * x, 2.0 * x)
  out = position_law_values(x, y, shared)
  assert out["slope/shared"][0] == pytest.approx(-0.5)
  assert out["slope/private"][0] == pytest.approx(2.0)
  assert out["n/shared"][0] == 3 and out["n/private"][0] == 3


def _result(cfg, model, data):
  graphdef, params, state = nnx.split(model, nnx.Param, ...)
  stack = lambda tree: jax.tree.map(lambda v: np.asarray(v)[None], nnx.to_pure_dict(tree))
  return types.SimpleNamespace(cfg=cfg, apply=apply_fn(graphdef), params=stack(params),
                               state=stack(state), data={k: v[None] for k, v in data.items()})


def test_position_law_of_a_hand_built_per_row_toy():
  """One gate per row, set by hand: rows whose context a useful negative passes through flip
  (a = 0, c = 1: reverse = −regular), rows only held-out negatives reach keep a = 1, c = 0
  (reverse = regular). Per position the held-out law is then exactly −1 on shared contexts
  and +1 on the others, and the useful law −1."""
  cfg = make_config("tiny", model="toy", toy_gates=0)
  data = seed_data(cfg, 0)
  model = M.build_toy(cfg, data)
  rng = np.random.default_rng(0)
  model.memory.values[...] = jnp.asarray(rng.normal(size=model.memory.values[...].shape),
                                         jnp.float32)
  contexts = M.trie_contexts(np.asarray(model.memory.children[...]))
  useful = {tuple(u[:t]) for u in data["useful"].tolist() for t in range(cfg.password_len)}
  flip = np.array([contexts.get(i) in useful for i in range(model.times.a[...].shape[0])])
  model.times.a[...] = jnp.asarray(np.where(flip, 0.0, 1.0), jnp.float32)
  model.times.c[...] = jnp.asarray(np.where(flip, 1.0, 0.0), jnp.float32)
  out = position_law(_result(cfg, model, data))
  assert out["n/shared"][0] > 0 and out["n/private"][0] > 0
  assert out["n/shared"][0] + out["n/private"][0] == data["heldout"].size
  assert out["slope/shared"][0] == pytest.approx(-1.0, rel=1e-5)
  assert out["slope/private"][0] == pytest.approx(1.0, rel=1e-5)
  assert out["slope/useful"][0] == pytest.approx(-1.0, rel=1e-5)


# ----------------------------------------------------------------------------- the shared gate

def test_shared_gate_code_and_its_validation():
  gates, weights = M.shared_gate_code(3, 0.25)
  np.testing.assert_array_equal(gates, [[0, 1], [0, 2], [0, 3]])
  np.testing.assert_allclose(weights, [[0.25, 0.75]] * 3)
  for bad in (-0.1, 1.5, float("nan")):
    with pytest.raises(ValueError, match="shared gate weight"):
      M.shared_gate_toy(bad)
  cfg = make_config("tiny", model="toy")  # not one gate per row
  with pytest.raises(ValueError, match="toy_gates=0"):
    M.shared_gate_toy(0.5)(cfg, seed_data(cfg, 0))


@pytest.mark.parametrize("w, twin", [(0.0, dict(toy_gates=0)), (1.0, dict())])
def test_shared_gate_ends_train_as_one_per_row_and_as_the_toy(w, twin):
  """w = 0: the shared gate gets no gradient and row i's own gate is row i's gate of
  toy_gates=0; w = 1: every row reads gate 0 alone, the toy's one times node. Equal up to
  float rounding (the sign is summed over two gates, one of weight 0)."""
  cfg = make_config("tiny", model="toy", toy_gates=0, n_seeds=2)
  got = train(cfg, M.shared_gate_toy(w), progress=False, save=False)
  want = train(make_config("tiny", model="toy", n_seeds=2, **twin), progress=False, save=False)
  assert_histories_close(got.history, want.history, rtol=1e-4, atol=1e-5)
  a, c = (np.asarray(got.params["times"][n]) for n in ("a", "c"))
  if w == 0.0:
    np.testing.assert_allclose(c[:, 1:], want.params["times"]["c"], rtol=1e-4, atol=1e-6)
    assert np.all(a[:, 0] == cfg.toy_a) and np.all(c[:, 0] == cfg.toy_c)  # never trained
  else:
    np.testing.assert_allclose(c[:, 0], want.params["times"]["c"], rtol=1e-4, atol=1e-6)
    assert np.all(c[:, 1:] == cfg.toy_c)  # the private gates never trained


def test_shared_gate_toy_is_labelled_in_words():
  from toy.plots import gate_label
  cfg = make_config("tiny", model="toy", toy_gates=0)
  model = M.shared_gate_toy(0.5)(cfg, seed_data(cfg, 0))
  n = model.memory.values[...].shape[0]
  assert gate_label(model) == f"one shared gate (weight 0.5) + one gate per memory row ({n})"
  assert model.times.a[...].shape == (n + 1,)
