"""Holm correction over the headline tests of the README and docs, each recomputed from its
stored point.

  python experiments/holm.py                 # writes results/holm.md and figures/holm.png
  python experiments/holm.py --out FILE --docs README.md docs/partial.md

Every p-value the README's and docs' prose states as a finding (tables excluded: they are
copied from results/*.md) is listed in TESTS with the stored point it reads, the per-seed value
and the test the prose used: a one-sample t-test against 0 over seeds (paired per seed for
held-out − control, whose per-seed values are already differences; toy.stats.paired_test), or
the held-out-share trend paired by seed (toy.stats.paired_trend, via toy.measure.share_trend).
A comparison of two points on the same seeds (acquired − sham) is paired per seed, two seed
blocks are pooled where the prose pools them, and held-out − placebo is the difference of two
summary keys of one point. The stored points are found by the configs their scripts train
(toy.points). Nothing is typed by hand: each p is recomputed from results/ and its sentence is
found by a snippet of its text in README.md or docs/*.md (its file, line and section are looked
up, so an edited sentence shows as "not found"). A test whose stored point cannot be found is
listed as untraceable and is kept out of the family. The family is every traceable test;
toy.stats.holm adjusts its p-values (family-wise error rate 0.05).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from toy import points as P
from toy.config import make_config, producing_command
from toy.measure import HC_FINAL, HP_FINAL, record_values, share_trend
from toy.plots import save_figure
from toy.stats import holm, paired_test
from toy.sweep import is_stored, load_point, point_id, stored_folder

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
ALPHA = 0.05


HC_MAX = "reverse/heldout_minus_control/max"
INSPECT_ACQUIRED = os.path.join("results", "inspect_acquired.json")


def acq(label: str, seed: int = 0) -> tuple:
  """acquired.py's point ``label`` on the 8 seeds from ``seed``."""
  return ("acquired", label, seed)


def acq_diff(a: str, b: str, seed: int = 0) -> tuple:
  return ("diff", acq(a, seed), acq(b, seed))


def both_blocks(source) -> tuple:
  """``source(seed)`` on seeds 0-7 and on 8-15, pooled (16 seeds)."""
  return ("pooled", source(0), source(8))


def lp(label: str) -> tuple:
  return ("long_passwords", label)


