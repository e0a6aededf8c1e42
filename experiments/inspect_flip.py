"""Where the flip lives: the toy and the learned transformers of toy_vs_learned.py, taken apart
with toy.inspect (direct logit attribution, the law component by component, the prefix
direction, activation patching).

  python experiments/inspect_flip.py                       # the runs of toy_vs_learned.py
  python experiments/inspect_flip.py --n_seeds 8           # the runs of toy_vs_learned.py --n_seeds 8
  python experiments/inspect_flip.py --preset tiny --out_dir /tmp/runs   # seconds, a smoke run
  python experiments/inspect_flip.py --run_dirs runs/a runs/b            # any saved run folders

By default it reads the folders that ``python experiments/toy_vs_learned.py`` with the same
flags writes to ``--out_dir`` (runs/): the toy, the learned model with the config's phase-3
lever (preset ``partial``: the embedding and the lower half frozen in phase 3) and the same
model under PROTOCOL's phase 3 (``..._protocol``). A folder that is missing is trained first
with toy_vs_learned's configs (toy.columns; and written there); a present one is never
retrained. Every model is then loaded from its folder (``toy.inspect.load_run``). Writes
  figures/inspect_component_law.png    per component: "reverse" vs "regular" contribution,
                                       useful and held-out negatives, one row per model
  figures/inspect_prefix_direction.png the regular - reverse direction per layer and position:
                                       norm, held-out probe accuracy, |cos| with upper MLP reads
  figures/inspect_patching.png         change in held-out - control log-likelihood when one
                                       component is patched across prefixes
  results/inspect_flip.md / .json      the tables: seeds, mean ± sd, t-tests
"""
from __future__ import annotations

import dataclasses
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import toy
from toy import inspect as I
from toy.cli import parse_config
from toy.columns import DEFAULTS, add_args, column_configs, train_columns
from toy.config import producing_command, script_parser
from toy.io import default_run_name, write_json_atomic
from toy.measure import LAW_SETS
from toy.plots import save_figure
from toy.stats import fmt, fmt_g, g_summary, paired_test

SET_COLORS = {"useful": "tab:blue", "heldout": "tab:red"}
DIRECTION_COLORS = {"regular->reverse": "tab:purple", "reverse->regular": "tab:green"}


# ----------------------------------------------------------------------------- runs

def load_or_train(cfgs: dict) -> dict:
  """{name: loaded RunResult}; folders that are missing are trained (and written) first.

  A folder's name does not say everything (``default_run_name`` leaves out e.g.
  mix_lower_lr_scale), so a present folder whose config.json differs from the expected
  config is refused, naming the fields, rather than inspected as if it were that run.
  """
  dirs = {name: os.path.join(c.out_dir, default_run_name(c)) for name, c in cfgs.items()}
  missing = {name: c for name, c in cfgs.items() if not os.path.isdir(dirs[name])}
  if missing:
    print(f"training the missing runs: {', '.join(dirs[n] for n in missing)}")
    train_columns(missing)
  runs = {name: I.load_run(d) for name, d in dirs.items()}
  for name, r in runs.items():
    want, got = dataclasses.asdict(cfgs[name]), dataclasses.asdict(r.cfg)
    diff = [f"{k}={got[k]!r} (expected {want[k]!r})" for k in want
            if k != "out_dir" and got[k] != want[k]]
    if diff:
      raise ValueError(f"{dirs[name]} holds another run than '{name}': {', '.join(diff)}; "
                       "move it away, or pass the flags it was trained with")
  return runs


# ----------------------------------------------------------------------------- analyses

def analyse(result) -> dict:
  attr = I.attribution(result)
  worst = max(float(np.abs(sum(v for k, v in parts.items() if k != "total")
                           - parts["total"]).max()) for parts in attr.values())
  return {"attribution": attr, "attribution_error": worst, "law": I.component_law(result, attr),
          "direction": I.prefix_direction(result), "patching": I.patching(result)}


# ----------------------------------------------------------------------------- tables

def cell(values, against=0.0) -> str:
  """'mean ± sd (t, p)' of a per-seed difference from ``against`` (toy.stats.fmt); n/a where
  a value is not defined (a component with nothing to regress)."""
  values = np.asarray(values, float)
  if not np.all(np.isfinite(values)):
    return "n/a"
  return fmt(paired_test(values, against))


