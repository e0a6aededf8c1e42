"""The search for a from-scratch regime in which the learned transformer shows the effect.

  python experiments/search_learned.py                 # every stage, resumable
  python experiments/search_learned.py --stage d64     # one stage
  python experiments/search_learned.py --table-only    # rebuild the table from disk

Each grid point is one JSON in results/search/ (named by a hash of its config), written
atomically: an interrupted search resumes where it stopped. Points of a stage that differ
only in learning rate, loss weights or beta train together in one vmapped program.
The table (results/search/table.md) has, per point, mean ± sd over seeds with t-tests of:
useful negatives vs chance and held-out vs the random control, under "reverse" at the end of
phase 3 and as the max over phase-3 evaluations.
"""
from __future__ import annotations

import os

import toy
from toy.config import make_config, script_parser
from toy.measure import PLACEBO_COLUMNS, PLACEBO_NOTE, STUDY_COLUMNS, record_cell
from toy.sweep import is_stored, load_point, run_sweep

OUT = os.path.join("results", "search")

# The base every stage starts from: L=8 passwords, 640 negatives (128 held out), batch 64,
# a 4-layer transformer. Written out in full so that later edits of the presets cannot
# change what a stored grid point means.
BASE = dict(alphabet_size=26, password_len=8, batch_size=64, n_neg_batches=10,
            n_heldout_batches=2, pretrain_steps=64, dpo_repeats=30, lr=1e-3, warmup_steps=50,
            n_layers=4, d_model=128, n_heads=4, eval_size=128)


def grid(shape: dict, hyper: dict[str, list], seeds: int) -> list:
  """All combinations of the hyper values (one vmapped program) on top of BASE + shape."""
  points = [{}]
  for key, values in hyper.items():
    points = [{**p, key: v} for p in points for v in values]
  return [make_config("cpu", **{**BASE, **shape, **p, "n_seeds": seeds}) for p in points]


STAGES = {
    # lr x fine-tuning weight at the PROTOCOL lead's shape (width 128)
    "d128": grid({}, {"lr": [1e-3, 3e-3], "ft_weight": [0.2, 1.0]}, seeds=2),
    # the same at width 64, 4x cheaper, and a longer phase 3
    "d64": grid({"d_model": 64}, {"lr": [3e-3, 1e-2], "ft_weight": [0.5, 1.0]}, seeds=2),
    # the chosen point (the `cpu` preset) over 8 seeds
    "confirm": grid({"d_model": 64}, {"lr": [3e-3], "ft_weight": [1.0]}, seeds=8),
    # the study author's interpretability suggestion: 2-token passwords, 256 letters
    "interp": grid({"d_model": 64, "alphabet_size": 256, "password_len": 2},
                   {"lr": [3e-3], "ft_weight": [1.0]}, seeds=8),
}
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


def main(argv=None):
  parser = script_parser(__doc__)
  parser.add_argument("--stage", choices=sorted(STAGES), action="append")
  parser.add_argument("--table-only", action="store_true")
  parser.add_argument("--out", default=OUT)
  args = parser.parse_args(argv)
  toy.enable_compilation_cache()
  records = []
  for name in args.stage or list(STAGES):
    cfgs = STAGES[name]
    if args.table_only:
      records += [load_point(args.out, c) for c in cfgs if is_stored(args.out, c)]
    else:
      records += run_sweep(cfgs, args.out)
  text = table(records)
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "table.md"), "w") as f:
    f.write("Phase 3 end, reverse prefix, nats/token relative to chance (or to the control); "
            f"mean ± sd over seeds, t-test against 0. {PLACEBO_NOTE}\n\n" + text + "\n")
  print(text)


if __name__ == "__main__":
  main()