# (test, snippets of the README's or docs' prose (whitespace normalised), source, value).
# Sources of one stored point:
# ("partial", label), ("ladder", rung), ("figures", preset, figure, label),
# ("search", stage), ("confirm", label) (on seeds 8-15), ("acquired", label, first seed),
# ("long_passwords", arm); value: a record_values key (summary or "law:"), or two joined by
# " − " (their per-seed difference).
# Composite sources: ("diff", a, b) (a − b, paired per seed), ("pooled", a, b, ..) (the seeds
# of each, together). Others: ("trend", preset) (value: the key whose trend);
# ("inspect_acquired",) (value: a graft contrast of results/inspect_acquired.json).
TESTS = [
    ("scale 0 (partial preset), held-out − control, final",
     ["+0.096 ± 0.086 (8/8 seeds > 0, paired t = 3.14, p = 0.016)",
      "held-out − control is +0.096 ± 0.086, 8/8 seeds > 0, p = 0.016",
      "seeds 0–7, has p = 0.016"], ("partial", "scale 0"), HC_FINAL),
    ("scale 1 (PROTOCOL), within-set slope of held-out negatives",
     ["−0.05 ± 0.09, p = 0.14", "−0.052 ± 0.088 (p = 0.14)"],
     ("partial", "scale 1 (PROTOCOL)"), "law:within/heldout"),
    ("scale 0, phase-3 lr 1e-2, held-out − control, final",
     ["+0.327 ± 0.058 over the control (8/8 seeds, t = 15.9)"],
     ("partial", "scale 0, phase-3 lr 1e-2"), HC_FINAL),
    ("scale 0, ft_weight 2, held-out − control, final",
     ["Weight 2: +0.257 ± 0.065 (8/8, t = 11.1)"], ("partial", "scale 0, ft_weight 2"),
     HC_FINAL),
    ("blocks frozen, embedding trains, held-out − control, final",
     ["+0.047 ± 0.043 (8/8 > 0, p = 0.017)"],
     ("partial", "scale 0 on blocks only, embedding trains"), HC_FINAL),
    ("scale 0, batch 128, held-out − control, final",
     ["+0.484 ± 0.183 over the control (8/8, t = 7.5)"], ("partial", "scale 0, batch 128"),
     HC_FINAL),
    ("scale 0, 16-token passwords, held-out − control, final",
     ["+0.001 ± 0.013 (4/8 seeds > 0, p = 0.89)"], ("partial", "scale 0, 16-token passwords"),
     HC_FINAL),
    ("interp (A=256, L=2), scale 0, held-out − control, final",
     ["−0.051 ± 0.059 (1/8 seeds > 0, p = 0.046"], ("partial", "interp (A=256, L=2), scale 0"),
     HC_FINAL),
    ("scale 0.1, held-out − control, final", ["(+0.112 ± 0.041, t = 7.8,"],
     ("partial", "scale 0.1"), HC_FINAL),
    ("ladder `times-node`, held-out − control, final", ["+1.46 ± 0.10 (t = 42.8)"],
     ("ladder", "times-node"), HC_FINAL),
    ("ladder `swiglu`, held-out − control, final", ["different from 0 (p = 0.31, 0.26)"],
     ("ladder", "swiglu"), HC_FINAL),
    ("ladder `bilinear`, held-out − control, final", ["different from 0 (p = 0.31, 0.26)"],
     ("ladder", "bilinear"), HC_FINAL),
    ("figures, partial: reference (5 seeds), held-out − control, final",
     ["the reference uplift is +0.070 ± 0.074 (p = 0.10"],
     ("figures", "partial", "phases", "reference"), HC_FINAL),
    ("figures, partial: 2 layers × 32, held-out − control, final",
     ["(−0.040 ± 0.012, p = 0.002"], ("figures", "partial", "model_size", "2L d32"), HC_FINAL),
    ("figures, partial: prefix + no freeze, held-out − control, final",
     ["(+0.044 ± 0.045, p = 0.095)"], ("figures", "partial", "ablations", "prefix + no freeze"),
     HC_FINAL),
    ("figures, partial: no prefix + freeze, held-out − control, final",
     ["+0.145 ± 0.022 over the control (p = 1e-4)"],
     ("figures", "partial", "ablations", "no prefix + freeze"), HC_FINAL),
    ("figures, partial: no prefix + freeze, held-out − chance, final",
     ["+0.092 ± 0.013 over chance (p = 8e-5)"],
     ("figures", "partial", "ablations", "no prefix + freeze"), "reverse/heldout/final"),
    ("figures, partial: held-out share, trend of held-out − control (final)",
     ["+0.205 ± 0.148 nats/token per unit share, 5/5 seeds > 0, t = 3.09, p = 0.037"],
     ("trend", "partial"), HC_FINAL),
    ("figures, partial: held-out share, trend of held-out − chance (final)",
     ["(−0.21 ± 0.44 per unit share, t = −1.07, p = 0.35)"], ("trend", "partial"),
     "reverse/heldout/final"),
    ("figures, cpu: held-out share 0.10, held-out − control, final", ["(p = 0.28 and 0.21"],
     ("figures", "cpu", "heldout_proportion", "0.10"), HC_FINAL),
    ("figures, cpu: held-out share 0.10, held-out − control, max over phase 3",
     ["(p = 0.28 and 0.21"], ("figures", "cpu", "heldout_proportion", "0.10"), HC_MAX),
    ("figures, cpu: held-out share, trend of held-out − control (final)",
     ["−0.63 ± 0.22 nats/token per unit share, 0/5 seeds > 0, t = −6.34, p = 0.003"],
     ("trend", "cpu"), HC_FINAL),
    ("search, `cpu` 8 seeds: useful − chance, final",
     ["(+0.242 ± 0.192 nats/token above chance, t = 3.57, p = 0.009)"], ("search", "confirm"),
     "reverse/useful/final"),
    ("search, `cpu` 8 seeds: held-out − control, final",
     ["(−0.029 ± 0.031, paired t = −2.65, p = 0.033)",
      "they end below it (−0.029 ± 0.031, p = 0.033)"],
     ("search", "confirm"), HC_FINAL),
    ("search, `cpu` 8 seeds: held-out − control, max over phase 3",
     ["−0.002 ± 0.020 (t = −0.24, p = 0.82)"], ("search", "confirm"), HC_MAX),
    ("search, interp 8 seeds: held-out − control, final",
     ["(final −0.136 ± 0.169, p = 0.057"], ("search", "interp"), HC_FINAL),
    ("search, interp 8 seeds: held-out − control, max over phase 3",
     ["max −0.011 ± 0.082, p = 0.72"], ("search", "interp"), HC_MAX),
    ("confirmation (seeds 8-15): scale 0, held-out − control, final",
     ["0 +0.031 ± 0.033 (p = 0.033, 7/8;"], ("confirm", "partial, scale 0"), HC_FINAL),
    ("confirmation (seeds 8-15): scale 0.1, held-out − control, final",
     ["+0.115 (p = 0.0052)"], ("confirm", "partial, scale 0.1"), HC_FINAL),
    ("confirmation (seeds 8-15): scale 0, batch 128, held-out − control, final",
     ["+0.384 (p = 0.00024)"], ("confirm", "partial, scale 0, batch 128"), HC_FINAL),
    ("confirmation (seeds 8-15): times-node rung, held-out − control, final",
     ["+1.408 (p = 1.1e-08;"], ("confirm", "times node (ladder), PROTOCOL phase 3"), HC_FINAL),
    ("confirmation (seeds 8-15): PROTOCOL, held-out − control, final",
     ["PROTOCOL −0.068 (p = 0.0084, not > 0)"], ("confirm", "PROTOCOL (scale 1)"), HC_FINAL),
    ("scale 0 (partial preset), seeds 0-15 pooled, held-out − control, final",
     ["pooled 16: +0.063, p = 0.003"],
     ("pooled", ("partial", "scale 0"), ("confirm", "partial, scale 0")), HC_FINAL),
    ("acquired (seeds 0-7): acquired − sham, held-out − control, final, paired per seed",
     ["+0.235 ± 0.077 on seeds 0–7 (8/8, t = 8.6, p = 6e-5)"], acq_diff("acquired", "sham"),
     HC_FINAL),
    ("acquired (seeds 8-15): acquired − sham, held-out − control, final, paired per seed",
     ["+0.258 ± 0.203 on seeds 8–15 (8/8, t = 3.6, p = 0.009)",
      "(acquired − sham +0.258 ± 0.203, 8/8;"], acq_diff("acquired", "sham", 8), HC_FINAL),
    ("acquired (seeds 0-15 pooled): acquired − sham, held-out − control, final, paired per seed",
     ["acquired − sham +0.246 ± 0.149, 16/16", "pooled +0.246 ± 0.149 (16/16)"],
     both_blocks(lambda seed: acq_diff("acquired", "sham", seed)), HC_FINAL),
    ("acquired (seeds 0-15 pooled): acquired, held-out − control, final",
     ["+0.150 ± 0.143 over seeds 0–15 (15/16, t = 4.2, p = 0.0008)",
      "+0.150 ± 0.143 over seeds 0–15, 15/16"],
     both_blocks(lambda seed: acq("acquired", seed)), HC_FINAL),
    ("acquired (seeds 8-15): acquired, held-out − control, final",
     ["on seeds 8–15 alone p = 0.09"], acq("acquired", 8), HC_FINAL),
    ("acquired (seeds 0-15 pooled): sham − scratch, held-out − control, final, paired per seed",
     ["(−0.048 ± 0.073 pooled, p = 0.02)"],
     both_blocks(lambda seed: acq_diff("sham", "scratch", seed)), HC_FINAL),
    ("acquired (seeds 0-7): sham − scratch, held-out − control, final, paired per seed",
     ["(sham − scratch −0.031 ± 0.051, p = 0.13)"], acq_diff("sham", "scratch"), HC_FINAL),
    ("acquired (seeds 0-7): acquired, held-out − placebo, final",
     ["+0.128 ± 0.108 (7/8, p = 0.012) on seeds 0–7"], acq("acquired"), HP_FINAL),
    ("acquired (seeds 8-15): acquired, held-out − placebo, final",
     ["+0.139 ± 0.171 (7/8, p = 0.056) on 8–15"], acq("acquired", 8), HP_FINAL),
    ("acquired dial (seeds 0-7): acquired x2, held-out − control, final",
     ["held-out − control +0.060 ± 0.105 (6/8, p = 0.15)"], acq("acquired x2"), HC_FINAL),
    ("acquired dial (seeds 0-7): acquired x2 − acquired, held-out − control, final, paired",
     ["−0.115 ± 0.165 against one prior episode (paired, 2/8, p = 0.088)"],
     acq_diff("acquired x2", "acquired"), HC_FINAL),
    ("acquired dial (seeds 0-7): acquired x2, held-out − placebo, final",
     ["(+0.021 ± 0.128, p = 0.66)"], acq("acquired x2"), HP_FINAL),
    ("acquired dial (seeds 0-7): prior scale 0.3 − sham, held-out − control, final, paired",
     ["not different from sham (+0.079 ± 0.166, p = 0.22)"],
     acq_diff("prior scale 0.3", "sham"), HC_FINAL),
    ("acquired dial (seeds 0-7): sham x2, held-out − control, final",
     ["−0.147 ± 0.164 (1/8 > 0, p = 0.038 below 0)"], acq("sham x2"), HC_FINAL),
    ("acquired dial (seeds 0-7): sham x2 − sham, held-out − control, final, paired",
     ["(−0.088 ± 0.174 paired, p = 0.2)"], acq_diff("sham x2", "sham"), HC_FINAL),
    ("acquired dial (seeds 0-7): acquired x4, held-out − control, final",
     ["+0.037 ± 0.059 (5/8, p = 0.12)"], acq("acquired x4"), HC_FINAL),
    ("acquired dial (seeds 0-7): acquired x4 − acquired, held-out − control, final, paired",
     ["(−0.138 ± 0.124 paired, 1/8, p = 0.016)"], acq_diff("acquired x4", "acquired"), HC_FINAL),
    ("acquired dial (seeds 0-7): acquired x4, held-out − placebo, final",
     ["(+0.014 ± 0.060, p = 0.54)"], acq("acquired x4"), HP_FINAL),
    ("acquired dial (seeds 0-7): sham x4, held-out − control, final",
     ["−0.139 ± 0.099 (0/8, p = 0.0054 below 0)"], acq("sham x4"), HC_FINAL),
    ("acquired dial (seeds 0-7): sham x4 − sham, held-out − control, final, paired",
     ["(−0.079 ± 0.124 paired, p = 0.11)"], acq_diff("sham x4", "sham"), HC_FINAL),
    ("acquired dial (seeds 0-7): sham x4, held-out − placebo, final",
     ["(−0.167 ± 0.135, p = 0.0099)"], acq("sham x4"), HP_FINAL),
    ("inspect_acquired (seeds 0-7): the lower half's origin (acquired − sham lower), "
     "held-out − control", ["the lower half's by −0.054 ± 0.093 (p = 0.14)"],
     ("inspect_acquired",), "lower half's origin (acquired − sham lower, mean over both uppers)"),
    ("inspect_acquired (seeds 0-7): sham lower + acquired upper − sham, held-out − control",
     ["+0.083 over sham (7/8, p = 0.02)"], ("inspect_acquired",),
     "(sham lower + acquired upper) − sham"),
    ("16 letters (seeds 0-7): scratch, held-out − control, final",
     ["held-out − control −0.007 ± 0.065 (4/8 > 0, p = 0.76)"], lp("scratch"), HC_FINAL),
    ("16 letters (seeds 0-7): lever, held-out − control, final",
     ["+0.257 ± 0.087 (8/8, p = 7.2e-05)"], lp("lever"), HC_FINAL),
    ("16 letters (seeds 0-7): lever − scratch, held-out − control, final, paired per seed",
     ["lever − scratch +0.264 ± 0.096 (paired, 8/8, p = 1.1e-04)"],
     ("diff", lp("lever"), lp("scratch")), HC_FINAL),
    ("16 letters (seeds 0-7): acquired, held-out − control, final",
     ["+0.080 ± 0.154 (6/8, p = 0.19;", "+0.080 ± 0.154 (6/8 > 0, p = 0.19)",
      "+0.080 ± 0.154 over the control (6/8, p = 0.19)"], lp("acquired"), HC_FINAL),
    ("16 letters (seeds 0-7): acquired, held-out − placebo, final",
     ["above its placebo by +0.100 ± 0.093 (7/8, p = 0.018)"], lp("acquired"), HP_FINAL),
    ("16 letters (seeds 0-7): acquired − scratch, held-out − control, final, paired per seed",
     ["(+0.087 ± 0.165 paired, 5/8, p = 0.18)"], ("diff", lp("acquired"), lp("scratch")),
     HC_FINAL),
    ("16 letters (seeds 0-7): sham, held-out − control, final",
     ["held-out − control −0.191 ± 0.107 (0/8, p = 0.0015"], lp("sham"), HC_FINAL),
    ("16 letters (seeds 0-7): acquired − sham, held-out − control, final, paired per seed",
     ["acquired − sham is +0.271 ± 0.205 (8/8, p = 0.0072)", "(+0.271 ± 0.205, 8/8)"],
     ("diff", lp("acquired"), lp("sham")), HC_FINAL),
]


