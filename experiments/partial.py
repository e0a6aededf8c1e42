"""Partial generalization: phase 3 with the stored memories frozen or slowed (mix_lower_lr_scale).

  python experiments/partial.py                      # every stage, resumable
  python experiments/partial.py --stage dial         # one stage (repeatable flag)
  python experiments/partial.py --plot-only          # table and figures from stored points

Phase 2 writes the negatives into the embedding and the lower half of the layers. Under
PROTOCOL's phase 3 everything trains, and the network can memorize the useful negatives
afresh under "reverse" (rewrite). With those parameters frozen (scale 0) or slowed, the upper
half has to learn to turn the stored suppression into promotion under "reverse" (invert),
and that reaches the held-out negatives too. Stages (seeds 0-7 unless said):
  dial     mix_lower_lr_scale in {0, 0.01, 0.03, 0.1, 0.3, 0.5, 0.7, 1}; 0 is the confirmation
  phase3   around scale 0: phase-3 learning rate and fine-tuning weight
  shape    around scale 0: embedding trains, phase 3 twice as long
  size     around scale 0: batch 128, width 128
  robust   the study's 16-token passwords, and the interp preset (A = 256, L = 2)
Their configs are toy.points.PARTIAL_STAGES.
Every point is one JSON in results/partial/ (hash of its config), with per-seed law slopes;
points that differ only in phase-3 fields train phases 1-2 once. Writes
results/partial/table.md (every knob and column, and each point's phase-3 dynamics),
results/partial/summary.md (the main columns), figures/partial_dial.png and
figures/partial_g_over_phase3.png.
"""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import toy
from toy.config import producing_command, script_parser
from toy.measure import DYNAMICS_COLUMNS, DYNAMICS_NOTE, G_COLUMNS, PLACEBO_COLUMNS, \
    SHARED_NOTE, STUDY_COLUMNS, dynamics_cell, law_record, phase3_dynamics, record_cell, \
    seed_range, seed_values
from toy.plots import save_figure
from toy.points import PARTIAL_OUT, PARTIAL_STAGES
from toy.sweep import is_stored, load_point, run_sweep

KNOBS = ["preset", "mix_lower_lr_scale", "mix_lower_embed", "mix_lr", "mix_steps",
         "ft_weight", "batch_size", "d_model", "password_len", "alphabet_size"]
COLUMNS = [  # (header, summary key, law key or toy.measure.record_cell's G keys)
    ("held−control final", "reverse/heldout_minus_control/final"),
    ("held−control max", "reverse/heldout_minus_control/max"),
    *PLACEBO_COLUMNS,
    ("held−chance final", "reverse/heldout/final"),
    *STUDY_COLUMNS,
    ("useful−chance final", "reverse/useful/final"),
    ("control−chance final", "reverse/control/final"),
    ("slope useful", "law:slope/useful"), ("slope held-out", "law:slope/heldout"),
    *G_COLUMNS, ("within-set slope useful", "law:within/useful"),
    ("within-set slope held-out", "law:within/heldout")]
# summary.md: every column but the two law slopes
COMPACT = [c for c in COLUMNS if c[1] not in ("law:slope/useful", "law:slope/heldout")]


def table(labelled: list[tuple[str, dict]], knobs: bool = True,
          columns: list[tuple[str, str]] = COLUMNS) -> str:
  head = ["point"] + (KNOBS if knobs else []) + ["seeds"] + [h for h, _ in columns]
  lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
  for label, r in labelled:
    c = r["config"]
    cells = [label] + ([str(c[k]) for k in KNOBS] if knobs else [])
    cells += [seed_range(c)]
    for _, key in columns:
      cells.append(record_cell(r, key, count_above=key.endswith(("minus_control/final",
                                                                  "minus_control/max"))))
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def dynamics_table(labelled: list[tuple[str, dict]]) -> str:
  """Every point's phase-3 dynamics (``toy.measure.phase3_dynamics``), one row per point."""
  head = ["point", "seeds", "steps"] + [h for h, _ in DYNAMICS_COLUMNS]
  lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
  for label, r in labelled:
    c, dyn = r["config"], phase3_dynamics(r)
    cells = [label, seed_range(c), dynamics_cell(dyn, "steps")]
    cells += [dynamics_cell(dyn, key) for _, key in DYNAMICS_COLUMNS]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def plot_dial(records: list[dict], path: str):
  """G and held-out − control against the scale; symlog x so that 0 is on the axis."""
  scales = np.array([r["config"]["mix_lower_lr_scale"] for r in records])
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
  panels = [("law:G", "generalization ratio G (law-slope ratio)"),
            ("reverse/heldout_minus_control/final", "held-out − control, end of phase 3"),
            ]
  for ax, (key, title) in zip(axes, panels):
    per_seed = np.stack([seed_values(r, key) for r in records])  # points x seeds
    for j in range(per_seed.shape[1]):
      ax.plot(scales, per_seed[:, j], color="0.75", lw=0.8, marker=".", zorder=1)
    mean, sd = per_seed.mean(1), per_seed.std(1, ddof=1)
    ax.errorbar(scales, mean, sd, color="tab:red", marker="o", capsize=3, zorder=3,
                label=f"learned transformer, mean ± sd over {per_seed.shape[1]} seeds")
    if key == "law:G":
      ax.axhline(1, color="tab:green", ls="--", label="toy: G = 1 (perfect)")
      ax.axhline(0, color="k", ls=":", label="G = 0 (stored suppression erased)")
    else:
      ax.axhline(0, color="k", ls=":", label="held-out = control")
      maxes = np.stack([seed_values(r, "reverse/heldout_minus_control/max") for r in records])
      ax.plot(scales, maxes.mean(1), color="tab:purple", marker="s", ls="--",
              label="max over phase 3 (mean)")
    ax.set_xscale("symlog", linthresh=0.01)
    ax.set_xlim(-0.002, 1.3)
    ax.set_xlabel("mix_lower_lr_scale: phase-3 rate of embedding + lower half (1 = PROTOCOL)")
    ax.set_title(title)
    ax.legend(fontsize=8)
  fig.suptitle("the dial from partial to none: freeze (0) or slow where phase 2 stored the "
               "negatives; 'reverse' prefix")
  save_figure(fig, path)


