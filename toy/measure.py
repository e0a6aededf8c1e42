"""The study's measurements of a trained run: law slopes, generalization ratio G, summaries.

The per-model summary holds the paired tests that every table reports. The law: for each
useful or held-out negative, its centred target logit (the logit of each true next letter
minus the alphabet's mean logit, averaged over the password) under "reverse" against the
same under "regular". The toy's law is one line through the origin
with slope (a-c+g)/(a+c+g) for both sets; G = slope(held-out) / slope(useful) is 1 for
perfect generalization and 0 for none.
"""
from __future__ import annotations

import jax
import numpy as np

from toy import data as D
from toy.phases import centred_target_logits, slope_through_origin
from toy.sweep import paired_test

LAW_SETS = ("useful", "heldout")
LAW_PREFIXES = (D.REGULAR, D.REVERSE)


def target_logits(result) -> dict:
  """{(set, prefix): S x N} centred target logits of every useful and held-out negative of
  every seed, in one jitted forward pass."""
  cfg, apply = result.cfg, result.apply
  names = [(s, w) for s in LAW_SETS for w in LAW_PREFIXES]

  def one_seed(params, rest, data):
    return centred_target_logits(cfg, apply, params, rest, [data[s] for s, _ in names],
                                 [w for _, w in names])

  data = {s: result.data[s] for s in LAW_SETS}
  out = jax.jit(jax.vmap(one_seed))(result.params, result.rest, data)
  return {name: np.asarray(v) for name, v in zip(names, out)}


def law_slopes(result) -> dict:
  """Per seed and set: the slope through the origin of "reverse" on "regular" (the toy's
  law), and the within-set slope with an intercept.

  The within-set slope says whether, inside one set, the more a password was suppressed the
  more it is promoted (a per-password inversion); the through-origin slope also absorbs an
  offset that one set may get on its own (direct memorization of the useful negatives), so
  reporting both separates the shared inversion from useful-only memorization.
  """
  out, logits = {}, target_logits(result)
  for s in LAW_SETS:
    x, y = logits[(s, D.REGULAR)], logits[(s, D.REVERSE)]
    out[s] = slope_through_origin(x, y)
    xc, yc = x - x.mean(-1, keepdims=True), y - y.mean(-1, keepdims=True)
    out[f"within/{s}"] = slope_through_origin(xc, yc)
    out[f"points/{s}"] = (x.reshape(-1), y.reshape(-1))
  return out


def generalization_ratio(slopes: dict, kind: str = "") -> np.ndarray:
  """G = (law slope of held-out negatives) / (law slope of useful negatives), per seed.

  Matching on suppression is built in: the slope is promotion under "reverse" per unit of
  suppression under "regular". ``kind="within/"`` uses the within-set slopes.
  """
  return slopes[f"{kind}heldout"] / slopes[f"{kind}useful"]


def law_values(slopes: dict) -> dict:
  """The per-seed law values every report reads, from ``law_slopes``' output."""
  return {"slope/useful": slopes["useful"], "slope/heldout": slopes["heldout"],
          "within/useful": slopes["within/useful"], "within/heldout": slopes["within/heldout"],
          "G": generalization_ratio(slopes), "G_within": generalization_ratio(slopes, "within/")}


def law_record(result) -> dict:
  """Per-seed law values as plain lists, for a sweep point's JSON."""
  return {"law": {k: v.tolist() for k, v in law_values(law_slopes(result)).items()}}


SUMMARY_KEYS = {
    "heldout_vs_control_final": "reverse/heldout_minus_control/final",
    "heldout_vs_control_max": "reverse/heldout_minus_control/max",
    "heldout_vs_chance_final": "reverse/heldout/final",
    "heldout_vs_chance_max": "reverse/heldout/max",
    "useful_vs_chance_final": "reverse/useful/final",
    "control_vs_chance_final": "reverse/control/final",
}


def summarize_law(summary: list[dict], law: dict) -> dict:
  """Mean ± sd and t-tests against 0 of every per-seed value a table reports."""
  col = lambda key: np.array([s[key] for s in summary])
  rows = {name: paired_test(col(key), 0.0) for name, key in SUMMARY_KEYS.items()}
  rows.update({
      "law_slope_useful": paired_test(law["slope/useful"], 0.0),
      "law_slope_heldout": paired_test(law["slope/heldout"], 0.0),
      "within_slope_useful": paired_test(law["within/useful"], 0.0),
      "within_slope_heldout": paired_test(law["within/heldout"], 0.0),
      "generalization_ratio": paired_test(law["G"], 0.0),
      "generalization_ratio_within": paired_test(law["G_within"], 0.0),
  })
  return rows


def summarize_model(result, slopes: dict | None = None) -> dict:
  """The table column of one trained model: summarize_law plus its seeds and chance."""
  law = law_values(law_slopes(result) if slopes is None else slopes)
  rows = summarize_law(result.summary, law)
  rows.update(seeds=result.cfg.seeds, chance=result.cfg.chance)
  return rows