def _partial(label: str):
  return dict(pt for pts in P.PARTIAL_STAGES.values() for pt in pts).get(label)


def _figures(preset: str, figure: str, label: str):
  return dict(P.figure_points(make_config(preset, n_seeds=5))[figure]).get(label)


def _confirm(label: str):  # a headline point on the confirmation seeds 8-15
  cfg = dict((name, c) for name, _, _, c in P.CONFIRM_POINTS).get(label)
  return cfg and P.confirm_config(cfg)


def _search(stage: str):
  return (P.SEARCH_STAGES.get(stage) or [None])[0]


def _acquired(label: str, seed: int):
  return next((c for pts in P.acquired_stages().values() for name, c in pts
               if name == label and c.seed == seed), None)


# kind: (f(*source[1:]) -> the config or None, f(*source[1:]) -> the folders that may hold it,
# relative to ROOT; the first that does is read).
POINTS = {
    "partial": (_partial, lambda _: (P.PARTIAL_OUT,)),
    "ladder": (P.RUNG_BY_NAME.get, lambda _: (P.LADDER_OUT, *P.LADDER_ALSO_READ)),
    "figures": (_figures, lambda preset, *_: (os.path.join("results", "paper_figures", preset),)),
    "confirm": (_confirm, lambda _: (P.CONFIRM_OUT, *P.CONFIRM_ALSO_READ)),
    "search": (_search, lambda _: (P.SEARCH_OUT,)),
    "acquired": (_acquired, lambda *_: (P.ACQUIRED_OUT, *P.ACQUIRED_ALSO_READ)),
    "long_passwords": (lambda arm: dict(P.long_password_arms()).get(arm),
                       lambda _: (P.LONG_PASSWORDS_OUT,)),
}


