"""The README's headline points, chosen on seeds 0-7, measured again on seeds 8-15.

  python experiments/confirm.py               # trains the 8-15 points not yet stored, resumable
  python experiments/confirm.py --plot-only   # table and figure from stored points

Every headline point was chosen and first measured on seeds 0-7; a point picked for its
result on some seeds is biased on those seeds. Here each is rerun unchanged on seeds 8-15
(the same config but its ``seed``), and the table gives seeds 0-7, seeds 8-15 and the pooled
16 side by side. A seed's data, initialisation and placebo set all derive from its seed, so
8-15 share nothing with 0-7. The 0-7 points are read from the experiment that stored them
(results/partial/, results/ladder/); PROTOCOL's 8-15 point is read from results/acquired/
(its "scratch" arm, the same config). New points go to results/confirm/ (one JSON per
point, hash of its config). Writes results/confirm.md and figures/confirm.png.
"""
from __future__ import annotations

import os
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import toy
from toy.config import producing_command, script_parser
from toy.measure import SHARED_NOTE, STUDY_KEYS, law_record, record_values
from toy.points import CONFIRM_ALSO_READ, CONFIRM_OUT, CONFIRM_POINTS, CONFIRM_SEED, \
    confirm_config
from toy.plots import save_figure
from toy.stats import DASH, fmt, fmt_g, fmt_g_ratio, fmt_study, g_summary, paired_test, \
    study_test
from toy.sweep import load_point, point_path, run_sweep, stored_folder

OUT, ALSO_READ, CONFIRM, POINTS = CONFIRM_OUT, CONFIRM_ALSO_READ, CONFIRM_SEED, CONFIRM_POINTS
MD = os.path.join("results", "confirm.md")
# (row, key): summary keys, "law:" keys, or "G" / "G:ratio" (pooled from per-seed slopes)
ROWS = [("held-out − control (final)", "reverse/heldout_minus_control/final"),
        ("held-out − control (max over phase 3)", "reverse/heldout_minus_control/max"),
        ("placebo − control (final)", "reverse/placebo_minus_control/final"),
        ("held-out − chance (max over phase 3)", "reverse/heldout/max"),
        ("placebo − chance (max over phase 3)", "reverse/placebo/max"),
        ("useful − chance (final)", "reverse/useful/final"),
        ("law slope, useful", "law:slope/useful"), ("law slope, held-out", "law:slope/heldout"),
        ("G (per seed)", "G"), ("G: ratio of mean slopes [95% CI]", "G:ratio")]
HEADLINE = "reverse/heldout_minus_control/final"


def find(cfg, folders=(OUT, *ALSO_READ)) -> dict | None:
  """The stored record of ``cfg`` in the first folder that has it; None if none does."""
  folder = stored_folder(cfg, folders)
  return None if folder is None else load_point(folder, cfg)


def values(records: list[dict | None], key: str) -> np.ndarray | None:
  """Per-seed values of ``key`` over the records, concatenated (seeds in order); None if any
  record is missing or lacks the key."""
  got = [None if r is None else record_values(r, key) for r in records]
  return None if any(v is None for v in got) else np.concatenate(got)


def cell(records: list[dict | None], key: str) -> str:
  if key in ("G", "G:ratio"):
    useful, heldout = values(records, "law:slope/useful"), values(records, "law:slope/heldout")
    if useful is None or heldout is None:
      return DASH
    return (fmt_g if key == "G" else fmt_g_ratio)(g_summary(useful, heldout))
  v = values(records, key)
  if v is None:
    return DASH
  if key in STUDY_KEYS:
    return fmt_study(study_test(v))
  return fmt(paired_test(v, 0.0)) + f", {int((v > 0).sum())}/{v.size} > 0"


def table(label: str, chosen: dict | None, confirmed: dict | None) -> str:
  lines = [f"### {label}", "", "| quantity | seeds 0–7 (chosen) | seeds 8–15 (confirmation) | "
           "pooled 16 |", "|---|---|---|---|"]
  for row, key in ROWS:
    lines.append(f"| {row} | {cell([chosen], key)} | {cell([confirmed], key)} | "
                 f"{cell([chosen, confirmed], key)} |")
  return "\n".join(lines)