def mean_sd(values) -> str:
  values = np.asarray(values, float)
  sd = values.std(ddof=1) if values.size > 1 else float("nan")
  return f"{values.mean():.3f} ± {sd:.3f}"


def versus(values, reference, name: str) -> str:
  """'mean ± sd (vs name: t, p)': the values themselves, tested against ``reference`` (a
  number, or per-seed values for a paired test)."""
  test = paired_test(values, reference)
  return f"{mean_sd(values)} (vs {name}: t={test['t']:.2f}, p={test['p']:.2g})"


def component_g(row: dict) -> dict | None:
  """A component's G (toy.stats.g_summary: n/a where its useful slope is not significantly
  below 0); None where it has no slope (it contributes nothing under "regular")."""
  useful, heldout = (np.asarray(row[f"slope/{s}"], float) for s in ("useful", "heldout"))
  if not (np.all(np.isfinite(useful)) and np.all(np.isfinite(heldout))):
    return None
  return g_summary(useful, heldout)


def g_cell(row: dict) -> str:
  g = component_g(row)
  return "n/a (no slope)" if g is None else fmt_g(g)


def law_table(name: str, law: dict) -> list[str]:
  lines = [f"### {name}", "",
           "| component | slope, useful | slope, held-out | held-out − useful slope (paired) "
           "| G = held-out / useful | share of the law slope, useful | share, held-out |",
           "|---|---|---|---|---|---|---|"]
  for comp, row in law.items():
    lines.append(f"| {comp} | {cell(row['slope/useful'])} | {cell(row['slope/heldout'])} | "
                 f"{cell(row['slope/heldout'], row['slope/useful'])} | {g_cell(row)} | "
                 f"{cell(row['share/useful'])} | {cell(row['share/heldout'])} |")
  return lines + [""]


def direction_table(name: str, d: dict) -> list[str]:
  later = slice(1, None)  # positions 1..T-1: position 0 holds the prefix token only
  lines = [f"### {name}", "",
           "| layer | ‖Δ‖ at position 0 | ‖Δ‖, positions ≥ 1 (mean) | ‖Δ‖ / mean ‖x‖, "
           "positions ≥ 1 | probe accuracy on held-out, positions ≥ 1 |",
           "|---|---|---|---|---|"]
  for li, layer in enumerate(d["layers"]):
    lines.append(f"| {layer} | {mean_sd(d['norm'][:, li, 0])} | "
                 f"{mean_sd(d['norm'][:, li, later].mean(-1))} | "
                 f"{mean_sd(d['relative_norm'][:, li, later].mean(-1))} | "
                 f"{versus(d['probe_accuracy'][:, li, later].mean(-1), 0.5, 'chance 0.5')} |")
  if d["upper_blocks"]:
    lines += ["", "Δ entering block j against what each of its MLP neurons reads, "
              "P(γ₂ ⊙ W_up[:, n]): |cos| over neurons, tested (paired over seeds) against "
              "the same for random directions:", "",
              "| block | max \\|cos\\|, position 0 | max \\|cos\\|, positions ≥ 1 | "
              "mean \\|cos\\|, all positions | random: max, mean |",
              "|---|---|---|---|---|"]
    for k, j in enumerate(d["upper_blocks"]):
      rmax, rmean = d["random_cos_max"][:, k], d["random_cos_mean"][:, k]
      lines.append(f"| blocks.{j}.mlp | {versus(d['cos_max'][:, k, 0], rmax, 'random')} | "
                   f"{versus(d['cos_max'][:, k, later].mean(-1), rmax, 'random')} | "
                   f"{versus(d['cos_mean'][:, k].mean(-1), rmean, 'random')} | "
                   f"{mean_sd(rmax)}, {mean_sd(rmean)} |")
  return lines + [""]


