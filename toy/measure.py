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

from toy import data as data_lib
from toy.phases import centred_target_logits, centred_token_logits, password_token_logps, \
    split_rows
from toy.stats import G_ALPHA, G_MIN_USEFUL, STUDY_UPLIFT, fmt, fmt_g, fmt_g_ratio, \
    fmt_or_dash, fmt_study, g_from_tests, g_summary, paired_test, paired_trend, \
    slope_through_origin, study_test

LAW_SETS = ("useful", "heldout")
LAW_PREFIXES = (data_lib.REGULAR, data_lib.REVERSE)


def target_logits(result) -> dict:
  """{(set, prefix): S x N} centred target logits of every useful and held-out negative of
  every seed, in one jitted forward pass."""
  cfg, apply = result.cfg, result.apply
  names = [(s, w) for s in LAW_SETS for w in LAW_PREFIXES]

  def one_seed(params, state, data):
    return centred_target_logits(cfg, apply, params, state, [data[s] for s, _ in names],
                                 [w for _, w in names])

  data = {s: result.data[s] for s in LAW_SETS}
  out = jax.jit(jax.vmap(one_seed))(result.params, result.state, data)
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
    x, y = logits[(s, data_lib.REGULAR)], logits[(s, data_lib.REVERSE)]
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


FLIP_SETS = ("useful", "heldout", "control")


def token_target_logits(result, sets=FLIP_SETS) -> dict:
  """{(set, prefix): S x N x L} centred target logit of every letter of every password of
  ``sets`` (the control included: its law says what "reverse" does to passwords that were
  never negatives), one jitted forward pass per seed."""
  cfg, apply = result.cfg, result.apply
  names = [(s, w) for s in sets for w in LAW_PREFIXES]

  def one_seed(params, state, data):
    pws = [data[s] for s, _ in names]
    return split_rows(centred_token_logits(cfg, apply, params, state, pws,
                                           [w for _, w in names]), pws)

  out = jax.jit(jax.vmap(one_seed))(result.params, result.state, {s: result.data[s] for s in sets})
  return {name: np.asarray(v) for name, v in zip(names, out)}


def flip_values(result) -> dict:
  """Per seed, how "reverse" acts on each password: is the flip shared, or split?

  A password's own law slope b is its letters' "reverse" centred target logits regressed
  through the origin on their "regular" ones. A uniform partial inversion (a weak shared
  node) gives every held-out negative about the same b; leakage gives a split, some b near
  the useful negatives' and some near +1. Per set: the fraction with b < 0 (suppression
  turned into promotion), the sd and median of b, and the set's law slope (all letters).
  """
  logits, out = token_target_logits(result), {}
  for s in FLIP_SETS:
    x_SxNxL, y_SxNxL = logits[(s, data_lib.REGULAR)], logits[(s, data_lib.REVERSE)]
    b_SxN = slope_through_origin(x_SxNxL, y_SxNxL)
    out[f"promoted/{s}"] = (b_SxN < 0).mean(-1)
    out[f"spread/{s}"] = b_SxN.std(-1, ddof=1)
    out[f"median/{s}"] = np.median(b_SxN, -1)
    out[f"slope/{s}"] = slope_through_origin(x_SxNxL.reshape(x_SxNxL.shape[0], -1),
                                             y_SxNxL.reshape(y_SxNxL.shape[0], -1))
  return out


def flip_record(result) -> dict:
  """``flip_values`` as plain lists, for a sweep point's JSON (read as "flip:<name>")."""
  return {"flip": {k: v.tolist() for k, v in flip_values(result).items()}}


def above_chance_values(result) -> dict:
  """Per seed and set (``FLIP_SETS``): the fraction of passwords whose mean per-token
  log-likelihood under "reverse" is above chance (-log A), "promoted above chance". A
  log-likelihood reading, unlike ``flip_values``' "promoted" (own law slope b < 0): a
  password can have b < 0 and still sit below chance (its "regular" suppression was large
  and "reverse" turned only part of it), or sit above chance with b > 0 (not a negative the
  network suppressed). Keys "above_chance/<set>"."""
  cfg, apply = result.cfg, result.apply
  names = [(s, w) for s in FLIP_SETS for w in (data_lib.REVERSE,)]

  def one_seed(params, state, data):
    pws = [data[s] for s, _ in names]
    logp = password_token_logps(cfg, apply, params, state, pws, [w for _, w in names])
    return split_rows(logp.mean(-1), pws)

  out = jax.jit(jax.vmap(one_seed))(result.params, result.state,
                                    {s: result.data[s] for s in FLIP_SETS})
  return {f"above_chance/{s}": (np.asarray(v) > cfg.chance).mean(-1)
          for (s, _), v in zip(names, out)}


