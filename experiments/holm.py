"""Holm correction over the headline tests of the README and docs, each recomputed from its
stored point.

  python experiments/holm.py                 # writes results/holm.md
  python experiments/holm.py --out FILE --docs README.md docs/partial.md

Every p-value the README's and docs' prose states as a finding (tables excluded: they are
copied from results/*.md) is listed in TESTS with the stored point it reads, the per-seed value
and the test the prose used: a one-sample t-test against 0 over seeds (paired per seed for
held-out − control, whose per-seed values are already differences; toy.stats.paired_test), or
the held-out-share trend paired by seed (toy.stats.paired_trend, via toy.measure.share_trend).
The stored points are found by the configs their scripts train (toy.points). Nothing is typed
by hand: each p is recomputed from results/ and its sentence is found by a snippet of its text
in README.md or docs/*.md (its file, line and section are looked up, so an edited sentence
shows as "not found"). A test whose stored point cannot be found is listed as untraceable and
is kept out of the family. The family is every traceable test; toy.stats.holm adjusts its
p-values (family-wise error rate 0.05).
"""
from __future__ import annotations

import argparse
import glob
import os
import re

import numpy as np

from toy import points as P
from toy.config import make_config, producing_command
from toy.measure import record_values, share_trend
from toy.stats import holm, paired_test
from toy.sweep import is_stored, load_point, point_id, stored_folder

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
ALPHA = 0.05


HC_FINAL, HC_MAX = "reverse/heldout_minus_control/final", "reverse/heldout_minus_control/max"
# (test, snippets of the README's or docs' prose (whitespace normalised), source, value).
# Sources:
# ("partial", label), ("ladder", rung), ("figures", preset, figure, label),
# ("search", stage), ("trend", preset), ("confirm", label) (on seeds 8-15). Value: a record_values key (summary or "law:").
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
     ["(−0.029 ± 0.031, paired t = −2.65, p = 0.033)"], ("search", "confirm"), HC_FINAL),
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
]


def figures_point(preset: str, figure: str, label: str):
  folder = os.path.join(ROOT, "results", "paper_figures", preset)
  pts = dict(P.figure_points(make_config(preset, n_seeds=5))[figure])
  return folder, pts.get(label)


def record(source):
  """(record or None, where it is stored or why not)."""
  kind = source[0]
  if kind == "partial":
    pts = dict(pt for pts in P.PARTIAL_STAGES.values() for pt in pts)
    folder, cfg = os.path.join(ROOT, P.PARTIAL_OUT), pts.get(source[1])
  elif kind == "ladder":
    cfg = P.RUNG_BY_NAME.get(source[1])
    folder = cfg and P.rung_folder(cfg, os.path.join(ROOT, P.LADDER_OUT))
    if cfg is not None and folder is None:
      return None, f"ladder rung {source[1]} not stored"
  elif kind == "figures":
    folder, cfg = figures_point(*source[1:])
  elif kind == "confirm":  # a headline point on the confirmation seeds 8-15
    cfg = dict((label, c) for label, _, _, c in P.CONFIRM_POINTS).get(source[1])
    cfg = cfg and P.confirm_config(cfg)
    folder = cfg and stored_folder(cfg, [os.path.join(ROOT, f) for f in
                                         (P.CONFIRM_OUT, *P.CONFIRM_ALSO_READ)])
    if cfg is not None and folder is None:
      return None, f"confirmation point {source[1]} not stored"
  elif kind == "search":
    stage = P.SEARCH_STAGES.get(source[1])
    folder, cfg = os.path.join(ROOT, P.SEARCH_OUT), stage and stage[0]
  else:
    raise ValueError(f"unknown source {source}")
  if cfg is None:
    return None, f"no such point: {source}"
  if not is_stored(folder, cfg):
    return None, f"not stored in {os.path.relpath(folder, ROOT)}"
  return load_point(folder, cfg), f"{os.path.relpath(folder, ROOT)}/{point_id(cfg)}.json"


def trend(preset: str, key: str):
  folder = os.path.join(ROOT, "results", "paper_figures", preset)
  pts = P.figure_points(make_config(preset, n_seeds=5))["heldout_proportion"]
  if not all(is_stored(folder, c) for _, c in pts):
    return None, f"held-out-share points not all stored in results/paper_figures/{preset}"
  rows = [(label, load_point(folder, c)) for label, c in pts]
  return share_trend(rows, key), f"results/paper_figures/{preset} (held-out share sweep)"


def recompute(source, key: str) -> tuple[dict | None, str]:
  """The prose's test on the stored point: (paired_test-like dict or None, where/why)."""
  if source[0] == "trend":
    return trend(source[1], key)
  stored, where = record(source)
  if stored is None:
    return None, where
  values = record_values(stored, key)
  if values is None:
    return None, f"{where} has no {key}"
  return paired_test(values, 0.0), where


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
      "over seeds, paired per seed for held-out − control; for the held-out-share trend, "
      "per-seed slopes on the share, then a t-test of the slopes), then Holm-adjusted over "
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


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--docs", nargs="+", default=None,
                      help="files searched for the prose's sentences, in order "
                           "(default: README.md, then docs/*.md sorted)")
  parser.add_argument("--out", default=os.path.join("results", "holm.md"))
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
  print(text)
  return out


if __name__ == "__main__":
  main()
