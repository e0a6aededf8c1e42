"""Perfect, partial and none: the toy and the learned transformer side by side, three columns.

Both are trained by the same engine on the same data and seeds.

  python experiments/toy_vs_learned.py                     # CPU default (preset partial)
  python experiments/toy_vs_learned.py --toy_c 3 --toy_train_sign false   # hand-set the times node
  python experiments/toy_vs_learned.py --preset paper --mix_lower_lr_scale 0 --n_seeds 8  # GPU
  python experiments/toy_vs_learned.py --init_from /path/to/pythia-160m --preset paper \
      --results results/pythia-160m --figures figures/pythia-160m   # learned = the checkpoint

Columns: the toy (PROTOCOL's phases), the learned transformer with the config's phase-3
lever (``mix_lower_lr_scale``; the default preset ``partial`` freezes the embedding and the
lower half in phase 3), and the same transformer under PROTOCOL's phase 3 (scale 1). The two
learned columns share phases 1-2 (trained once). Every Config field is a flag and applies to
every model, except that the toy keeps its own optimizer settings (toy.config.TOY_OVERRIDES)
unless --toy_lr is given, and the toy_* fields only concern the toy. With --init_from, the
learned columns start from that checkpoint and are normalised as --normalize says (default
vocab); the toy column stays the toy, normalised over the alphabet. Writes
  figures/toy_vs_learned_phases.png   per-token log-likelihood of the three sets, all phases
  figures/toy_vs_learned_law.png      per password: suppression under "regular" vs uplift
                                      under "reverse" (one law for the toy)
  results/toy_vs_learned.md / .json   the table (also printed)
"""
from __future__ import annotations

import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import toy
from toy.config import Config, config_from_args, parse_config, producing_command, \
    script_parser
from toy.engine import train, train_many
from toy.io import default_run_name, write_json_atomic
from toy.measure import law_slopes, summarize_model
from toy.plots import STRETCH, phase_curves, save_figure
from toy.sweep import fmt


def table(rows: dict[str, dict], n_seeds: int) -> str:
  lines = [f"Phase 3 end, reverse prefix, nats/token; mean ± sd over {n_seeds} seeds, "
           "one-sample t-test against 0 (paired across seeds for differences).", "",
           "| quantity | " + " | ".join(rows) + " |", "|---" * (len(rows) + 1) + "|"]
  labels = [("held-out − control (final)", "heldout_vs_control_final"),
            ("held-out − control (max over phase 3)", "heldout_vs_control_max"),
            ("held-out − chance (final)", "heldout_vs_chance_final"),
            ("held-out − chance (max over phase 3)", "heldout_vs_chance_max"),
            ("useful − chance (final)", "useful_vs_chance_final"),
            ("control − chance (final)", "control_vs_chance_final"),
            ("law slope, useful (centred target logit, reverse / regular)", "law_slope_useful"),
            ("law slope, held-out", "law_slope_heldout"),
            ("generalization ratio G = slope held-out / slope useful (1 perfect, 0 none)",
             "generalization_ratio"),
            ("within-set slope (with intercept), useful", "within_slope_useful"),
            ("within-set slope (with intercept), held-out", "within_slope_heldout")]
  for label, key in labels:
    lines.append(f"| {label} | " + " | ".join(fmt(r[key]) for r in rows.values()) + " |")
  return "\n".join(lines)


def plot_phases(results: dict, path: str):
  fig, axes = plt.subplots(1, len(results), figsize=(6.5 * len(results), 4.5), squeeze=False)
  for ax, (title, result) in zip(axes[0], results.items()):
    phase_curves(ax, result.cfg, result.history,
                 f"{title}\nphases 1-2 under 'regular', phase 3 under 'reverse'; "
                 f"axis linear within ±{STRETCH}")
  save_figure(fig, path)


def plot_law(slopes: dict, ratios: dict, path: str):
  fig, axes = plt.subplots(1, len(slopes), figsize=(6 * len(slopes), 5), squeeze=False)
  for ax, (title, sl) in zip(axes[0], slopes.items()):
    for s, color in [("useful", "tab:blue"), ("heldout", "tab:red")]:
      x, y = sl[f"points/{s}"]
      ax.scatter(x, y, s=6, alpha=0.35, color=color, label=f"{s} negatives (n={x.size})")
      k = float(np.mean(sl[s]))
      xs = np.array([min(x.min(), 0), max(x.max(), 0)])
      ax.plot(xs, k * xs, color=color, lw=1.5, label=f"{s}: slope {k:+.2f} (mean over seeds)")
    ax.axhline(0, color="k", lw=0.6, ls="--")
    ax.axvline(0, color="k", lw=0.6, ls="--")
    ax.set_title(f"{title}: G = {ratios[title]:+.2f}")
    ax.set_xlabel("under 'regular': true letter's logit − mean logit (suppression < 0)")
    ax.set_ylabel("under 'reverse': true letter's logit − mean logit (uplift > 0)")
    ax.legend(fontsize=8)
  fig.suptitle("one point per password (all seeds); the toy's law: one line for both sets")
  save_figure(fig, path)