def verdict(label: str, claim: str, chosen: dict | None, confirmed: dict | None) -> str:
  """One line: does the headline claim about held-out − control ("> 0": above 0 at p < 0.05;
  "not > 0": not so) hold on the confirmation seeds?"""
  if confirmed is None or chosen is None:
    return f"- {label}: not both seed sets stored."
  a, b = (paired_test(record_values(r, HEADLINE), 0.0) for r in (chosen, confirmed))
  pooled = paired_test(values([chosen, confirmed], HEADLINE), 0.0)
  above = b["mean"] > 0 and b["p"] < 0.05
  holds = above if claim == "> 0" else not above
  return (f"- {label} (claim: held-out − control {claim}): 0–7 {a['mean']:+.3f} "
          f"(p={a['p']:.2g}); 8–15 {b['mean']:+.3f} (p={b['p']:.2g}); pooled "
          f"{pooled['mean']:+.3f} (p={pooled['p']:.2g}). "
          + ("**Confirmed** on 8–15." if holds else "**Not confirmed** on 8–15."))


def plot(pairs: list, path: str):
  """Per-seed held-out − control of every point, seeds 0-7 beside 8-15, with means."""
  fig, ax = plt.subplots(figsize=(1.9 * len(pairs) + 2, 4.2))
  for i, (label, chosen, confirmed) in enumerate(pairs):
    for dx, record, color, name in ((-0.15, chosen, "tab:grey", "seeds 0–7 (chosen)"),
                                    (0.15, confirmed, "tab:red", "seeds 8–15 (confirmation)")):
      if record is None:
        continue
      v = record_values(record, HEADLINE)
      ax.scatter(np.full(v.size, i + dx), v, s=14, color=color, alpha=0.7,
                 label=name if i == 0 else None)
      ax.errorbar(i + dx, v.mean(), yerr=v.std(ddof=1), fmt="_", color="k", ms=16, capsize=3)
  ax.axhline(0, color="k", lw=0.6, ls="--")
  ax.set_xticks(range(len(pairs)), [p[0].replace(", ", ",\n", 1) for p in pairs], fontsize=8)
  ax.set_ylabel("held-out − control, end of phase 3\n(nats/token, 'reverse')")
  ax.set_title("headline points: the seeds they were chosen on and 8 unseen seeds "
               "(dots: seeds; bar: mean ± sd)", fontsize=9)
  ax.legend(fontsize=8)
  save_figure(fig, path)


def main(argv=None):
  parser = script_parser(__doc__)
  parser.add_argument("--plot-only", action="store_true")
  parser.add_argument("--point", action="append", choices=[p[0] for p in POINTS],
                      help="train only this point's 8-15 seeds (repeatable)")
  parser.add_argument("--out", default=OUT)
  parser.add_argument("--md", default=MD)
  parser.add_argument("--figures", default="figures")
  args = parser.parse_args(argv)
  toy.enable_compilation_cache()
  folders = (args.out, *ALSO_READ)
  todo = [confirm_config(c) for label, _, _, c in POINTS
          if (not args.point or label in args.point) and find(confirm_config(c), folders) is None]
  if todo and not args.plot_only:
    print(f"{len(todo)} points to train on seeds 8-15, about {6 * len(todo)} min on 2 quiet "
          "cores", flush=True)
    t0 = time.perf_counter()
    run_sweep(todo, args.out, on_result=lambda cfg, result: law_record(result))
    print(f"trained in {time.perf_counter() - t0:.0f} s", flush=True)
  pairs = [(label, find(c, folders), find(confirm_config(c), folders))
           for label, _, _, c in POINTS]
  command = producing_command("experiments/confirm.py", argv)
  sources = "\n".join(
      f"- {label} ({where}): 0–7 `{_where(c, folders)}`, 8–15 `{_where(confirm_config(c), folders)}`"
      for label, where, _, c in POINTS)
  text = (f"# Confirmation on unseen seeds\n\nWritten by `{command}`. cpu preset; nats/token "
          "under 'reverse' at the end of phase 3; mean ± sd over seeds, t-test against 0 "
          "(held-out − control is paired per seed by construction). Pooled: the 16 seeds' "
          f"values together. {SHARED_NOTE}\n\n## Verdicts (held-out − control, final)\n\n"
          + "\n".join(verdict(label, claim, *p[1:]) for p, (label, _, claim, _) in
                      zip(pairs, POINTS)) + "\n\n## Points\n\n"
          + "\n\n".join(table(*p) for p in pairs) + f"\n\n## Stored points\n\n{sources}\n")
  with open(args.md, "w") as f:
    f.write(text)
  print(text)
  os.makedirs(args.figures, exist_ok=True)
  plot(pairs, os.path.join(args.figures, "confirm.png"))
  return pairs


def _where(cfg, folders) -> str:
  folder = stored_folder(cfg, folders)
  return "not stored" if folder is None else point_path(folder, cfg)


if __name__ == "__main__":
  main()