def patching_table(name: str, p: dict) -> list[str]:
  lines = [f"### {name}", "",
           "| patched component | source → target prefix | Δ(held-out − control) | "
           "Δ(useful − control) |", "|---|---|---|---|"]
  for (comp, how), row in p.items():
    if comp == "clean":
      continue
    lines.append(f"| {comp} | {how.replace('->', ' → ')} | "
                 f"{cell(row['heldout_minus_control'])} | {cell(row['useful_minus_control'])} |")
  clean = [f"{target}: held-out − control {cell(row['heldout_minus_control'])}, useful − control "
           f"{cell(row['useful_minus_control'])}"
           for (comp, target), row in p.items() if comp == "clean"]
  return lines + ["", "Clean runs (nats/token, for reference): " + "; ".join(clean) + ".", ""]


def halves(law: dict, upper_blocks: list[int]) -> dict | None:
  """Per seed, the law's shares summed over the lower half (the embedding and the blocks
  below ``upper_blocks``, the ones phase 2 freezes: toy.inspect.upper_blocks) and over the
  upper half, for each set; None for a model without blocks (the toy)."""
  if not any(c.startswith("blocks.") for c in law):
    return None
  upper = lambda c: c.startswith("blocks.") and int(c.split(".")[1]) in upper_blocks
  lower = lambda c: c == "embed" or (c.startswith("blocks.") and not upper(c))
  return {(half, s): np.sum([law[c][f"share/{s}"] for c in law if part(c)], axis=0)
          for half, part in (("lower", lower), ("upper", upper)) for s in LAW_SETS}


def halves_lines(runs: dict, out: dict) -> list[str]:
  lines = ["| model | lower half, useful | lower half, held-out | upper half, useful | "
           "upper half, held-out | upper half: held-out / useful (per seed) |",
           "|---|---|---|---|---|---|"]
  for name in runs:
    h = halves(out[name]["law"], out[name]["direction"]["upper_blocks"])
    if h is None:
      continue
    ratio = h[("upper", "heldout")] / h[("upper", "useful")]
    lines.append(f"| {name} | " + " | ".join(cell(h[(half, s)]) for half in ("lower", "upper")
                                              for s in LAW_SETS) + f" | {cell(ratio)} |")
  return lines


SECTIONS = [  # (title, what it measures, the table of one model, the analysis it reads)
    ("The law component by component",
     "Per password, each component's contribution to the centred target logit under "
     "\"reverse\" regressed through the origin on the same under \"regular\" (slope), and on "
     "the whole model's under \"regular\" (share; shares add up to the law slope, row "
     "`total`). n/a: the component contributes nothing under \"regular\" (no slope).",
     law_table, "law"),
    ("The prefix direction",
     "Δ = mean residual stream under \"regular\" − under \"reverse\" (the same passwords), "
     "after the embedding (`embed`) and after each block; the probe is trained on useful "
     "negatives + control, tested on held-out negatives, both prefixes.",
     direction_table, "direction"),
    ("Activation patching",
     "One component's output from the source-prefix run substituted into the target-prefix "
     "run, on the same passwords; change in mean per-token log-likelihood differences, "
     "patched minus clean.", patching_table, "patching"),
]


def report(runs: dict, out: dict, command: str) -> str:
  lines = ["# Where the flip lives", "", f"Command: `{command}`", "",
           "Values are mean ± sd over seeds; where a t-test is given it is against 0, or "
           "against the value named (paired over seeds when that value is per seed, as for a "
           "difference of two per-seed values; toy.stats.paired_test). Module: "
           "`toy/inspect.py` (its docstring defines every quantity).", "", "| model | run folder | seeds | attribution: max \\|Σ parts − "
           "model\\| |", "|---|---|---|---|"]
  for name, r in runs.items():
    lines.append(f"| {name} | `{r.run_dir}` | {r.cfg.seeds} | {out[name]['attribution_error']:.1e} |")
  lines += ["", "## The law by halves", "", "The shares of the law (next section) summed "
            "over the lower half (the embedding and the blocks the partial lever freezes) and "
            "over the upper half, per seed; t-tests against 0.", "", *halves_lines(runs, out)]
  for title, intro, table, key in SECTIONS:
    lines += ["", f"## {title}", "", intro, ""]
    for name in runs:
      lines += table(name, out[name][key])
  return "\n".join(lines)


# ----------------------------------------------------------------------------- figures