def record(source):
  """(record or None, where it is stored or why not)."""
  if source[0] not in POINTS:
    raise ValueError(f"unknown source {source}")
  find_cfg, find_folders = POINTS[source[0]]
  cfg, folders = find_cfg(*source[1:]), find_folders(*source[1:])
  if cfg is None:
    return None, f"no such point: {source}"
  folder = stored_folder(cfg, [os.path.join(ROOT, f) for f in folders])
  if folder is None:
    return None, f"not stored in {', '.join(folders)}"
  return load_point(folder, cfg), f"{os.path.relpath(folder, ROOT)}/{point_id(cfg)}.json"


def trend(preset: str, key: str):
  folder = os.path.join(ROOT, "results", "paper_figures", preset)
  pts = P.figure_points(make_config(preset, n_seeds=5))["heldout_proportion"]
  if not all(is_stored(folder, c) for _, c in pts):
    return None, f"held-out-share points not all stored in results/paper_figures/{preset}"
  rows = [(label, load_point(folder, c)) for label, c in pts]
  return share_trend(rows, key), f"results/paper_figures/{preset} (held-out share sweep)"


def contrast(name: str):
  """(seeds, per-seed values or None, where): a graft contrast of inspect_acquired.py. Read
  only where the JSON names acquired.py's sham and acquired points on seeds 0-7: it took apart
  the models of those runs (runs/acquired, not committed), so its values trace to them."""
  path = os.path.join(ROOT, INSPECT_ACQUIRED)
  if not os.path.exists(path):
    return None, None, f"{INSPECT_ACQUIRED} not written"
  with open(path) as f:
    stored = json.load(f)
  ids = {arm: point_id(_acquired(arm, 0)) for arm in ("acquired", "sham")}
  if stored["point_ids"] != ids:
    return None, None, f"{INSPECT_ACQUIRED} is of other points than {ids}"
  if name not in stored["grafts"]["contrasts"]:
    return None, None, f"{INSPECT_ACQUIRED} has no {name}"
  values = np.asarray(stored["grafts"]["contrasts"][name], dtype=float)
  where = f"{INSPECT_ACQUIRED} (grafts/contrasts of {', '.join(ids.values())})"
  return stored["seeds"], values, where