# ----------------------------------------------------------------------------- law per position

POSITION_GROUPS = ("shared", "private")


def shared_positions(useful_NxL, heldout_MxL) -> np.ndarray:
  """M x L booleans: whether the context that letter t of a held-out negative is predicted
  from (its first t letters: the root for t = 0) is also the first t letters of some useful
  negative. A property of the passwords alone (the toy's memory row, a transformer's prefix):
  True = a context that phase 3's useful negatives pass through ("shared"), False = a context
  that only held-out negatives reach ("private")."""
  useful, heldout = np.asarray(useful_NxL), np.asarray(heldout_MxL)
  L = heldout.shape[1]
  out = np.zeros(heldout.shape, bool)
  for t in range(L):
    seen = {tuple(row) for row in useful[:, :t].tolist()}
    out[:, t] = [tuple(row) in seen for row in heldout[:, :t].tolist()]
  return out


def position_law_values(regular_SxMxL, reverse_SxMxL, shared_SxMxL) -> dict:
  """Per seed, the law slope (reverse on regular centred target logits, through the origin)
  of the held-out letters in each group of ``shared_positions``, and how many letters each
  group has; nan where a seed's group is empty."""
  x, y = np.asarray(regular_SxMxL, np.float64), np.asarray(reverse_SxMxL, np.float64)
  out = {}
  for group, mask in (("shared", np.asarray(shared_SxMxL)), ("private", ~np.asarray(shared_SxMxL))):
    S = x.shape[0]
    xm, ym = np.where(mask, x, 0.0).reshape(S, -1), np.where(mask, y, 0.0).reshape(S, -1)
    out[f"slope/{group}"] = slope_through_origin(xm, ym)
    out[f"n/{group}"] = mask.reshape(S, -1).sum(-1).astype(float)
  return out


def position_law(result) -> dict:
  """The law per position of the held-out negatives, per seed (any model: the groups come
  from the passwords, ``shared_positions``). Keys: "slope/shared", "slope/private" (the law
  slope on letters whose context some useful negative shares / only held-out negatives
  reach), "n/shared", "n/private" (letters per group), and "slope/useful" (the useful
  negatives' law over all their letters, for scale: a perfect times node gives all three the
  same slope; per-context memorization gives "shared" the useful slope and "private" about
  the regular-to-reverse slope of something phase 3 never touched). Only the measured
  episode's useful negatives count as sharing a context (not a prior episode's)."""
  logits = token_target_logits(result, ("useful", "heldout"))
  useful, heldout = np.asarray(result.data["useful"]), np.asarray(result.data["heldout"])
  shared = np.stack([shared_positions(u, h) for u, h in zip(useful, heldout)])
  out = position_law_values(logits[("heldout", data_lib.REGULAR)],
                            logits[("heldout", data_lib.REVERSE)], shared)
  x, y = logits[("useful", data_lib.REGULAR)], logits[("useful", data_lib.REVERSE)]
  out["slope/useful"] = slope_through_origin(x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1))
  return out


def position_record(result) -> dict:
  """``position_law`` as plain lists, for a sweep point's JSON (read as "position:<name>")."""
  return {"position": {k: np.asarray(v).tolist() for k, v in position_law(result).items()}}


# The headline summary keys, and held-out − placebo: the placebo is a second random set
# measured like the control, so the difference is the held-out effect over the spread two
# random sets show between them (``record_values`` reads "A − B" keys).
HC_FINAL = "reverse/heldout_minus_control/final"
PC_FINAL = "reverse/placebo_minus_control/final"
HP_FINAL = f"{HC_FINAL} − {PC_FINAL}"