def plot_component_law(runs: dict, out: dict, path: str):
  comps = {name: [c for c in out[name]["law"] if c != "total"] for name in runs}
  n_cols = max(len(c) for c in comps.values())
  fig, axes = plt.subplots(len(runs), n_cols, figsize=(3.2 * n_cols, 3.2 * len(runs)),
                           squeeze=False)
  for row, name in zip(axes, runs):
    attr, law = out[name]["attribution"], out[name]["law"]
    for ax, comp in zip(row, comps[name]):
      for s, color in SET_COLORS.items():
        x, y = attr[(s, "regular")][comp].ravel(), attr[(s, "reverse")][comp].ravel()
        ax.scatter(x, y, s=4, alpha=0.3, color=color)
        slopes = law[comp][f"slope/{s}"]
        if np.isfinite(slopes).all():
          k = float(slopes.mean())
          xs = np.array([min(x.min(), 0), max(x.max(), 0)])
          ax.plot(xs, k * xs, color=color, lw=1.3, label=f"{s}: {k:+.2f}")
      ax.axhline(0, color="k", lw=0.5, ls="--")
      ax.axvline(0, color="k", lw=0.5, ls="--")
      if all(np.all(attr[(s, w)][comp] == 0) for s in SET_COLORS for w in I.PREFIXES):
        ax.text(0.5, 0.7, "contributes 0 to every password", transform=ax.transAxes,
                ha="center", fontsize=8)
      g = component_g(law[comp])
      ax.set_title(f"{comp}  (G {g['per_seed']['mean']:+.2f})" if g and g["defined"] else
                   f"{comp}  (G n/a)", fontsize=9)
      ax.tick_params(labelsize=7)
      if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, title="slope", title_fontsize=7)
    row[0].set_ylabel(f"{name}\nunder 'reverse'", fontsize=8)
    for ax in row[len(comps[name]):]:
      ax.axis("off")
  for ax in axes[-1]:
    ax.set_xlabel("under 'regular'", fontsize=8)
  fig.suptitle("Each component's contribution to the centred target logit, one point per "
               "password (all seeds): blue useful, red held-out negatives", fontsize=11)
  save_figure(fig, path, dpi=110)


def plot_prefix_direction(runs: dict, out: dict, path: str):
  fig, axes = plt.subplots(len(runs), 3, figsize=(15, 3.6 * len(runs)), squeeze=False)
  for row, name in zip(axes, runs):
    d = out[name]["direction"]
    T = d["norm"].shape[-1]
    colors = plt.cm.viridis(np.linspace(0, 0.9, T))
    x = np.arange(len(d["layers"]))
    for t in range(T):
      row[0].plot(x, d["norm"][:, :, t].mean(0), marker="o", color=colors[t], label=f"pos {t}")
      row[1].plot(x, d["probe_accuracy"][:, :, t].mean(0), marker="o", color=colors[t])
    for ax, label in ((row[0], "‖Δ‖ (regular − reverse)"), (row[1], "probe accuracy, held-out")):
      ax.set_xticks(x, d["layers"], fontsize=7, rotation=30)
      ax.set_ylabel(label, fontsize=8)
      ax.set_title(name, fontsize=9)
    row[1].axhline(0.5, color="k", ls="--", lw=0.7)
    row[1].set_ylim(0.4, 1.02)
    row[0].legend(fontsize=6, ncol=2)
    if d["upper_blocks"]:
      for k, j in enumerate(d["upper_blocks"]):
        c = f"C{k}"
        row[2].plot(range(T), d["cos_max"][:, k].mean(0), marker="o", color=c,
                    label=f"blocks.{j}.mlp max")
        row[2].plot(range(T), d["cos_mean"][:, k].mean(0), marker="s", ls=":", color=c,
                    label=f"blocks.{j}.mlp mean")
        row[2].axhline(d["random_cos_max"][:, k].mean(), color=c, ls="--", lw=0.7)
        row[2].axhline(d["random_cos_mean"][:, k].mean(), color=c, ls="-.", lw=0.7)
      row[2].set_xlabel("position (dashed: random directions)", fontsize=8)
      row[2].set_ylabel("|cos(Δ entering block, neuron read)|", fontsize=8)
      row[2].legend(fontsize=6)
    else:
      row[2].axis("off")
      row[2].text(0.5, 0.5, "no MLP: the direction is read by the times node", ha="center",
                  va="center", fontsize=9)
  fig.suptitle("The prefix direction (mean over seeds)", fontsize=11)
  save_figure(fig, path, dpi=110)