def plot_g_over_phase3(records: list[dict], path: str):
  """The two law slopes and held-out − control at every phase-3 evaluation, per scale.

  Slopes rather than their ratio G: at the start of phase 3 "reverse" still equals "regular"
  (both slopes +1, G = 1 trivially) and the useful slope crosses 0 on its way to inversion,
  where the ratio is undefined.
  """
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
  cmap = plt.get_cmap("viridis")
  for i, r in enumerate(records):
    s = r["config"]["mix_lower_lr_scale"]
    rows = [h for h in r["history"] if h["phase"] == "mix"]
    seeds = sorted({h["seed"] for h in rows})
    steps = sorted({h["step"] for h in rows})
    get = lambda f: np.array([[f(h) for h in rows if h["seed"] == sd] for sd in seeds]).mean(0)
    color = cmap(i / max(len(records) - 1, 1))
    axes[0].plot(steps, get(lambda h: h["eval/law/useful"]), color=color, label=f"scale {s:g}")
    axes[0].plot(steps, get(lambda h: h["eval/law/heldout"]), color=color, ls="--")
    axes[1].plot(steps, get(lambda h: h["eval/reverse/heldout"] - h["eval/reverse/control"]),
                 color=color, label=f"scale {s:g}")
  axes[0].plot([], [], color="k", label="useful negatives")
  axes[0].plot([], [], color="k", ls="--", label="held-out negatives")
  axes[0].axhline(0, color="k", ls=":")
  axes[0].set_title("law slope (reverse on regular) over phase 3, mean over seeds\n"
                    "(first eval_size passwords per set; < 0: suppression turned to promotion)")
  axes[1].axhline(0, color="k", ls=":")
  axes[1].set_title("held-out − control over phase 3, 'reverse', mean over seeds")
  for ax in axes:
    ax.set_xlabel("phase-3 step")
    ax.legend(fontsize=8)
  save_figure(fig, path)


def main(argv=None):
  parser = script_parser(__doc__)
  parser.add_argument("--stage", choices=sorted(PARTIAL_STAGES), action="append")
  parser.add_argument("--plot-only", action="store_true")
  parser.add_argument("--out", default=PARTIAL_OUT)
  parser.add_argument("--figures", default="figures")
  args = parser.parse_args(argv)
  toy.enable_compilation_cache()
  names = args.stage or list(PARTIAL_STAGES)
  for name in names:
    if not args.plot_only:
      run_sweep([c for _, c in PARTIAL_STAGES[name]], args.out,
                on_result=lambda cfg, result: law_record(result))
  records = {name: [(label, load_point(args.out, c)) for label, c in pts if is_stored(args.out, c)]
             for name, pts in PARTIAL_STAGES.items()}
  command = producing_command("experiments/partial.py", argv)
  head = (f"Written by `{command}`. Phase 3 end, reverse prefix, nats/token relative to "
          "chance (or to the control); law slopes of centred target logits (reverse on "
          "regular); G = held-out slope / useful slope; mean ± sd over seeds, t-test against "
          f"0 (paired per seed for held-out − control). {SHARED_NOTE}\n\n")
  full = "\n\n".join(f"### {name}\n\n{table(rs)}" for name, rs in records.items() if rs)
  every = [lr for rs in records.values() for lr in rs]
  if every:
    full += f"\n\n### dynamics\n\n{DYNAMICS_NOTE}\n\n{dynamics_table(every)}"
  with open(os.path.join(args.out, "table.md"), "w") as f:
    f.write(head + full + "\n")
  compact = table([lr for rs in records.values() for lr in rs], knobs=False, columns=COMPACT)
  with open(os.path.join(args.out, "summary.md"), "w") as f:
    f.write(head + compact + "\n")
  print(compact)
  dial = [r for _, r in records["dial"]]
  if len(dial) == len(PARTIAL_STAGES["dial"]):
    os.makedirs(args.figures, exist_ok=True)
    plot_dial(dial, os.path.join(args.figures, "partial_dial.png"))
    plot_g_over_phase3(dial, os.path.join(args.figures, "partial_g_over_phase3.png"))
  return records


if __name__ == "__main__":
  main()
