"""Per-token log-probs over the alphabet and DPO (plus IPO and conservative DPO).

Log-probabilities are normalised over the alphabet only by default (the prefix tokens are
never a target), so a uniform guess scores exactly -log A per token: PROTOCOL.md's chance
level. ``normalize="vocab"`` normalises over every logit the model returns instead, as the
study's Pythia runs do (a softmax over the whole vocabulary); chance stays -log A.
A password's log-prob (for DPO) is the sum over its tokens, the next-token loss the mean of
-log p (``toy.phases.phase_loss``).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def token_logps(logits_BxLxV, targets_BxL, alphabet_size: int, normalize: str = "alphabet"):
  """log p of each target letter, normalised over the first ``alphabet_size`` logits
  ("alphabet") or over all V ("vocab"; Config.normalize)."""
  if normalize == "vocab":
    logp_BxLxA = jax.nn.log_softmax(logits_BxLxV, axis=-1)
  elif normalize == "alphabet":
    logp_BxLxA = jax.nn.log_softmax(logits_BxLxV[..., :alphabet_size], axis=-1)
  else:
    raise ValueError(f"invalid normalize={normalize!r}: allowed one of ['alphabet', 'vocab']")
  return jnp.take_along_axis(logp_BxLxA, targets_BxL[..., None], axis=-1)[..., 0]


def dpo_loss(policy_chosen_B, policy_rejected_B, ref_chosen_B, ref_rejected_B, *,
             beta: float, kind: str = "sigmoid", label_smoothing: float = 0.0):
  """DPO and two variants on summed sequence log-probs; metrics use TRL's names.

  sigmoid:       -log sigma(beta * h)
  conservative:  -(1-eps) log sigma(beta*h) - eps log sigma(-beta*h)   (cDPO, noisy labels)
  ipo:           (h - 1/(2 beta))^2                                      (Azar et al. 2023)
  with h = (log pi(c) - log ref(c)) - (log pi(r) - log ref(r)).
  """
  chosen_ratio_B = policy_chosen_B - ref_chosen_B
  rejected_ratio_B = policy_rejected_B - ref_rejected_B
  h_B = chosen_ratio_B - rejected_ratio_B
  if kind == "sigmoid":
    losses_B = -jax.nn.log_sigmoid(beta * h_B)
  elif kind == "conservative":
    losses_B = (-(1 - label_smoothing) * jax.nn.log_sigmoid(beta * h_B)
                - label_smoothing * jax.nn.log_sigmoid(-beta * h_B))
  elif kind == "ipo":
    losses_B = (h_B - 1 / (2 * beta)) ** 2
  else:
    raise ValueError(
        f"invalid dpo_loss={kind!r}: allowed one of ['sigmoid', 'ipo', 'conservative']")
  chosen_rewards_B = jax.lax.stop_gradient(beta * chosen_ratio_B)
  rejected_rewards_B = jax.lax.stop_gradient(beta * rejected_ratio_B)
  metrics = {
      "rewards/chosen": chosen_rewards_B.mean(),
      "rewards/rejected": rejected_rewards_B.mean(),
      "rewards/margins": (chosen_rewards_B - rejected_rewards_B).mean(),
      "rewards/accuracies": (chosen_rewards_B > rejected_rewards_B).astype(jnp.float32).mean(),
      "logps/chosen": jax.lax.stop_gradient(policy_chosen_B).mean(),
      "logps/rejected": jax.lax.stop_gradient(policy_rejected_B).mean(),
  }
  return losses_B.mean(), metrics