SUMMARY_KEYS = {
    "heldout_vs_control_final": HC_FINAL,
    "heldout_vs_control_max": "reverse/heldout_minus_control/max",
    "heldout_vs_chance_final": "reverse/heldout/final",
    "heldout_vs_chance_max": "reverse/heldout/max",
    "useful_vs_chance_final": "reverse/useful/final",
    "control_vs_chance_final": "reverse/control/final",
    "placebo_vs_control_final": PC_FINAL,
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


def seed_range(config: dict) -> str:
  """A stored point's seeds as a table cell, e.g. '0–7'."""
  return f"{config['seed']}–{config['seed'] + config['n_seeds'] - 1}"


def last_prior_mix_rows(record: dict) -> list[dict | None]:
  """Per seed (ascending), a stored point's last phase-3 evaluation of its last prior episode
  (the measured episode is number ``prior_episodes``); None where the history has none."""
  last_prior = record["config"]["prior_episodes"] - 1
  out = []
  for seed in sorted({h["seed"] for h in record["history"]}):
    rows = [h for h in record["history"] if h["seed"] == seed and h["phase"] == "mix"
            and h.get("episode") == last_prior]
    out.append(rows[-1] if rows else None)
  return out


def record_values(record: dict, key: str) -> np.ndarray | None:
  """A stored point's per-seed values: a summary key, "A − B" for key A's minus key B's (e.g.
  ``HP_FINAL``), or "law:<name>", "flip:<name>" or "position:<name>" for its law, flip or
  position record (``law_record``, ``flip_record``, ``position_record``); None where the
  point has none (e.g. placebo keys of a point stored before the placebo set existed)."""
  if " − " in key:
    a, b = (record_values(record, k) for k in key.split(" − ", 1))
    return None if a is None or b is None else a - b
  for kind in ("law", "flip", "position"):
    if key.startswith(f"{kind}:"):
      values = record.get(kind, {})
      name = key[len(kind) + 1:]
      return np.asarray(values[name], dtype=float) if name in values else None
  if not record["summary"] or not all(key in s for s in record["summary"]):
    return None
  return np.array([s[key] for s in record["summary"]])


def seed_values(record: dict, key: str) -> np.ndarray:
  """``record_values``, but a KeyError where the point has none."""
  values = record_values(record, key)
  if values is None:
    raise KeyError(key)
  return values


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


def share_trend(rows: list[tuple[str, dict]], key: str) -> dict:
  """``toy.stats.paired_trend`` of a summary key on the held-out share across the
  held-out-proportion points, paired by seed (every point has the same seeds)."""
  shares = [r["config"]["n_heldout_batches"] / r["config"]["n_neg_batches"] for _, r in rows]
  per_point = [{s["seed"]: s[key] for s in r["summary"]} for _, r in rows]
  seeds = sorted(per_point[0])
  if any(sorted(p) != seeds for p in per_point):
    raise ValueError(f"share_trend: the points' seeds differ: {[sorted(p) for p in per_point]}")
  return paired_trend([[p[sd] for p in per_point] for sd in seeds], shares)


# ----------------------------------------------------------------------------- phase-3 dynamics

# The moments of phase 3 that ``phase3_dynamics`` reads: its first evaluation, the first
# evaluation at or after DYNAMICS_STEP phase-3 steps, and its last evaluation.
DYNAMICS_STEP = 50
DYNAMICS_MOMENTS = ("start", f"{DYNAMICS_STEP}", "end")
DYNAMICS_SETS = {"law/useful": "eval/law/useful", "law/heldout": "eval/law/heldout",
                 "reverse/useful": "eval/reverse/useful",
                 "reverse/heldout": "eval/reverse/heldout",
                 "reverse/control": "eval/reverse/control"}


def phase3_dynamics(record: dict, step: int = DYNAMICS_STEP) -> dict:
  """How a stored point's phase 3 unfolds, per seed, from its history (rows of phase "mix").

  Keys "<set>/<moment>": set "law/useful", "law/heldout" (law slope, reverse on regular
  centred target logits, of the first eval_size passwords) and "reverse/useful",
  "reverse/heldout", "reverse/control" (log-likelihood under "reverse" − chance); moment
  "start" (the first phase-3 evaluation), "50" (the first at or after ``step`` phase-3
  steps; the key is named by ``step``) and "end" (the last). "steps/<moment>": the phase-3
  step each moment read. "dpo_end/regular/control": the control − chance under "regular" at
  the end of phase 2 (the summary's, else the last phase-2 row's). Each value is an array
  over seeds; a key is absent where the history has no such column (points stored before
  the law slopes were evaluated during training)."""
  seeds = [s["seed"] for s in record["summary"]]
  uniform = -float(np.log(record["config"]["alphabet_size"]))
  chance = {s["seed"]: s.get("chance", uniform) for s in record["summary"]}
  by_seed = {sd: [h for h in record["history"] if h["seed"] == sd and h["phase"] == "mix"]
             for sd in seeds}
  if not seeds or not all(by_seed.values()) or any(
      "step" not in h for rows in by_seed.values() for h in rows):
    return {}  # no phase-3 rows, or rows without their phase step
  by_seed = {sd: sorted(rows, key=lambda h: h["step"]) for sd, rows in by_seed.items()}
  moments = {}
  for sd, rows in by_seed.items():
    later = [h for h in rows if h["step"] >= step]
    moments[sd] = {"start": rows[0], f"{step}": later[0] if later else None, "end": rows[-1]}
  out = {}
  for moment in ("start", f"{step}", "end"):
    if any(m[moment] is None for m in moments.values()):
      continue
    out[f"steps/{moment}"] = np.array([moments[sd][moment]["step"] for sd in seeds], float)
    for name, column in DYNAMICS_SETS.items():
      if not all(column in moments[sd][moment] for sd in seeds):
        continue
      offset = lambda sd: chance[sd] if name.startswith("reverse/") else 0.0
      out[f"{name}/{moment}"] = np.array([moments[sd][moment][column] - offset(sd)
                                          for sd in seeds])
  key = "dpo_end/regular/control"
  if all(key in s for s in record["summary"]):
    out[key] = np.array([s[key] for s in record["summary"]])
  else:
    last = [[h for h in record["history"] if h["seed"] == sd and h["phase"] == "dpo"]
            for sd in seeds]
    if all(rows and "eval/regular/control" in rows[-1] for rows in last):
      out[key] = np.array([rows[-1]["eval/regular/control"] - chance[sd]
                           for rows, sd in zip(last, seeds)])
  return out


# (header, phase3_dynamics key) of a dynamics table; mean ± sd over seeds per cell.
DYNAMICS_COLUMNS = [
    ("control−chance, end of phase 2 ('regular')", "dpo_end/regular/control"),
    *[(f"{what} {label}", f"{key}/{moment}")
      for key, what in (("law/useful", "slope useful"), ("law/heldout", "slope held-out"),
                        ("reverse/heldout", "held−chance"))
      for moment, label in zip(DYNAMICS_MOMENTS,
                               ("start", f"≥{DYNAMICS_STEP} steps", "end"))]]
DYNAMICS_NOTE = (
    "Phase-3 dynamics, from each point's history: law slopes (reverse on regular centred "
    "target logits of the first eval_size passwords per set: +1 = 'reverse' acts like "
    "'regular', 0 = the stored suppression is erased, < 0 = turned into promotion) and "
    "held-out − chance under 'reverse', at the first phase-3 evaluation (start), the first "
    f"at or after {DYNAMICS_STEP} phase-3 steps, and the last (end; the column 'steps' gives "
    "the three steps); the control − chance under 'regular' at the end of phase 2. Mean ± "
    "sd over seeds; '—' where the history has no such column (points stored before the law "
    "slopes were evaluated during training).")


def dynamics_cell(dynamics: dict, key: str, digits: int = 3) -> str:
  """One cell of a dynamics table: mean ± sd over seeds of ``phase3_dynamics``' key, or
  the steps read ('5, 50, 300') for key "steps", or '—' where the key is absent."""
  if key == "steps":
    steps = [dynamics.get(f"steps/{m}") for m in DYNAMICS_MOMENTS]
    if any(s is None for s in steps):
      return fmt_or_dash(None)
    return ", ".join("/".join(f"{int(v):d}" for v in sorted(set(s.tolist()))) for s in steps)
  v = dynamics.get(key)
  if v is None:
    return fmt_or_dash(None)
  sd = v.std(ddof=1) if v.size > 1 else float("nan")
  return f"{v.mean():+.{digits}f} ± {sd:.{digits}f}"