def plot_patching(runs: dict, out: dict, path: str):
  fig, axes = plt.subplots(len(runs), 1, figsize=(11, 3.3 * len(runs)), squeeze=False)
  for ax, name in zip(axes[:, 0], runs):
    p = out[name]["patching"]
    comps = list(dict.fromkeys(c for c, _ in p if c != "clean"))
    x = np.arange(len(comps))
    for k, (how, color) in enumerate(DIRECTION_COLORS.items()):
      vals = np.array([p[(c, how)]["heldout_minus_control"] for c in comps])  # C x S
      pos = x + (k - 0.5) * 0.38
      ax.bar(pos, vals.mean(-1), width=0.36, color=color, alpha=0.75,
             yerr=vals.std(-1, ddof=1) if vals.shape[-1] > 1 else None, capsize=2,
             label=f"patch {how.replace('->', ' → ')}")
      for xi, v in zip(pos, vals):
        ax.scatter(np.full(v.shape, xi), v, s=8, color="k", alpha=0.5, zorder=3)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(x, comps, fontsize=8)
    ax.set_ylabel("Δ(held-out − control)\nnats/token", fontsize=8)
    ax.set_title(name, fontsize=9)
    ax.legend(fontsize=7)
  fig.suptitle("Activation patching across prefixes (mean ± sd over seeds, dots: seeds)",
               fontsize=11)
  save_figure(fig, path, dpi=110)


# ----------------------------------------------------------------------------- main

def _jsonable(obj):
  if isinstance(obj, dict):
    return {(" | ".join(k) if isinstance(k, tuple) else str(k)): _jsonable(v)
            for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_jsonable(v) for v in obj]
  if isinstance(obj, np.ndarray):
    return np.where(np.isfinite(obj), obj, None).tolist() if obj.dtype.kind == "f" else obj.tolist()
  if isinstance(obj, np.generic):
    return obj.item()
  return obj


def main(argv=None):
  parser = script_parser(__doc__)
  add_args(parser)
  parser.add_argument("--run_dirs", nargs="+", default=None,
                      help="saved run folders to inspect instead of toy_vs_learned's")
  parser.add_argument("--figures", default="figures")
  parser.add_argument("--results", default="results")
  learned_cfg, args = parse_config(parser, argv, model="transformer", **DEFAULTS)
  toy.enable_compilation_cache()
  if args.run_dirs:
    runs = {os.path.basename(os.path.normpath(d)): I.load_run(d) for d in args.run_dirs}
  else:
    args.no_acquired = True  # inspected on its own by experiments/inspect_acquired.py
    cfgs = column_configs(learned_cfg, args, parser)
    try:
      runs = load_or_train(cfgs)
    except ValueError as e:
      parser.error(str(e))
  out = {}
  for name, r in runs.items():
    print(f"inspecting {name} ({r.run_dir}, seeds {r.cfg.seeds})")
    out[name] = analyse(r)

  os.makedirs(args.figures, exist_ok=True)
  os.makedirs(args.results, exist_ok=True)
  plot_component_law(runs, out, os.path.join(args.figures, "inspect_component_law.png"))
  plot_prefix_direction(runs, out, os.path.join(args.figures, "inspect_prefix_direction.png"))
  plot_patching(runs, out, os.path.join(args.figures, "inspect_patching.png"))
  command = producing_command("experiments/inspect_flip.py", argv)
  text = report(runs, out, command)
  with open(os.path.join(args.results, "inspect_flip.md"), "w") as f:
    f.write(text + "\n")
  write_json_atomic(os.path.join(args.results, "inspect_flip.json"), _jsonable({
      name: {"run_dir": runs[name].run_dir, "seeds": runs[name].cfg.seeds,
             **{k: v for k, v in o.items() if k != "attribution"}}
      for name, o in out.items()}))
  print(text)
  return runs, out


if __name__ == "__main__":
  main()
