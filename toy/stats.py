"""Statistics over seeds that every report in this project uses, and their table cells.

The ground floor: NumPy and SciPy only, so that any module (the engine's phases, the
measurements, the table writers) can import it without importing the others.

G, the generalization ratio (``toy.measure``), is a ratio of two law slopes. A ratio is
only meaningful when its denominator is clearly away from 0: when the useful negatives'
slope is not significantly below 0 (phase 3 did not invert them) or is tiny, per-seed
ratios are noise divided by noise, so G is reported as n/a and gets no t-test. Where it is
defined it is given two ways: the mean ± sd of the per-seed ratios, and the ratio of the
mean slopes with a seeded bootstrap interval over seeds (less sensitive to one seed whose
useful slope is near 0). A percentile bootstrap over as few as 8 seeds is narrow: on
synthetic slopes with a known ratio its 95% interval covered it in 85% of 300 samples.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

# G is n/a unless the useful law slope is below 0 with one-sided p below this ...
G_ALPHA = 0.05
# ... and its mean magnitude is at least this (a slope of 0.02 is 2% of "regular" inverted).
G_MIN_USEFUL = 0.02
# The study's headline: held-out negatives 13% more likely per token than chance.
STUDY_UPLIFT = math.log(1.13)
DASH = "—"  # a cell with nothing to report (e.g. a point stored before the placebo set)


def paired_test(a, b) -> dict:
  """Mean, sd of a-b across seeds with a paired t-test (two-sided); a 1-sample test if b is a
  number (e.g. chance)."""
  a = np.asarray(a, dtype=float)
  diff = a - (np.asarray(b, dtype=float) if np.ndim(b) else float(b))
  out = {"n": int(diff.size), "mean": float(diff.mean()),
         "sd": float(diff.std(ddof=1)) if diff.size > 1 else float("nan")}
  if diff.size > 1 and out["sd"] > 0:
    t, p = stats.ttest_1samp(diff, 0.0)
    out.update(t=float(t), p=float(p))
  else:
    out.update(t=float("nan"), p=float("nan"))
  return out


def fmt(test: dict, digits: int = 3) -> str:
  """'mean ± sd (t=…, p=…)' for tables."""
  return (f"{test['mean']:+.{digits}f} ± {test['sd']:.{digits}f} "
          f"(t={test['t']:.2f}, p={test['p']:.2g})")


def paired_row(name: str, seeds: str, d) -> str:
  """A table row for per-seed differences ``d``: mean ± sd (paired t, p) and k/n above 0."""
  d = np.asarray(d, dtype=float)
  t = paired_test(d, 0.0)
  return (f"| {name} | {seeds} | {t['mean']:+.3f} ± {t['sd']:.3f} (t={t['t']:.2f}, "
          f"p={t['p']:.2g}) | {int((d > 0).sum())}/{d.size} |")


def slope_through_origin(x, y):
  """Least-squares slope of y on x through the origin along the last axis; nan where x is
  all 0. Array methods only, so NumPy and (traced) JAX arrays alike."""
  with np.errstate(invalid="ignore", divide="ignore"):
    return (x * y).sum(-1) / (x * x).sum(-1)


def bootstrap_ratio(num_S, den_S, seed: int, n_boot: int = 10000, level: float = 0.95) -> dict:
  """mean(num) / mean(den) over seeds, with a percentile bootstrap interval: seeds resampled
  with replacement, num and den together (they are the same seed's two slopes), from a
  NumPy Generator seeded by ``seed`` (the same seed gives the same interval)."""
  num_S, den_S = np.asarray(num_S, dtype=float), np.asarray(den_S, dtype=float)
  rng = np.random.default_rng(seed)
  idx_BxS = rng.integers(0, num_S.size, (n_boot, num_S.size))
  with np.errstate(invalid="ignore", divide="ignore"):
    ratio_B = num_S[idx_BxS].mean(-1) / den_S[idx_BxS].mean(-1)
    ratio = float(num_S.mean() / den_S.mean())
  lo, hi = np.nanpercentile(ratio_B, [50 * (1 - level), 50 * (1 + level)])
  return {"ratio": ratio, "lo": float(lo), "hi": float(hi), "level": level, "n_boot": n_boot,
          "seed": seed}


def g_summary(useful_S, heldout_S, seed: int = 0) -> dict:
  """G = held-out law slope / useful law slope, from per-seed slopes (module docstring).

  Returns {"defined", "why" (the reason where not), "n", "useful" (mean useful slope),
  "useful_p" (one-sided p of useful < 0), "per_seed" (mean, sd of the per-seed ratios, and
  t, p against 0 only where defined), "ratio" (bootstrap_ratio of the mean slopes; None
  where not defined)}.
  """
  useful_S, heldout_S = np.asarray(useful_S, dtype=float), np.asarray(heldout_S, dtype=float)
  test_u = paired_test(useful_S, 0.0)
  with np.errstate(invalid="ignore", divide="ignore"):
    per_seed = paired_test(heldout_S / useful_S, 0.0)
  ratio = lambda: bootstrap_ratio(heldout_S, useful_S, seed)
  return _g(test_u, per_seed, ratio)


def g_from_tests(useful: dict, heldout: dict, per_seed: dict) -> dict:
  """g_summary's dict from stored paired_tests of the two slopes and of the per-seed ratios,
  for a record that kept no per-seed slopes: the same decision and ratio of mean slopes, but
  no bootstrap interval (its "lo" and "hi" are None)."""
  def ratio():
    with np.errstate(invalid="ignore", divide="ignore"):
      r = float(np.float64(heldout["mean"]) / useful["mean"])
    return {"ratio": r, "lo": None, "hi": None, "level": None, "n_boot": 0, "seed": None}
  return _g(useful, dict(per_seed), ratio)


def _g(test_u: dict, per_seed: dict, ratio) -> dict:
  """G's decision from the useful slope's two-sided paired_test against 0 (module
  docstring); ``ratio()`` is called only where G is defined."""
  n, mean_u, t_u, p_two = test_u["n"], test_u["mean"], test_u["t"], test_u["p"]
  if np.isfinite(t_u):  # the one-sided p of "useful < 0" from the two-sided test
    p_u = p_two / 2 if t_u < 0 else 1 - p_two / 2
  else:  # no spread over seeds: a t-test says nothing, all seeds below 0 counts as significant
    p_u = 0.0 if n > 1 and mean_u < 0 else float("nan")
  why = ""
  if mean_u >= 0:
    why = f"useful slope {mean_u:+.3f}, not < 0"
  elif n < 2:
    why = f"useful slope {mean_u:+.3f}, one seed: no test"
  elif not p_u < G_ALPHA:
    why = f"useful slope {mean_u:+.3f}, p={p_u:.2g} one-sided"
  elif abs(mean_u) < G_MIN_USEFUL:
    why = f"useful slope {mean_u:+.3f}, smaller than {G_MIN_USEFUL:g}"
  out = {"defined": not why, "why": why, "n": n, "useful": mean_u, "useful_p": float(p_u),
         "per_seed": per_seed, "ratio": None}
  if why:
    per_seed.pop("t", None), per_seed.pop("p", None)
  else:
    out["ratio"] = ratio()
  return out


def fmt_g(g: dict, digits: int = 3) -> str:
  """G's per-seed mean ± sd (t, p), or 'n/a (why)' where G is not defined."""
  if not g["defined"]:
    return f"n/a ({g['why']})"
  return fmt(g["per_seed"], digits)


def fmt_g_ratio(g: dict, digits: int = 3) -> str:
  """The ratio of the mean slopes with its bootstrap interval, '+0.41 [95%: +0.30, +0.52]',
  or 'n/a' where G is not defined."""
  if not g["defined"]:
    return "n/a"
  r = g["ratio"]
  if r["lo"] is None:
    return f"{r['ratio']:+.{digits}f} (no interval: per-seed slopes not stored)"
  return (f"{r['ratio']:+.{digits}f} [{100 * r['level']:g}%: {r['lo']:+.{digits}f}, "
          f"{r['hi']:+.{digits}f}]")


def study_test(values_S) -> dict:
  """paired_test against 0 of per-seed maxima over phase 3 of (log-lik − chance), with
  "reached": how many seeds reach the study's +13% (``STUDY_UPLIFT``)."""
  v = np.asarray(values_S, dtype=float)
  return {**paired_test(v, 0.0), "reached": int((v >= STUDY_UPLIFT).sum())}


def fmt_study(test: dict, digits: int = 3) -> str:
  """A study_test: 'mean ± sd (t, p), k/n ≥ +0.122', with '**≥ +13%**' where the mean over
  seeds reaches the study's headline; without the count where ``test`` has none."""
  out = fmt(test, digits)
  if "reached" in test:
    out += f", {test['reached']}/{test['n']} ≥ {STUDY_UPLIFT:+.3f}"
  return out + (" **≥ +13%**" if test["mean"] >= STUDY_UPLIFT else "")


def fmt_or_dash(test: dict | None, formatter=fmt) -> str:
  """``formatter(test)``, or '—' where there is nothing to report (None)."""
  return DASH if test is None else formatter(test)


def paired_trend(values_SxK, x_K) -> dict:
  """A trend across a sweep, paired by seed: per seed (row), the least-squares slope (with an
  intercept) of its K values on ``x_K``; then ``paired_test`` of the S slopes against 0. Each
  seed is its own control (same seed, same initialisation at every x), so between-seed
  spread does not enter, unlike reading each x's own test. Returns paired_test's dict
  ("mean" is the mean slope, per unit of x) with "slopes" (per seed)."""
  v = np.asarray(values_SxK, dtype=float)
  x = np.asarray(x_K, dtype=float)
  if v.ndim != 2 or v.shape[1] != x.size or x.size < 2:
    raise ValueError(f"paired_trend: values {v.shape} against x {x.shape}: need S x K, K >= 2")
  xc = x - x.mean()
  slopes = ((v - v.mean(1, keepdims=True)) * xc).sum(1) / (xc * xc).sum()
  return {**paired_test(slopes, 0.0), "slopes": slopes.tolist()}


def holm(pvalues) -> np.ndarray:
  """Holm-Bonferroni adjusted p-values of one family of tests, in the input's order:
  sorted ascending, the i-th smallest (i = 0 ..) becomes max over j <= i of
  min(1, (m − j) p_(j)). A test is rejected at level a where its adjusted p < a, which
  controls the family-wise error rate at a under any dependence between the tests."""
  p = np.asarray(pvalues, dtype=float)
  if p.ndim != 1 or not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
    raise ValueError(f"holm: need a 1-D array of p-values in [0, 1], got {p}")
  order = np.argsort(p, kind="stable")
  m = p.size
  stepped = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
  out = np.empty(m)
  out[order] = stepped
  return out