def difference(a, b, key: str):
  """a − b per seed, on the same seeds."""
  (seeds_a, va, wa), (seeds_b, vb, wb) = per_seed(a, key), per_seed(b, key)
  if va is None or vb is None:
    return None, None, wa if va is None else wb
  if seeds_a != seeds_b:
    return None, None, f"{wa} and {wb} are not on the same seeds"
  return seeds_a, va - vb, f"{wa} − {wb}"


def pooled(parts, key: str):
  """The per-seed values of every part together; the parts' seeds must not overlap."""
  got = [per_seed(part, key) for part in parts]
  missing = [w for _, v, w in got if v is None]
  if missing:
    return None, None, missing[0]
  seeds = [seed for block, _, _ in got for seed in block]
  if len(set(seeds)) < len(seeds):
    return None, None, "pooled seed blocks overlap"
  return seeds, np.concatenate([v for _, v, _ in got]), " and ".join(f"({w})" for *_, w in got)


def per_seed(source, key: str):
  """(seeds, per-seed values of ``key`` or None, where they are stored or why not)."""
  if source[0] == "diff":
    return difference(*source[1:], key)
  if source[0] == "pooled":
    return pooled(source[1:], key)
  if source[0] == "inspect_acquired":
    return contrast(key)
  stored, where = record(source)
  if stored is None:
    return None, None, where
  values = record_values(stored, key)
  if values is None:
    return None, None, f"{where} has no {key}"
  return [s["seed"] for s in stored["summary"]], values, where


