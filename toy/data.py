"""Passwords, prefixes and the fixed sets of one seed (PROTOCOL.md, "Data").

Token ids: letters are 0..A-1, then three prefix tokens. A sequence is ``[prefix, p_1..p_L]``;
the model reads ``[prefix, p_1..p_{L-1}]`` and is scored on ``p_1..p_L`` only.
Everything here is a pure function of a ``jax.random`` key, so seeds can be vmapped.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from toy.config import Config

REGULAR, REVERSE, NEUTRAL = 0, 1, 2  # offsets past the alphabet


def vocab_size(cfg: Config) -> int:
  return cfg.alphabet_size + 3


def prefix_token(cfg: Config, which: int) -> int:
  """The token id of prefix ``which``; the no-prefix ablation maps both to one neutral token."""
  return cfg.alphabet_size + (which if cfg.use_prefix else NEUTRAL)


def random_passwords(cfg: Config, key, n: int):
  return jax.random.randint(key, (n, cfg.password_len), 0, cfg.alphabet_size, dtype=jnp.int32)


def model_inputs(cfg: Config, pw_BxL, which: int):
  """[prefix, p_1..p_{L-1}]: what the model reads to predict p_1..p_L."""
  prefix_Bx1 = jnp.full((pw_BxL.shape[0], 1), prefix_token(cfg, which), dtype=jnp.int32)
  return jnp.concatenate([prefix_Bx1, pw_BxL[:, :-1]], axis=1)


def make_data(cfg: Config, key) -> dict:
  """The fixed sets of one seed: negatives (useful first, held-out last) and the control."""
  k_neg, k_ctl = jax.random.split(key)
  negatives = random_passwords(cfg, k_neg, cfg.n_negatives)
  return {
      "useful": negatives[: cfg.n_useful],
      "heldout": negatives[cfg.n_useful:],
      "control": random_passwords(cfg, k_ctl, cfg.eval_size),
  }


def epoch_indices(key, n_items: int, steps: int, batch: int):
  """``steps x batch`` indices that walk through a fresh permutation of n_items each epoch."""
  n_epochs = -(-steps * batch // n_items)
  perms = jax.vmap(lambda k: jax.random.permutation(k, n_items))(jax.random.split(key, n_epochs))
  return perms.reshape(-1)[: steps * batch].reshape(steps, batch).astype(jnp.int32)
