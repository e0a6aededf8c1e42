"""The study's measurements of a trained run: law slopes, generalization ratio G, summaries.

The per-model summary holds the paired tests that every table reports. The law: for each
useful or held-out negative, its centred target logit (the logit of each true next letter
minus the alphabet's mean logit, averaged over the password) under "reverse" against the
same under "regular". The toy's law is one line through the origin
with slope (a-c+g)/(a+c+g) for both sets; G = slope(held-out) / slope(useful) is 1 for
perfect generalization and 0 for none; ``toy.stats.g_summary`` says where it is defined.

Every table reads the same cells (``record_cell``, ``SHARED_COLUMNS``): G as n/a where the
useful slope does not say "inverted", the ratio of mean slopes with a bootstrap interval,
the placebo (a second random set) against the control beside the held-out negatives, and
the max over phase 3 of held-out − chance against the study's +13%.
"""
from __future__ import annotations

import jax
import numpy as np

from toy import data as D
from toy.phases import centred_target_logits
from toy.stats import G_ALPHA, G_MIN_USEFUL, STUDY_UPLIFT, fmt, fmt_g, fmt_g_ratio, \
    fmt_or_dash, fmt_study, g_from_tests, g_summary, paired_test, slope_through_origin, \
    study_test

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
    "placebo_vs_control_final": "reverse/placebo_minus_control/final",
    "placebo_vs_control_max": "reverse/placebo_minus_control/max",
    "placebo_vs_chance_final": "reverse/placebo/final",
    "placebo_vs_chance_max": "reverse/placebo/max",
}
# Maxima over phase 3 of (log-lik − chance): read against the study's +13% (study_test).
STUDY_KEYS = ("reverse/heldout/max", "reverse/placebo/max")


def summarize_law(summary: list[dict], law: dict, seed: int = 0) -> dict:
  """Mean ± sd and t-tests against 0 of every per-seed value a table reports, and G
  (``g_summary``; ``seed``: its bootstrap's). Summaries stored before the placebo existed
  have no placebo rows.

  "generalization_ratio" is the per-seed ratios' paired_test with "defined" added; its t
  and p are nan where G is not defined. "G" and "G_within" hold ``g_summary``'s dicts.
  """
  col = lambda key: np.array([s[key] for s in summary])
  rows = {name: study_test(col(key)) if key in STUDY_KEYS else paired_test(col(key), 0.0)
          for name, key in SUMMARY_KEYS.items() if all(key in s for s in summary)}
  g = g_summary(law["slope/useful"], law["slope/heldout"], seed)
  g_within = g_summary(law["within/useful"], law["within/heldout"], seed)
  rows.update({
      "law_slope_useful": paired_test(law["slope/useful"], 0.0),
      "law_slope_heldout": paired_test(law["slope/heldout"], 0.0),
      "within_slope_useful": paired_test(law["within/useful"], 0.0),
      "within_slope_heldout": paired_test(law["within/heldout"], 0.0),
      "generalization_ratio": _ratio_test(law["G"], g),
      "generalization_ratio_within": _ratio_test(law["G_within"], g_within),
      "G": g, "G_within": g_within,
  })
  return rows


def _ratio_test(ratio_S, g: dict) -> dict:
  test = {**paired_test(ratio_S, 0.0), "defined": g["defined"]}
  if not g["defined"]:
    test.update(t=float("nan"), p=float("nan"))
  return test


def row_g(row: dict) -> dict:
  """A summarize_law row's G (``g_summary``'s dict); rows written before G had a dict get one
  from their stored tests (``g_from_tests``: no bootstrap interval)."""
  if "G" in row:
    return row["G"]
  return g_from_tests(row["law_slope_useful"], row["law_slope_heldout"],
                      row["generalization_ratio"])


def summarize_model(result, slopes: dict | None = None) -> dict:
  """The table column of one trained model: summarize_law plus its seeds and chance."""
  law = law_values(law_slopes(result) if slopes is None else slopes)
  rows = summarize_law(result.summary, law)
  rows.update(seeds=result.cfg.seeds, chance=result.cfg.chance)
  return rows


# ----------------------------------------------------------------------------- stored points

# Columns every table shows beside its own, as (header, key) for ``record_cell``.
G_COLUMNS = [("G", "G"), ("G: ratio of mean slopes [95% bootstrap CI]", "G:ratio")]
PLACEBO_COLUMNS = [("placebo−control final", "reverse/placebo_minus_control/final"),
                   ("placebo−control max", "reverse/placebo_minus_control/max")]
STUDY_COLUMNS = [("held−chance max (bold: mean ≥ +0.122, the study's +13%)",
                  "reverse/heldout/max"),
                 ("placebo−chance max", "reverse/placebo/max")]
SHARED_COLUMNS = G_COLUMNS + PLACEBO_COLUMNS + STUDY_COLUMNS
# What those columns mean, for a table's header (PLACEBO_NOTE alone where there is no G).
G_NOTE = (
    f"G is n/a where the useful law slope is not below 0 (one-sided t-test over seeds, "
    f"p < {G_ALPHA:g}) or its mean is under {G_MIN_USEFUL:g} in size, and then has no t-test; "
    "beside the per-seed G, the ratio of the mean slopes with a percentile bootstrap 95% "
    "interval over seeds (10,000 resamples, seed 0).")
PLACEBO_NOTE = (
    "Placebo: a second random set of the control's size, evaluated like the control "
    "(placebo − control is the held-out test with nothing learned); '—' where a point was "
    "stored before the placebo existed. Max over "
    f"phase 3 of held-out − chance: k/n seeds ≥ {STUDY_UPLIFT:+.3f} (ln 1.13, the study's "
    "+13%), bold where the mean over seeds reaches it.")
SHARED_NOTE = f"{G_NOTE} {PLACEBO_NOTE}"


def record_values(record: dict, key: str) -> np.ndarray | None:
  """A stored point's per-seed values: a summary key, or "law:<name>" for its law record
  (``law_record``); None where the point has none (e.g. placebo keys of a point stored
  before the placebo set existed)."""
  if key.startswith("law:"):
    law = record.get("law", {})
    return np.asarray(law[key[4:]], dtype=float) if key[4:] in law else None
  if not record["summary"] or not all(key in s for s in record["summary"]):
    return None
  return np.array([s[key] for s in record["summary"]])


def record_g(record: dict, seed: int = 0) -> dict | None:
  """A stored point's G (``g_summary``) from its per-seed law slopes; None without them."""
  useful, heldout = (record_values(record, f"law:slope/{s}") for s in ("useful", "heldout"))
  return None if useful is None or heldout is None else g_summary(useful, heldout, seed)


def record_cell(record: dict, key: str, count_above: bool = False) -> str:
  """One table cell of a stored point: "G" (fmt_g) and "G:ratio" (fmt_g_ratio); a max over
  phase 3 of (log-lik − chance) against the study's +13% (fmt_study); any other key's mean ±
  sd (t, p) against 0, with ', k/n > 0' if ``count_above``. '—' where the point has none."""
  if key in ("G", "G:ratio"):
    g = record_g(record)
    return fmt_or_dash(g, fmt_g if key == "G" else fmt_g_ratio)
  values = record_values(record, key)
  if values is None:
    return fmt_or_dash(None)
  if key in STUDY_KEYS:
    return fmt_study(study_test(values))
  extra = f", {int((values > 0).sum())}/{values.size} > 0" if count_above else ""
  return fmt(paired_test(values, 0.0)) + extra
