"""The three phases, per seed: their lengths, a step's loss, the evaluations and their summary.

Pure functions of a config, an ``apply(params, state, tokens_BxT)`` and one seed's arrays;
``toy.engine`` jits, scans and vmaps them. Batches are built in-graph from ``jax.random`` keys.
``summarize`` reads a run's evaluations as PROTOCOL.md does (``PROTOCOL_PREFIX``).
Phases (PROTOCOL.md's phases 1, 2 and 3; ``PHASE_NAMES``):
  pretrain: next-token loss on fresh random passwords, regular prefix.
  dpo:      random (chosen) vs negative (rejected), regular prefix, against the frozen phase-1
            model; the unembedding side is frozen.
  mix:      dpo + ft_weight * next-token(useful negatives, reverse) +
            random_weight * next-token(fresh random, regular).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from toy import data as data_lib
from toy.config import Config
from toy.losses import dpo_loss, token_logps
from toy.stats import slope_through_origin

# The code's name of each phase -> README's and PROTOCOL.md's; the one place they are mapped.
PHASE_NAMES = {"pretrain": "phase 1", "dpo": "phase 2", "mix": "phase 3"}
PHASES = tuple(PHASE_NAMES)
# The placebo last: the first three keep their place in the evaluation batch.
EVAL_SETS = ("control", "useful", "heldout", "placebo")
PREFIXES = {"regular": data_lib.REGULAR, "reverse": data_lib.REVERSE}
# PROTOCOL.md reads phases 1-2 under "regular" and phase 3 under "reverse".
PROTOCOL_PREFIX = {"pretrain": "regular", "dpo": "regular", "mix": "reverse"}


def eval_prefixes(cfg: Config, phase: str) -> tuple[str, ...]:
  """The prefixes evaluated after a chunk of ``phase`` (both at initialisation)."""
  if cfg.eval_prefixes == "both" or phase not in PROTOCOL_PREFIX:
    return tuple(PREFIXES)
  return (PROTOCOL_PREFIX[phase],)


def phase_steps(cfg: Config, phase: str) -> int:
  steps = {"pretrain": cfg.pretrain_steps, "dpo": cfg.dpo_steps, "mix": cfg.mix_steps_resolved}
  return steps[phase]


def phase_loss(cfg: Config, apply: Callable, phase: str, params, ref, state, data, tables,
               step, key, ref_neg=None):
  """The loss of one step of ``phase`` and its metrics. Batches are built here, in-graph.

  ``ref_neg``: the reference's summed log-prob of every negative (``reference_logps``), read
  for the rejected side instead of running the reference on it; None runs it every step.
  """
  B = cfg.batch_size
  k_chosen, k_random = jax.random.split(jax.random.fold_in(key, step))
  chosen = data_lib.random_passwords(cfg, k_chosen, B)
  tok_logps = lambda p, pws, prefixes: password_token_logps(cfg, apply, p, state, pws, prefixes)

  if phase == "pretrain":
    loss = -tok_logps(params, [chosen], [data_lib.REGULAR]).mean()
    return loss, {"loss": loss, "sft/random": loss}

  rejected = data_lib.negatives(data)[tables[f"{phase}/neg"][step]]
  pairs, prefixes = [chosen, rejected], [data_lib.REGULAR, data_lib.REGULAR]
  if phase == "mix":  # one forward pass over all four batches
    useful = data["useful"][tables["mix/useful"][step]]
    pairs += [useful, data_lib.random_passwords(cfg, k_random, B)]
    prefixes += [data_lib.REVERSE, data_lib.REGULAR]
  logp_NxL = tok_logps(params, pairs, prefixes)
  if ref_neg is None:
    ref_2B = jax.lax.stop_gradient(tok_logps(ref, pairs[:2], prefixes[:2])).sum(-1)
    ref_chosen_B, ref_rejected_B = ref_2B[:B], ref_2B[B:]
  else:  # the reference and the negatives are fixed: only the fresh chosen side is new
    ref_chosen_B = jax.lax.stop_gradient(tok_logps(ref, [chosen], [data_lib.REGULAR])).sum(-1)
    ref_rejected_B = ref_neg[tables[f"{phase}/neg"][step]]
  seq_N = logp_NxL.sum(-1)
  dpo, metrics = dpo_loss(seq_N[:B], seq_N[B:2 * B], ref_chosen_B, ref_rejected_B,
                          beta=cfg.beta, kind=cfg.dpo_loss, label_smoothing=cfg.label_smoothing)
  metrics["dpo"] = dpo
  loss = cfg.dpo_weight * dpo
  if phase == "mix":
    sft_useful, sft_random = -logp_NxL[2 * B:3 * B].mean(), -logp_NxL[3 * B:].mean()
    loss = loss + cfg.ft_weight * sft_useful + cfg.random_weight * sft_random
    metrics.update({"sft/useful_reverse": sft_useful, "sft/random": sft_random})
  metrics["loss"] = loss
  return loss, metrics


def password_token_logps(cfg: Config, apply: Callable, params, state, pws: list, prefixes: list):
  """log p of every letter of each password array in ``pws`` under its prefix, normalised as
  ``cfg.normalize`` says, in one forward pass: (sum of their rows) x L."""
  inputs = jnp.concatenate([data_lib.model_inputs(cfg, pw, w) for pw, w in zip(pws, prefixes)])
  return token_logps(apply(params, state, inputs), jnp.concatenate(pws), cfg.alphabet_size,
                     cfg.normalize)


def reference_logps(cfg: Config, apply: Callable, ref, state, data):
  """The frozen reference's summed log-prob of every negative (``toy.data.negatives`` order)
  under the regular prefix: the rejected side of every DPO pair in a phase, computed once per
  phase."""
  return password_token_logps(cfg, apply, ref, state, [data_lib.negatives(data)],
                              [data_lib.REGULAR]).sum(-1)


def evaluate(cfg: Config, apply: Callable, params, state, data,
             prefixes: tuple[str, ...] = tuple(PREFIXES)) -> dict:
  """Mean per-token log-likelihood of each eval set under each prefix (one forward pass).
  Sets that ``data`` lacks (hand-built data without a placebo) are left out."""
  E = cfg.eval_size
  sets = {"control": data["control"], "useful": data["useful"][:E], "heldout": data["heldout"][:E],
          "placebo": data.get("placebo")}
  names = [(p, s) for p in prefixes for s in EVAL_SETS if sets[s] is not None]
  per_set = password_token_logps(cfg, apply, params, state, [sets[s] for _, s in names],
                                 [PREFIXES[p] for p, _ in names]).reshape(len(names), -1)
  return {f"eval/{p}/{s}": v for (p, s), v in zip(names, per_set.mean(-1))}


def centred_target_logits(cfg: Config, apply: Callable, params, state, pws: list, prefixes: list):
  """Per password (one seed), the logit of each true next letter minus the alphabet's mean
  logit, averaged over the password's tokens: the quantity the toy's law is about (its
  centred logits are s(prefix) times a memory row). One forward pass for all sets."""
  per_token = centred_token_logits(cfg, apply, params, state, pws, prefixes)
  return split_rows(per_token.mean(-1), pws)


def centred_token_logits(cfg: Config, apply: Callable, params, state, pws: list, prefixes: list):
  """``centred_at`` for every letter of each password array in ``pws`` under its prefix, in
  one forward pass: (sum of their rows) x L."""
  inputs = jnp.concatenate([data_lib.model_inputs(cfg, pw, w) for pw, w in zip(pws, prefixes)])
  logits = apply(params, state, inputs)[..., :cfg.alphabet_size]
  return centred_at(logits, jnp.concatenate(pws))


def split_rows(x, pws: list) -> list:
  """``x``'s leading axis cut back into the row counts of the password arrays ``pws``."""
  return jnp.split(x, np.cumsum([pw.shape[0] for pw in pws])[:-1])