DEFAULTS = dict(n_seeds=2, preset="partial")  # flags not given
TOY = "toy (hand-built)"
PROTOCOL_COLUMN = "learned, PROTOCOL phase 3"


def add_args(parser: argparse.ArgumentParser) -> None:
  """The script's own flag; ``parse_config`` adds every Config field."""
  parser.add_argument("--toy_lr", type=float, default=None, help="the toy's own learning rate")


def column_configs(learned_cfg: Config, args: argparse.Namespace,
                   parser: argparse.ArgumentParser | None = None) -> dict[str, Config]:
  """The columns' configs by name: the toy, the learned transformer (``learned_cfg``, from
  ``parse_config(..., model="transformer", **DEFAULTS)``) with the config's phase-3 lever and,
  when that lever is below 1, the same transformer under PROTOCOL's phase 3. A bad value
  exits through ``parser.error`` (raises ValueError without ``parser``)."""
  args = argparse.Namespace(**vars(args))  # the caller's namespace stays as it was
  toy_lr = {} if args.toy_lr is None else {"lr": args.toy_lr}
  if args.lr is not None:  # a --lr meant for the learned model must not reach the toy
    args.lr = None
  # The toy runs PROTOCOL's phases: its flip lives in the times node, whatever the lever.
  args.mix_lower_lr_scale = None
  # A checkpoint is the learned columns' start; the toy is built by hand, over the alphabet.
  args.init_from, args.normalize = None, None
  toy_cfg = config_from_args(args, parser, model="toy", mix_lower_lr_scale=1.0, **DEFAULTS,
                             **toy_lr)
  scale = learned_cfg.mix_lower_lr_scale
  if scale >= 1:
    return {TOY: toy_cfg, "learned transformer (PROTOCOL)": learned_cfg}
  protocol_cfg = learned_cfg.replace(mix_lower_lr_scale=1.0,
                                     run_name=default_run_name(learned_cfg) + "_protocol")
  return {TOY: toy_cfg, f"learned, phase 3 lower half ×{scale:g}": learned_cfg,
          PROTOCOL_COLUMN: protocol_cfg}


def train_columns(cfgs: dict[str, Config], save: bool = True) -> dict:
  """Trains the columns, each toy alone and the learned ones in one program (phases 1-2
  trained once for columns that differ only in phase-3 fields); {name: RunResult}."""
  results = {name: train(c, save=save) for name, c in cfgs.items() if c.model == "toy"}
  learned = [name for name, c in cfgs.items() if c.model != "toy"]
  if learned:
    results.update(zip(learned, train_many([cfgs[n] for n in learned], save=save)))
  return {name: results[name] for name in cfgs}


def main(argv=None):
  parser = script_parser(__doc__)
  add_args(parser)
  parser.add_argument("--figures", default="figures")
  parser.add_argument("--results", default="results")
  learned_cfg, args = parse_config(parser, argv, model="transformer", **DEFAULTS)
  cfgs = column_configs(learned_cfg, args, parser)
  toy_cfg = cfgs[TOY]
  toy.enable_compilation_cache()

  scale = learned_cfg.mix_lower_lr_scale
  results = train_columns(cfgs)
  slopes = {name: law_slopes(r) for name, r in results.items()}
  rows = {name: summarize_model(r, slopes[name]) for name, r in results.items()}
  ratios = {name: rows[name]["generalization_ratio"]["mean"] for name in rows}

  os.makedirs(args.figures, exist_ok=True)
  os.makedirs(args.results, exist_ok=True)
  plot_phases(results, os.path.join(args.figures, "toy_vs_learned_phases.png"))
  plot_law(slopes, ratios, os.path.join(args.figures, "toy_vs_learned_law.png"))
  text = table(rows, learned_cfg.n_seeds)
  command = producing_command("experiments/toy_vs_learned.py", argv)
  header = (f"# Toy vs learned\n\nCommand: `{command}`\n\nLearned: preset `{learned_cfg.preset}`, "
            + (f"from checkpoint `{learned_cfg.init_from}`, " if learned_cfg.init_from else "")
            + (f"log-probs normalised over the {learned_cfg.normalize}, "
               if learned_cfg.normalize != "alphabet" else "")
            + f"mix_lower_lr_scale {scale:g} (the PROTOCOL column: 1); "
            f"toy: same data and phases, lr {toy_cfg.lr}, "
            f"a={toy_cfg.toy_a}, c={toy_cfg.toy_c}, gain={toy_cfg.toy_gain_add}.\n\n")
  with open(os.path.join(args.results, "toy_vs_learned.md"), "w") as f:
    f.write(header + text + "\n")
  write_json_atomic(os.path.join(args.results, "toy_vs_learned.json"),
                    {"rows": rows, "configs": {n: json.loads(r.cfg.to_json())
                                               for n, r in results.items()}})
  print(text)
  return rows


if __name__ == "__main__":
  main()
