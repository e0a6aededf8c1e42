"""Perfect, partial and none: the toy and the learned transformer side by side, three columns.

Both are trained by the same engine on the same data and seeds.

  python experiments/toy_vs_learned.py                     # CPU default (preset partial)
  python experiments/toy_vs_learned.py --toy_c 3 --toy_train_sign false   # hand-set the times node
  python experiments/toy_vs_learned.py --toy_gates 2048 --toy_gate_mix 1   # a partial toy: its
      # times node as m gates, each row a mix of k (experiments/leakage.py), beside the learned
  python experiments/toy_vs_learned.py --preset paper --mix_lower_lr_scale 0 --n_seeds 8  # GPU
  python experiments/toy_vs_learned.py --init_from /path/to/pythia-160m --preset paper \
      --results results/pythia-160m --figures figures/pythia-160m   # learned = the checkpoint

Columns (toy.columns): the toy (PROTOCOL's phases), the learned transformer with the config's phase-3
lever (``mix_lower_lr_scale``; the default preset ``partial`` freezes the embedding and the
lower half in phase 3), the same transformer under PROTOCOL's phase 3 (scale 1), and the
acquired transformer: one prior episode on other data with its phase 3 at scale 0, then the
measured episode under PROTOCOL's phase 3 (experiments/acquired.py; ``--no_acquired`` leaves
it out). The lever and PROTOCOL columns share phases 1-2 (trained once). Every Config field is a
flag and applies to every model, except that the toy keeps its own optimizer settings (toy.config.TOY_OVERRIDES)
unless --toy_lr is given, and the toy_* fields only concern the toy. With --init_from, the
learned columns start from that checkpoint and are normalised as --normalize says (default
vocab); the toy column stays the toy, normalised over the alphabet. Writes
  figures/toy_vs_learned_phases.png   per-token log-likelihood of the three sets, all phases
  figures/toy_vs_learned_law.png      per password: suppression under "regular" vs uplift
                                      under "reverse" (one law for the toy)
  results/toy_vs_learned.md / .json   the table (also printed); the JSON keeps every
                                      column's per-seed values and the command
  python experiments/toy_vs_learned.py --table-only   # rewrite the table from the JSON
"""
from __future__ import annotations

import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import toy
from toy.cli import config_from_args
from toy.columns import ACQUIRED_COLUMN, DEFAULTS, add_args, column_configs, learned_args, \
    train_columns
from toy.config import add_config_args, producing_command, script_parser
from toy.io import write_json_atomic
from toy.measure import SHARED_NOTE, law_slopes, law_values, row_g, summarize_law, \
    summarize_model
from toy.plots import STRETCH, phase_curves, save_figure
from toy.stats import fmt, fmt_g, fmt_g_ratio, fmt_or_dash, fmt_study


LABELS = [  # (label, summarize_law key or one of G's two cells)
    ("held-out − control (final)", "heldout_vs_control_final"),
    ("held-out − control (max over phase 3)", "heldout_vs_control_max"),
    ("placebo − control (final): a second random set, nothing learned",
     "placebo_vs_control_final"),
    ("placebo − control (max over phase 3)", "placebo_vs_control_max"),
    ("held-out − chance (final)", "heldout_vs_chance_final"),
    ("held-out − chance (max over phase 3; bold: mean ≥ +0.122, the study's +13%)",
     "heldout_vs_chance_max"),
    ("placebo − chance (max over phase 3)", "placebo_vs_chance_max"),
    ("useful − chance (final)", "useful_vs_chance_final"),
    ("control − chance (final)", "control_vs_chance_final"),
    ("law slope, useful (centred target logit, reverse / regular)", "law_slope_useful"),
    ("law slope, held-out", "law_slope_heldout"),
    ("generalization ratio G = slope held-out / slope useful (1 perfect, 0 erased, < 0 kept), per seed",
     "G"),
    ("G: ratio of mean slopes [95% bootstrap CI over seeds]", "G:ratio"),
    ("within-set slope (with intercept), useful", "within_slope_useful"),
    ("within-set slope (with intercept), held-out", "within_slope_heldout")]


def cell(row: dict, key: str) -> str:
  """One cell of a column's summarize_law row; '—' where the row has no such value (a
  column stored before the placebo existed)."""
  if key in ("G", "G:ratio"):
    return (fmt_g if key == "G" else fmt_g_ratio)(row_g(row))
  formatter = fmt_study if key.endswith("chance_max") else fmt
  return fmt_or_dash(row.get(key), formatter)


def table(rows: dict[str, dict], n_seeds: int) -> str:
  lines = [f"Phase 3 end, reverse prefix, nats/token; mean ± sd over {n_seeds} seeds, "
           "one-sample t-test against 0 (paired across seeds for differences). "
           f"{SHARED_NOTE}", "",
           "| quantity | " + " | ".join(rows) + " |", "|---" * (len(rows) + 1) + "|"]
  for label, key in LABELS:
    lines.append(f"| {label} | " + " | ".join(cell(r, key) for r in rows.values()) + " |")
  return "\n".join(lines)


