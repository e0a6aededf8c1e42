"""The search for a from-scratch regime in which the learned transformer shows the effect.

  python experiments/search_learned.py                 # every stage, resumable
  python experiments/search_learned.py --stage d64     # one stage
  python experiments/search_learned.py --table-only    # rebuild the table and figure from disk

Each grid point is one JSON in results/search/ (named by a hash of its config), written
atomically: an interrupted search resumes where it stopped. Points of a stage that differ only
in learning rate, loss weights or beta train together in one vmapped program. The stages'
configs are toy.points.SEARCH_STAGES. The table (results/search/table.md) has, per point, mean
± sd over seeds with t-tests of: useful negatives vs chance and held-out vs the random control,
under "reverse" at the end of phase 3 and as the max over phase-3 evaluations. The figure
(figures/search.png) puts each point's held-out − control against its useful − chance.
"""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import toy
from toy.config import script_parser
from toy.measure import HC_FINAL, PLACEBO_COLUMNS, PLACEBO_NOTE, STUDY_COLUMNS, record_cell, \
    seed_values
from toy.plots import save_figure
from toy.points import SEARCH_OUT, SEARCH_STAGES
from toy.sweep import is_stored, load_point, run_sweep

KNOBS = ["d_model", "n_layers", "password_len", "alphabet_size", "n_neg_batches",
         "n_heldout_batches", "dpo_repeats", "mix_steps", "lr", "ft_weight", "beta"]


COLUMNS = [  # (header, summary key), toy.measure.record_cell's
    ("useful−chance final", "reverse/useful/final"),
    ("held−control final", "reverse/heldout_minus_control/final"),
    ("held−control max", "reverse/heldout_minus_control/max"),
    *PLACEBO_COLUMNS,
    ("held−chance final", "reverse/heldout/final"),
    *STUDY_COLUMNS]


def table(records: list[dict]) -> str:
  head = KNOBS + ["seeds"] + [h for h, _ in COLUMNS]
  lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
  for r in records:
    c = r["config"]
    cells = [str(c[k]) for k in KNOBS] + [str(c["n_seeds"])]
    cells += [record_cell(r, key) for _, key in COLUMNS]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def plot(stages: dict[str, list[dict]], path: str) -> str:
  """Per stored point, held-out − control (the effect) against useful − chance (whether phase
  3 learned the useful negatives at all): mean ± sd over seeds, one marker per stage."""
  fig, ax = plt.subplots(figsize=(6.5, 4.5))
  above = []  # per point: is its mean held-out − control above 0 (the title's count)
  for (name, records), marker in zip(stages.items(), "osD^v<>"):
    if not records:
      continue
    useful = [seed_values(r, "reverse/useful/final") for r in records]
    held = [seed_values(r, HC_FINAL) for r in records]
    above += [h.mean() > 0 for h in held]
    ax.errorbar([u.mean() for u in useful], [h.mean() for h in held],
                xerr=[u.std(ddof=1) for u in useful], yerr=[h.std(ddof=1) for h in held],
                fmt=marker, capsize=3, ms=5, label=f"{name} ({len(records)} point"
                f"{'s' * (len(records) > 1)}, {records[0]['config']['n_seeds']} seeds each)")
  ax.axhline(0, color="k", lw=0.6, ls="--")
  ax.axvline(0, color="k", lw=0.6, ls="--")
  ax.set_xlabel("useful − chance, end of phase 3 (nats/token)")
  ax.set_ylabel("held-out − control, end of phase 3 (nats/token)")
  ax.set_title("the search, PROTOCOL's phase 3 (everything trains): held-out − control\n"
               f"above 0 (mean over seeds) at {sum(above)} of {len(above)} points", fontsize=10)
  ax.legend(fontsize=8)
  return save_figure(fig, path)


def main(argv=None):
  parser = script_parser(__doc__)
  parser.add_argument("--stage", choices=sorted(SEARCH_STAGES), action="append")
  parser.add_argument("--table-only", action="store_true")
  parser.add_argument("--out", default=SEARCH_OUT)
  parser.add_argument("--figures", default="figures")
  args = parser.parse_args(argv)
  toy.enable_compilation_cache()
  stages = {}
  for name in args.stage or list(SEARCH_STAGES):
    cfgs = SEARCH_STAGES[name]
    if args.table_only:
      stages[name] = [load_point(args.out, c) for c in cfgs if is_stored(args.out, c)]
    else:
      stages[name] = run_sweep(cfgs, args.out)
  records = [r for rs in stages.values() for r in rs]
  plot(stages, os.path.join(args.figures, "search.png"))
  text = table(records)
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "table.md"), "w") as f:
    f.write("Phase 3 end, reverse prefix, nats/token relative to chance (or to the control); "
            f"mean ± sd over seeds, t-test against 0. {PLACEBO_NOTE}\n\n" + text + "\n")
  print(text)


if __name__ == "__main__":
  main()