def recompute(source, key: str) -> tuple[dict | None, str]:
  """The prose's test on the stored point: (paired_test-like dict or None, where/why)."""
  if source[0] == "trend":
    return trend(source[1], key)
  _, values, where = per_seed(source, key)
  return (None if values is None else paired_test(values, 0.0)), where


def locate(docs: str | dict[str, str], snippet: str) -> str:
  """'FILE line N (section)' of the first occurrence of ``snippet`` (whitespace normalised).

  ``docs`` maps file names to their text and is searched in order; a plain string is one
  unnamed file ('line N (section)').
  """
  for name, doc in ({"": docs} if isinstance(docs, str) else docs).items():
    text, marks = "", []  # the file with whitespace runs as one space; (offset, line, section)
    section = ""
    for i, line in enumerate(doc.splitlines(), 1):
      if line.startswith("#"):
        section = line.lstrip("#").strip()
      if line.split():
        marks.append((len(text), i, section))
        text += " ".join(line.split()) + " "
    at = text.find(" ".join(snippet.split()))
    if at >= 0:
      _, line, section = max(m for m in marks if m[0] <= at)
      return f"{name} line {line} ({section})".lstrip()
  return "not found"


def default_docs() -> list[str]:
  """README.md, then every docs/*.md in sorted order."""
  return [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))


