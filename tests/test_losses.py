"""The losses against values computed independently (by hand or in NumPy)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toy.losses import dpo_loss, token_logps


@pytest.mark.parametrize("kind", ["sigmoid", "conservative"])
def test_dpo_is_log2_and_rewards_zero_when_policy_equals_reference(kind):
  rng = np.random.default_rng(0)
  chosen, rejected = jnp.asarray(rng.normal(size=8) * 10), jnp.asarray(rng.normal(size=8) * 10)
  loss, m = dpo_loss(chosen, rejected, chosen, rejected, beta=0.1, kind=kind, label_smoothing=0.1)
  assert loss == pytest.approx(math.log(2), abs=1e-6)
  for name in ["rewards/chosen", "rewards/rejected", "rewards/margins"]:
    assert float(m[name]) == 0.0
  assert float(m["rewards/accuracies"]) == 0.0  # ties are not wins, as in TRL


def test_dpo_matches_hand_computation_on_two_pairs():
  beta = 0.5
  pc, pr = jnp.array([-3.0, -5.0]), jnp.array([-4.0, -2.0])
  rc, rr = jnp.array([-3.5, -4.0]), jnp.array([-3.0, -3.0])
  # pair 1: h = (-3+3.5) - (-4+3) = 1.5 ; pair 2: h = (-5+4) - (-2+3) = -2
  expected = 0.5 * (math.log(1 + math.exp(-0.75)) + math.log(1 + math.exp(1.0)))
  loss, m = dpo_loss(pc, pr, rc, rr, beta=beta)
  assert float(loss) == pytest.approx(expected, rel=1e-6)
  assert float(m["rewards/chosen"]) == pytest.approx(0.5 * (0.25 - 0.5))
  assert float(m["rewards/rejected"]) == pytest.approx(0.5 * (-0.5 + 0.5))
  assert float(m["rewards/margins"]) == pytest.approx(0.5 * (0.75 - 1.0))
  assert float(m["rewards/accuracies"]) == 0.5
  assert float(m["logps/chosen"]) == -4.0 and float(m["logps/rejected"]) == -3.0


def test_ipo_and_conservative_variants_by_hand():
  pc, pr, rc, rr = jnp.array([-1.0]), jnp.array([-3.0]), jnp.array([-2.0]), jnp.array([-2.0])
  h = 2.0  # (-1+2) - (-3+2)
  ipo, _ = dpo_loss(pc, pr, rc, rr, beta=0.25, kind="ipo")
  assert float(ipo) == pytest.approx((h - 1 / (2 * 0.25)) ** 2)
  cdpo, _ = dpo_loss(pc, pr, rc, rr, beta=0.25, kind="conservative", label_smoothing=0.2)
  sig = lambda x: 1 / (1 + math.exp(-x))
  assert float(cdpo) == pytest.approx(-0.8 * math.log(sig(0.5)) - 0.2 * math.log(sig(-0.5)),
                                      rel=1e-6)


def test_unknown_dpo_kind_is_rejected():
  x = jnp.zeros(2)
  with pytest.raises(ValueError, match="dpo_loss"):
    dpo_loss(x, x, x, x, beta=0.1, kind="hinge")


def test_token_logps_match_numpy():
  rng = np.random.default_rng(1)
  A, V, B, L = 5, 8, 3, 4
  logits = rng.normal(size=(B, L, V)).astype(np.float32) * 3
  targets = rng.integers(0, A, size=(B, L))
  letters = logits[..., :A].astype(np.float64)
  logp = letters - np.log(np.exp(letters).sum(-1, keepdims=True))
  expected = np.array([[logp[b, t, targets[b, t]] for t in range(L)] for b in range(B)])
  got = np.asarray(token_logps(jnp.asarray(logits), jnp.asarray(targets), A))
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  # what DPO sums per password and the next-token loss averages
  np.testing.assert_allclose(got.sum(-1), expected.sum(-1), rtol=1e-5)
  assert float(-got.mean()) == pytest.approx(-expected.mean(), rel=1e-5)


def test_uniform_logits_score_exactly_chance():
  A = 26
  lp = token_logps(jnp.zeros((2, 3, A + 3)), jnp.zeros((2, 3), jnp.int32), A)
  np.testing.assert_allclose(np.asarray(lp), -math.log(A), rtol=1e-6)


def test_dpo_gradient_pushes_rejected_down():
  g = jax.grad(lambda pr: dpo_loss(jnp.zeros(1), pr, jnp.zeros(1), jnp.zeros(1), beta=0.1)[0])
  assert float(g(jnp.zeros(1))[0]) > 0  # descending the loss lowers log pi(rejected)