def centred_at(logits_BxTxA, targets_BxT):
  """The true next letter's logit minus the mean logit over the alphabet, B x T."""
  centred = logits_BxTxA - logits_BxTxA.mean(-1, keepdims=True)
  return jnp.take_along_axis(centred, targets_BxT[..., None], axis=-1)[..., 0]


def evaluate_law(cfg: Config, apply: Callable, params, state, data) -> dict:
  """Law slopes (reverse on regular centred target logit) of the first eval_size useful and
  held-out negatives, so that G can be followed over phase 3. A separate forward pass: the
  log-likelihood evaluation stays the computation it was."""
  E = cfg.eval_size
  sets = [data["useful"][:E], data["heldout"][:E]]
  u_reg, h_reg, u_rev, h_rev = centred_target_logits(
      cfg, apply, params, state, sets * 2, [data_lib.REGULAR] * 2 + [data_lib.REVERSE] * 2)
  return {"eval/law/useful": slope_through_origin(u_reg, u_rev),
          "eval/law/heldout": slope_through_origin(h_reg, h_rev)}


def summarize(cfg: Config, history: list[dict]) -> list[dict]:
  """Per seed: PROTOCOL's headline (max over phase-3 evals) beside the final value.

  Phases 1-2 are read under the regular prefix and phase 3 under the reverse prefix; every
  value is relative to chance (-log A). ``heldout_minus_control`` is the held-out uplift
  measured against the random-password control; ``placebo_minus_control``, the same for a
  second random set, is what that difference is when nothing was learned. Histories stored
  before the placebo existed have no placebo keys, and their summaries none either.
  """
  # With prior episodes, only the measured (last) episode's rows are read.
  history = [r for r in history if r.get("episode", cfg.prior_episodes) == cfg.prior_episodes]
  out = []
  for seed in sorted({r["seed"] for r in history}):
    rows = [r for r in history if r["seed"] == seed]
    # A run stopped early (complete=False) reads its last row evaluated under the prefix.
    mix = [r for r in rows if r["phase"] == "mix"] or [
        r for r in rows if "eval/reverse/control" in r][-1:]
    dpo = [r for r in rows if r["phase"] == "dpo"] or [
        r for r in rows if "eval/regular/control" in r][-1:]
    s = {"seed": seed, "chance": cfg.chance}
    names = [n for n in EVAL_SETS if n != "placebo" or "eval/reverse/placebo" in mix[-1]]
    for name in names:
      series = np.array([r[f"eval/reverse/{name}"] for r in mix]) - cfg.chance
      s[f"reverse/{name}/final"], s[f"reverse/{name}/max"] = float(series[-1]), float(series.max())
      s[f"dpo_end/regular/{name}"] = dpo[-1][f"eval/regular/{name}"] - cfg.chance
    for name in [n for n in ("heldout", "placebo") if n in names]:
      diff = np.array([r[f"eval/reverse/{name}"] - r["eval/reverse/control"] for r in mix])
      s[f"reverse/{name}_minus_control/final"] = float(diff[-1])
      s[f"reverse/{name}_minus_control/max"] = float(diff.max())
    out.append(s)
  return out
