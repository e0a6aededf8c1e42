"""The study's four figures (PROTOCOL.md), regenerated with our transformer trained from scratch.

  python experiments/paper_figures.py                        # CPU scale: preset cpu, 5 seeds
  python experiments/paper_figures.py --preset partial       # phase 3 cannot rewrite the lower half
  python experiments/paper_figures.py --figure ablations     # one figure (repeatable flag)
  python experiments/paper_figures.py --plot-only            # redraw from the stored points
  python experiments/paper_figures.py --preset paper --n_seeds 5   # the paper's scale, on a GPU
  python experiments/paper_figures.py --init_from /path/to/pythia-160m --preset paper
                                           # start from a checkpoint: figures 1, 2 and 4

  1 phases              log-lik of the three sets over the three phases, one line per seed + mean
  2 heldout_proportion  held-out vs control against the held-out share of the negatives
  3 model_size          held-out vs control against the size of our transformer
  4 ablations           prefix + freeze (reference), no prefix + freeze, prefix + no freeze,
                        and, when the base departs from PROTOCOL's phase 3 (e.g. --preset
                        partial), the same point with everything training in phase 3

Every grid point (toy.points.figure_points) is one config trained by toy.sweep.run_sweep:
one JSON per point in results/paper_figures/<preset>/, written atomically, so an interrupted
run resumes where it stopped and --plot-only redraws without training. Every Config field is
a flag and applies to every point (the swept field excepted). Writes
figures/paper_<figure>_<preset>.png and a table of the plotted numbers (mean ± sd over
seeds, t-tests; the held-out-share trend paired by seed; each point's phase-3 dynamics) to
results/paper_figures/<preset>/table.md.

With --init_from FOLDER (a local GPT-NeoX / Pythia checkpoint; log-probs over the whole
vocabulary unless --normalize alphabet), every point starts from that checkpoint, whose
config fixes the network: the model-size figure, which varies our transformer's shape, is
left out (asking for it with --figure model_size is an error; the study's size sweep is one
such run per checkpoint, e.g. pythia-70m, -160m, -410m). Points, table and figures then go
to results/paper_figures/<preset>_<folder name>/ and figures/paper_<figure>_<preset>_<folder
name>.png, beside the from-scratch ones.
"""
from __future__ import annotations

import json
import math
import os
import textwrap
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import jax
import numpy as np
from flax import nnx

import toy
from toy.cli import parse_config
from toy.config import Config, producing_command, script_parser
from toy.engine import build_model
from toy.plots import SET_COLORS, SET_LABELS, chance_line, mean_sd_errorbar, phase_curves, \
    save_figure, stretch_yaxis
from toy.measure import DYNAMICS_COLUMNS, DYNAMICS_NOTE, PLACEBO_COLUMNS, PLACEBO_NOTE, \
    STUDY_COLUMNS, dynamics_cell, phase3_dynamics, record_cell, seed_values, share_trend
from toy.points import figure_points
from toy.stats import fmt
from toy.sweep import is_stored, load_point, run_sweep

FIGURES = ("phases", "heldout_proportion", "model_size", "ablations")
WHEN = {"final": "end of phase 3", "max": "max over phase 3"}


def checkpoint_name(cfg: Config) -> str:
  """The folder name of ``cfg.init_from`` (e.g. pythia-160m)."""
  return os.path.basename(os.path.normpath(cfg.init_from))


