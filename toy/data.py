"""Passwords, prefixes, the fixed sets and step tables of a seed, and the seed's keys.

Token ids: letters are 0..A-1, then three prefix tokens. A sequence is ``[prefix, p_1..p_L]``;
the model reads ``[prefix, p_1..p_{L-1}]`` and is scored on ``p_1..p_L`` only.
Everything here is a pure function of a ``jax.random`` key, so seeds can be vmapped.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from toy.config import Config

REGULAR, REVERSE, NEUTRAL = 0, 1, 2  # offsets past the alphabet
# The placebo set's key is folded out of the data key with this tag. Not 1: under JAX's
# partitionable threefry, fold_in(key, i) equals split(key, n)[i], so fold_in(key, 1) would
# be the control's own key (the placebo would be the control). ASCII "plac".
PLACEBO_TAG = 0x706C6163


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
  """The fixed sets of one seed: negatives (useful first, held-out last), the control and the
  placebo: a second random set of the control's size, evaluated exactly like it, so that a
  difference placebo − control shows how far two random sets differ by chance alone.

  The placebo's key is folded out of ``key`` rather than split from it, so the other sets
  are bitwise those of a run made before the placebo existed.
  """
  k_neg, k_ctl = jax.random.split(key)
  negatives = random_passwords(cfg, k_neg, cfg.n_negatives)
  return {
      "useful": negatives[: cfg.n_useful],
      "heldout": negatives[cfg.n_useful:],
      "control": random_passwords(cfg, k_ctl, cfg.eval_size),
      "placebo": random_passwords(cfg, jax.random.fold_in(key, PLACEBO_TAG), cfg.eval_size),
  }


def epoch_indices(key, n_items: int, steps: int, batch: int):
  """``steps x batch`` indices that walk through a fresh permutation of n_items each epoch."""
  n_epochs = -(-steps * batch // n_items)
  perms = jax.vmap(lambda k: jax.random.permutation(k, n_items))(jax.random.split(key, n_epochs))
  return perms.reshape(-1)[: steps * batch].reshape(steps, batch).astype(jnp.int32)


def negatives(data: dict):
  """All negatives of a seed's sets, useful first, held-out last (the DPO tables index this)."""
  return jnp.concatenate([data["useful"], data["heldout"]], axis=0)


def make_tables(cfg: Config, key) -> dict:
  """Which negatives each DPO step rejects and which useful negatives each mix step imitates."""
  k2, k3, k3u = jax.random.split(key, 3)
  B = cfg.batch_size
  return {
      "dpo/neg": epoch_indices(k2, cfg.n_negatives, max(cfg.dpo_steps, 1), B),
      "mix/neg": epoch_indices(k3, cfg.n_negatives, max(cfg.mix_steps_resolved, 1), B),
      "mix/useful": epoch_indices(k3u, cfg.n_useful, max(cfg.mix_steps_resolved, 1), B),
  }


PRIOR_TAG = 0x5052494F  # "PRIO"; prior episode e folds in PRIOR_TAG + e (episode_root)


def episode_root(seed: int, episode: int | None = None):
  """The root key of one episode of a run seed: ``jax.random.key(seed)`` for the measured
  episode (None), ``fold_in(key(seed), PRIOR_TAG + episode)`` for prior episode ``episode``.

  A run seed's root is ``key(seed)``, whose data is ``[0, seed]`` for seeds below 2**32. A
  prior episode's root is a hash of the seed and the episode whose first word is checked to
  be non-zero, so it is the root of no run seed: no prior episode ever draws the data,
  tables or training batches of another seed's run (tests/test_episodes.py). The tag is
  large because, under partitionable threefry, fold_in(key, i) is split(key, n)[i]: a small
  i would make the root one of the seed's own keys (i = 1: its init key).
  """
  if not 0 <= seed < 2 ** 32:
    raise ValueError(f"invalid seed={seed!r}: allowed 0 .. 2**32-1")
  key = jax.random.key(seed)
  if episode is None:
    return key
  key = jax.random.fold_in(key, PRIOR_TAG + episode)
  if int(jax.random.key_data(key)[0]) == 0:  # the root of run seed key_data[1]: refuse
    raise ValueError(f"prior episode {episode} of seed {seed} has the root key of a run seed")
  return key


def seed_keys(seeds: list[int], episode: int | None = None):
  """(data, init, tables, train) keys per seed, for the measured episode (None) or a prior
  one: the one place a seed becomes randomness."""
  keys = jnp.stack([jax.random.key_data(episode_root(s, episode)) for s in seeds])
  keys = jax.vmap(lambda k: jax.random.split(jax.random.wrap_key_data(k), 4))(keys)
  return tuple(keys[:, i] for i in range(4))


def seed_data(cfg: Config, seed: int, episode: int | None = None) -> dict:
  """The fixed sets of one seed as NumPy arrays, exactly as a run with that seed sees them in
  its measured episode (``episode`` None) or in prior episode ``episode``."""
  k_data = seed_keys([seed], episode)[0]
  return {k: np.asarray(v[0]) for k, v in jax.vmap(lambda k: make_data(cfg, k))(k_data).items()}