def rows(docs: str | dict[str, str]) -> list[dict]:
  out = []
  for name, snippets, source, key in TESTS:
    test, where = recompute(source, key)
    out.append({"test": name, "key": key, "where": where, "test_result": test,
                "readme": "; ".join(f"{locate(docs, s)}: “{s}”" for s in snippets)})
  traced = [r for r in out if r["test_result"] is not None and np.isfinite(r["test_result"]["p"])]
  adjusted = holm([r["test_result"]["p"] for r in traced])
  for r, p in zip(traced, adjusted):
    r["holm"] = float(p)
  return out


def table(out: list[dict], command: str) -> str:
  traced = [r for r in out if "holm" in r]
  lost = sum(r["test_result"]["p"] < ALPHA and r["holm"] >= ALPHA for r in traced)
  lines = [
      "# Holm correction over the headline tests of the README and docs", "",
      f"Written by `{command}`. Each p-value the README's and docs' prose states as a finding, "
      "recomputed from the stored point with the test the prose used (one-sample t-test "
      "over seeds, paired per seed for held-out − control and for a difference of two "
      "points on the same seeds, seed blocks pooled where the prose pools them; for the "
      "held-out-share trend, per-seed slopes on the share, then a t-test of the slopes), then "
      "Holm-adjusted over "
      f"the family of the {len(traced)} traceable tests (family-wise error rate {ALPHA:g}). "
      f"Raw p < {ALPHA:g}: {sum(r['test_result']['p'] < ALPHA for r in traced)}; Holm p < "
      f"{ALPHA:g}: {sum(r['holm'] < ALPHA for r in traced)}; significant before and not "
      f"after: {lost}. Untraceable (no stored point; kept out of the family): "
      f"{len(out) - len(traced)}.", "",
      "| # | test | stored point | where in the README or docs (what it says) | recomputed | "
      "raw p | Holm p | survives at 0.05 |", "|---|---|---|---|---|---|---|---|"]
  for i, r in enumerate(out, 1):
    t = r["test_result"]
    if "holm" in r:
      cells = [f"{t['mean']:+.3f} ± {t['sd']:.3f} (t={t['t']:.2f}, n={t['n']})",
               f"{t['p']:.2g}", f"{r['holm']:.2g}", "yes" if r["holm"] < ALPHA else "**no**"]
    else:
      cells = ["untraceable", "", "", ""]
    lines.append(f"| {i} | {r['test']} (`{r['key']}`) | {r['where']} | {r['readme']} | "
                 + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def plot(out: list[dict], path: str) -> str:
  """Every traced test's raw and Holm p, sorted by raw p, against the 0.05 line: the tests
  between the two markers' crossings are those the correction takes away."""
  traced = sorted((r for r in out if "holm" in r), key=lambda r: r["test_result"]["p"])
  raw = np.array([r["test_result"]["p"] for r in traced])
  adj = np.array([r["holm"] for r in traced])
  x = np.arange(1, len(traced) + 1)
  fig, ax = plt.subplots(figsize=(7, 4.2))
  ax.semilogy(x, raw, "o", ms=4, label=f"raw p ({int((raw < ALPHA).sum())} below {ALPHA:g})")
  ax.semilogy(x, adj, "x", ms=5, label=f"Holm p ({int((adj < ALPHA).sum())} below {ALPHA:g})")
  ax.axhline(ALPHA, color="k", lw=0.8, ls="--")
  ax.set_xlabel("test, sorted by raw p (results/holm.md lists them)")
  ax.set_ylabel("p")
  ax.set_title(f"the prose's {len(traced)} tests, each recomputed from its stored point")
  ax.legend(fontsize=8)
  return save_figure(fig, path)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--docs", nargs="+", default=None,
                      help="files searched for the prose's sentences, in order "
                           "(default: README.md, then docs/*.md sorted)")
  parser.add_argument("--out", default=os.path.join("results", "holm.md"))
  parser.add_argument("--figure", default=os.path.join("figures", "holm.png"))
  args = parser.parse_args(argv)
  docs = {}
  for path in args.docs or default_docs():
    with open(path) as f:
      docs[os.path.relpath(path, ROOT)] = f.read()
  out = rows(docs)
  text = table(out, producing_command("experiments/holm.py", argv))
  os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
  with open(args.out, "w") as f:
    f.write(text)
  plot(out, args.figure)
  print(text)
  return out


if __name__ == "__main__":
  main()