def n_params(cfg: Config) -> int:
  """Parameter count of the transformer, from shapes only (nothing is allocated)."""
  model = nnx.eval_shape(lambda: build_model(cfg, {}, nnx.Rngs(0)))
  return sum(math.prod(x.shape) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def values(record: dict, name: str, when: str) -> np.ndarray:
  return seed_values(record, f"reverse/{name}/{when}")


def plot_phases(cfg: Config, record: dict, path: str):
  fig, ax = plt.subplots(figsize=(8, 5))
  model = checkpoint_name(cfg) if cfg.init_from else "Learned transformer"
  phase_curves(ax, cfg, record["history"],
               f"{model}, preset {cfg.preset}, {cfg.n_seeds} seeds: phases 1-2 under "
               f"'regular', phase 3 under 'reverse'\n(axis linear within ±0.02 nats of chance, "
               "logarithmic beyond)")
  save_figure(fig, path)


def plot_sweep(cfg: Config, xs, records: list[dict], xlabel: str, title: str, path: str,
               xticklabels=None):
  """Held-out negatives and the random control at each point, at the end of phase 3 and as
  the max over phase 3, and (third panel) their paired difference per seed."""
  fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
  x = np.arange(len(xs)) if xticklabels is not None else np.asarray(xs, dtype=float)
  ls = "-" if xticklabels is None else "none"
  # side by side rather than on top of each other: 8% of a category, 1.5% of a numeric range
  span = 1.0 if xticklabels is not None else 0.19 * (np.ptp(x) or abs(x[0]) or 1.0)
  for ax, (when, when_label) in zip(axes, WHEN.items()):
    for i, name in enumerate(["heldout", "control"]):
      v = np.stack([values(r, name, when) for r in records])
      mean_sd_errorbar(ax, x + (i - 0.5) * 0.08 * span, v, color=SET_COLORS[name],
                       label=SET_LABELS[name], ls=ls)
    chance_line(ax, cfg)
    ax.set_ylabel(f"log-lik − chance under 'reverse', {when_label}\n(nats/token, asinh scale)")
  ax = axes[2]
  for i, (when, when_label) in enumerate(WHEN.items()):
    v = np.stack([values(r, "heldout_minus_control", when) for r in records])
    mean_sd_errorbar(ax, x + (i - 0.5) * 0.08 * span, v, color=("tab:purple", "tab:orange")[i],
                     label=f"held-out − control, {when_label}", ls=ls)
  ax.axhline(0.0, color="k", ls="--", lw=1, label="no effect (held-out = control)")
  ax.set_ylabel("held-out − control under 'reverse'\n(nats/token, paired per seed, asinh scale)")
  for ax in axes:
    stretch_yaxis(ax)
    if xticklabels is not None:
      ax.set_xticks(x, xticklabels)
    ax.set_xlabel(xlabel)
    ax.legend(fontsize=8)
  fig.suptitle(title + f"\nmean ± sd over {records[0]['config']['n_seeds']} seeds (dots: seeds)",
               fontsize=10)
  save_figure(fig, path)


COLUMNS = [  # (header, summary key), toy.measure.record_cell's
    ("useful − chance (final)", "reverse/useful/final"),
    ("held-out − chance (final)", "reverse/heldout/final"),
    ("control − chance (final)", "reverse/control/final"),
    ("held-out − control (final)", "reverse/heldout_minus_control/final"),
    ("held-out − control (max over phase 3)", "reverse/heldout_minus_control/max"),
    *PLACEBO_COLUMNS, *STUDY_COLUMNS]


def table(sections: dict[str, list[tuple[str, dict]]]) -> str:
  head = ["point", "seeds", *[h for h, _ in COLUMNS]]
  out = ["Under 'reverse' in phase 3, nats/token; mean ± sd over seeds, t-test against 0 "
         f"(paired across seeds for held-out − control). {PLACEBO_NOTE}"]
  for figure, rows in sections.items():
    out += ["", f"## {figure}", "", "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for label, r in rows:
      cells = [label, str(r["config"]["n_seeds"])] + [record_cell(r, key) for _, key in COLUMNS]
      out.append("| " + " | ".join(cells) + " |")
  return "\n".join(out)


def dynamics_table(sections: dict[str, list[tuple[str, dict]]]) -> str:
  """Each stored point's phase-3 dynamics (``toy.measure.phase3_dynamics``), once per point
  (the reference point sits in every figure)."""
  head = ["figure", "point", "seeds", "steps", *[h for h, _ in DYNAMICS_COLUMNS]]
  out = ["## phase-3 dynamics", "", DYNAMICS_NOTE, "", "| " + " | ".join(head) + " |",
         "|---" * len(head) + "|"]
  seen = set()
  for figure, rows in sections.items():
    for label, r in rows:
      key = json.dumps(r["config"], sort_keys=True)
      if key in seen:
        continue
      seen.add(key)
      dyn = phase3_dynamics(r)
      cells = [figure, label, str(r["config"]["n_seeds"]), dynamics_cell(dyn, "steps")]
      cells += [dynamics_cell(dyn, k) for _, k in DYNAMICS_COLUMNS]
      out.append("| " + " | ".join(cells) + " |")
  return "\n".join(out)


TREND_KEYS = [("held-out − control (final)", "reverse/heldout_minus_control/final"),
              ("held-out − control (max over phase 3)", "reverse/heldout_minus_control/max"),
              ("held-out − chance (final)", "reverse/heldout/final")]


def trend_table(rows: list[tuple[str, dict]]) -> str:
  shares = ", ".join(label for label, _ in rows)
  out = ["## held-out share: trend paired by seed", "",
         f"Per seed, the least-squares slope (with an intercept) of the value on the held-out "
         f"share ({shares}); mean ± sd of the per-seed slopes, in nats/token per unit of "
         "share (× 0.1 for one step of 0.1), one-sample t-test against 0, and how many seeds' "
         "slopes are above 0. Each seed is its own control, so this reads the trend, not each "
         "share's own test.", "", "| value | slope per unit share | seeds with slope > 0 |",
         "|---|---|---|"]
  for header, key in TREND_KEYS:
    trend = share_trend(rows, key)
    up = sum(v > 0 for v in trend["slopes"])
    out.append(f"| {header} | {fmt(trend)} | {up}/{trend['n']} |")
  return "\n".join(out)


def main(argv=None):
  parser = script_parser(__doc__)
  parser.add_argument("--figure", choices=FIGURES, action="append",
                      help="draw only this figure (repeatable); default: all four")
  parser.add_argument("--plot-only", action="store_true",
                      help="train nothing; draw the figures whose points are all stored")
  parser.add_argument("--out", default=None, help="default results/paper_figures/<preset>")
  parser.add_argument("--figures_dir", default="figures")
  # PROTOCOL.md: mean ± sd over 5 seeds for the sweeps
  base, args = parse_config(parser, argv, n_seeds=5)
  # a checkpoint's points, table and figures sit beside the from-scratch ones, named by it
  tag = base.preset + (f"_{checkpoint_name(base)}" if base.init_from else "")
  out = args.out or os.path.join("results", "paper_figures", tag)
  figures = args.figure or list(FIGURES)
  if base.init_from:
    if args.figure and "model_size" in args.figure:
      parser.error("--figure model_size: with --init_from the checkpoint's config fixes the "
                   "model's size; run one checkpoint per size instead")
    if "model_size" in figures:
      print("--init_from: model_size skipped (the checkpoint's config fixes the size)")
      figures.remove("model_size")
  grid = {name: pts for name, pts in figure_points(base).items() if name in figures}
  toy.enable_compilation_cache()
  if not args.plot_only and jax.default_backend() == "cpu" and base.d_model >= 512:
    print(f"warning: width {base.d_model} on CPU; one paper-size DPO step takes about 37 s on "
          "2 cores (benchmarks/time_runs.md), so this is meant for a GPU", file=sys.stderr)

  if args.plot_only:
    missing = {name for name, pts in grid.items()
               if not all(is_stored(out, c) for _, c in pts)}
    for name in sorted(missing):
      print(f"--plot-only: {name} skipped, not every point of it is stored in {out}")
    grid = {name: pts for name, pts in grid.items() if name not in missing}
  # One sweep over the union: the reference point is trained once for all four figures,
  # and points are trained in figure order so that early figures can be drawn first.
  unique = list({c: None for pts in grid.values() for _, c in pts})
  records = dict(zip(unique, run_sweep(unique, out)))
  sections = {name: [(label, records[c]) for label, c in pts] for name, pts in grid.items()}

  os.makedirs(args.figures_dir, exist_ok=True)
  fig_path = lambda name: os.path.join(args.figures_dir, f"paper_{name}_{tag}.png")
  written = []
  for name, rows in sections.items():
    cfgs = [c for _, c in grid[name]]
    recs = [r for _, r in rows]
    if name == "phases":
      plot_phases(base, recs[0], fig_path(name))
    elif name == "heldout_proportion":
      plot_sweep(base, [c.n_heldout / c.n_negatives for c in cfgs], recs,
                 f"held-out share of the {base.n_negatives} negatives",
                 "Held-out negatives vs the random control against the held-out proportion",
                 fig_path(name))
    elif name == "model_size":
      labels = [f"{label}\n{n_params(c) / 1e6:.2g}M params" for (label, _), c in
                zip(grid[name], cfgs)]
      plot_sweep(base, range(len(cfgs)), recs, "our transformer (layers, width)",
                 "Held-out negatives vs the random control against model size", fig_path(name),
                 xticklabels=labels)
    else:
      plot_sweep(base, range(len(cfgs)), recs, "condition",
                 "Ablations: held-out negatives vs the random control", fig_path(name),
                 xticklabels=[textwrap.fill(label, 16) for label, _ in grid[name]])
    written.append(fig_path(name))

  # The table covers every figure whose points are all stored, so that drawing one figure
  # does not drop the others' numbers from it.
  stored = {name: [(label, records[c] if c in records else load_point(out, c))
                   for label, c in pts]
            for name, pts in figure_points(base).items()
            if all(is_stored(out, c) for _, c in pts)}
  command = producing_command("experiments/paper_figures.py", argv)
  what = f"preset {base.preset}" + (f", from `{base.init_from}`" if base.init_from else "")
  text = f"# The study's figures, {what}\n\nCommand: `{command}`\n\n" + table(stored)
  if len(stored.get("heldout_proportion", [])) >= 2:  # a trend needs two shares
    text += "\n\n" + trend_table(stored["heldout_proportion"])
  if stored:
    text += "\n\n" + dynamics_table(stored)
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, "table.md"), "w") as f:
    f.write(text + "\n")
  print(text)
  print("figures:", *written, sep="\n  ")
  return sections


if __name__ == "__main__":
  main()