def plot_phases(results: dict, path: str):
  fig, axes = plt.subplots(1, len(results), figsize=(6.5 * len(results), 4.5), squeeze=False)
  for ax, (title, result) in zip(axes[0], results.items()):
    phase_curves(ax, result.cfg, result.history,
                 f"{title}\nphases 1-2 under 'regular', phase 3 under 'reverse'; "
                 f"axis linear within ±{STRETCH}")
  save_figure(fig, path)


def plot_law(slopes: dict, gs: dict, path: str):
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
    g = gs[title]
    ax.set_title(f"{title}: G = {g['per_seed']['mean']:+.2f}" if g["defined"] else
                 f"{title}: G n/a ({g['why']})")
    ax.set_xlabel("under 'regular': true letter's logit − mean logit (suppression < 0)")
    ax.set_ylabel("under 'reverse': true letter's logit − mean logit (uplift > 0)")
    ax.legend(fontsize=8)
  fig.suptitle("one point per password (all seeds); the toy's law: one line for both sets")
  save_figure(fig, path)


def main(argv=None):
  parser = script_parser(__doc__)
  add_args(parser)
  parser.add_argument("--figures", default="figures")
  parser.add_argument("--results", default="results")
  parser.add_argument("--table-only", action="store_true",
                      help="train nothing; rewrite the table from --results' stored JSON")
  add_config_args(parser)
  args = parser.parse_args(argv)
  learned_cfg = config_from_args(learned_args(args), parser, model="transformer", **DEFAULTS)
  command = producing_command("experiments/toy_vs_learned.py", argv)
  json_path = os.path.join(args.results, "toy_vs_learned.json")
  if args.table_only:
    rows, configs, command = load_rows(json_path, command)
    write_table(args.results, rows, configs, command)
    return rows
  cfgs = column_configs(learned_cfg, args, parser)
  toy.enable_compilation_cache()

  results = train_columns(cfgs)
  slopes = {name: law_slopes(r) for name, r in results.items()}
  rows = {name: summarize_model(r, slopes[name]) for name, r in results.items()}

  os.makedirs(args.figures, exist_ok=True)
  plot_phases(results, os.path.join(args.figures, "toy_vs_learned_phases.png"))
  plot_law(slopes, {name: rows[name]["G"] for name in rows},
           os.path.join(args.figures, "toy_vs_learned_law.png"))
  configs = {n: json.loads(r.cfg.to_json()) for n, r in results.items()}
  per_seed = {n: {"summary": r.summary,
                  "law": {k: v.tolist() for k, v in law_values(slopes[n]).items()}}
              for n, r in results.items()}
  write_json_atomic(json_path, {"rows": rows, "configs": configs, "per_seed": per_seed,
                                "command": command})
  write_table(args.results, rows, configs, command)
  return rows


def load_rows(json_path: str, command: str) -> tuple[dict, dict, str]:
  """(rows, configs, command) of a stored table. Rows are recomputed from the per-seed values
  where the JSON has them; a JSON written before it kept them gives its stored rows (and
  the command that wrote it, without flags, where it kept none)."""
  with open(json_path) as f:
    saved = json.load(f)
  rows = saved["rows"]
  for name, values in saved.get("per_seed", {}).items():
    law = {k: np.asarray(v) for k, v in values["law"].items()}
    rows[name] = {**summarize_law(values["summary"], law), "seeds": rows[name]["seeds"],
                  "chance": rows[name]["chance"]}
  return rows, saved["configs"], saved.get("command", command)


def write_table(results_dir: str, rows: dict, configs: dict, command: str) -> str:
  """results/toy_vs_learned.md from the columns' rows and configs (as JSON dicts); printed."""
  toy_cfg = next(c for c in configs.values() if c["model"] == "toy")
  learned_cfg = next(c for c in configs.values() if c["model"] != "toy")
  text = table(rows, learned_cfg["n_seeds"])
  header = (f"# Toy vs learned\n\nCommand: `{command}`\n\nLearned: preset "
            f"`{learned_cfg['preset']}`, "
            + (f"from checkpoint `{learned_cfg['init_from']}`, " if learned_cfg["init_from"]
               else "")
            + (f"log-probs normalised over the {learned_cfg['normalize']}, "
               if learned_cfg["normalize"] != "alphabet" else "")
            + f"mix_lower_lr_scale {learned_cfg['mix_lower_lr_scale']:g} (the PROTOCOL "
            + ("and acquired columns: 1; the acquired column's prior episode: 0"
               if ACQUIRED_COLUMN in configs else "column: 1")
            + f"); toy: same data and phases, lr {toy_cfg['lr']}, a={toy_cfg['toy_a']}, "
            f"c={toy_cfg['toy_c']}, gain={toy_cfg['toy_gain_add']}"
            + (f", times node as {toy_cfg.get('toy_gates', 1) or 'one per memory row'} gates, "
               f"{toy_cfg.get('toy_gate_mix', 1)} per row"
               if (toy_cfg.get("toy_gates", 1), toy_cfg.get("toy_gate_mix", 1)) != (1, 1)
               else "") + ".\n\n")
  os.makedirs(results_dir, exist_ok=True)
  with open(os.path.join(results_dir, "toy_vs_learned.md"), "w") as f:
    f.write(header + text + "\n")
  print(text)
  return text


if __name__ == "__main__":
  main()
