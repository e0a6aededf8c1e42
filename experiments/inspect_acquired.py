"""Does the measured episode reuse the prior episode's inversion?

  python experiments/inspect_acquired.py                  # the run folders of acquired.py --stage main
  python experiments/inspect_acquired.py --seed 8         # those of --stage confirm
  python experiments/inspect_acquired.py --preset tiny --out-md /tmp/ia.md --figure /tmp/ia.png

Reads the run folders that ``python experiments/acquired.py`` keeps under runs/acquired/ for
its "acquired" point (one prior episode whose phase 3 froze the embedding and the lower half,
prior_mix_lower_lr_scale 0) and its "sham" point (the prior episode's phase 3 trained
everything, scale 1), same seeds: <point id>/ holds the final model, <point id>_prior/ the
model at the end of the prior episode (``toy.inspect.load_run``). The points are found by
their configs, built as acquired.py builds them (``--preset``, ``--seed``; 8 seeds).

1. The law component by component (``toy.inspect.component_law``): the final model on the
   measured episode's data and the prior-episode model on the prior episode's data
   (``toy.inspect.episode_data``). Per component, its own law slope and its share of the
   model's law slope on useful and held-out negatives. Whether the same components carry
   the inversion in both: per seed, the correlation over the blocks' components (attention
   and MLP of every block; the embedding and the final LayerNorm's bias are left out: their
   contributions hardly depend on the prefix, so they sit near slope 1 in every model) of
   the final model's values with the prior model's, tested over seeds against 0 and paired
   acquired against sham. The shares summed per half (lower: embedding + blocks below
   n_layers // 2; upper: the other blocks + bias) say which half carries the law.
2. Grafting (``toy.inspect.graft``): for each seed, the acquired model with the sham's upper
   half (blocks n_layers // 2 and above, final LayerNorm, unembedding) and the sham with
   the acquired's; held-out − control under "reverse" (mean per-token log-likelihood, as
   ``toy.phases.evaluate``) on the measured episode's data (the same for both points: same
   seeds) for the four models, and the 2 x 2 effects of the lower and the upper half's
   origin, paired over seeds (``toy.stats.paired_test``). Two more rows put each final
   model's lower half under its own prior-episode upper half.

Writes results/inspect_acquired.md and .json and figures/inspect_acquired.png.
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
from toy.config import make_config, producing_command, script_parser
from toy.io import write_json_atomic
from toy.plots import save_figure
from toy.stats import fmt, paired_test
from toy.sweep import point_id

ARMS = {"acquired": 0.0, "sham": 1.0}  # arm: the prior episode's phase-3 lower-half lr scale
COLORS = {"acquired": "tab:red", "sham": "tab:blue"}
LAW_KEYS = ("slope/useful", "slope/heldout", "share/useful", "share/heldout")
# (name, lower half from, upper half from); "X prior" is X's model at the end of its prior episode
GRAFTS = [("acquired", "acquired", "acquired"),
          ("sham", "sham", "sham"),
          ("acquired lower + sham upper", "acquired", "sham"),
          ("sham lower + acquired upper", "sham", "acquired"),
          ("acquired lower + acquired-prior upper", "acquired", "acquired prior"),
          ("sham lower + sham-prior upper", "sham", "sham prior")]
MEASURES = [  # (name, f(evals, chance)): per seed
    ("held-out − control, reverse", lambda e, c: e["eval/reverse/heldout"] - e["eval/reverse/control"]),
    ("useful − control, reverse", lambda e, c: e["eval/reverse/useful"] - e["eval/reverse/control"]),
    ("placebo − control, reverse", lambda e, c: e["eval/reverse/placebo"] - e["eval/reverse/control"]),
    ("control − chance, reverse", lambda e, c: e["eval/reverse/control"] - c),
    ("held-out − control, regular", lambda e, c: e["eval/regular/heldout"] - e["eval/regular/control"]),
    ("control − chance, regular", lambda e, c: e["eval/regular/control"] - c),
]
HC = MEASURES[0][0]


# ----------------------------------------------------------------------------- runs

def arm_configs(preset: str, seed: int) -> dict:
  """The configs experiments/acquired.py builds for its sham and acquired points."""
  return {arm: make_config(preset, seed=seed, n_seeds=8, prior_episodes=1,
                           prior_mix_lower_lr_scale=scale) for arm, scale in ARMS.items()}


def run_dirs(runs: str, cfgs: dict) -> dict:
  return {arm: {"final": os.path.join(runs, point_id(c)),
                "prior": os.path.join(runs, point_id(c) + "_prior")} for arm, c in cfgs.items()}


def load(runs: str, cfgs: dict, preset: str, seed: int) -> dict:
  """{arm: {"final", "prior"}}: loaded RunResults; the prior model's data is the prior
  episode's. Exits with one line where a folder is missing."""
  dirs = run_dirs(runs, cfgs)
  missing = [d for arm in dirs.values() for d in arm.values()
             if not os.path.isfile(os.path.join(d, "params.npz"))]
  if missing:
    stage = {0: "main", 8: "confirm"}.get(seed, "main")
    flags = "" if preset == "cpu" else f" --preset {preset}"
    raise SystemExit(f"inspect_acquired: missing run folders ({', '.join(missing)}): run "
                     f"`python experiments/acquired.py --stage {stage}{flags}` first (it writes "
                     "them to runs/acquired; a point already stored in results/acquired is "
                     "not retrained)")
  out = {}
  for arm, cfg in cfgs.items():
    runs_of_arm = {k: I.load_run(d) for k, d in dirs[arm].items()}
    for k, r in runs_of_arm.items():
      if point_id(r.cfg) != point_id(cfg):
        raise SystemExit(f"inspect_acquired: {dirs[arm][k]} holds another config than the "
                         f"{arm} point's")
    prior = runs_of_arm["prior"]
    runs_of_arm["prior"] = dataclasses.replace(
        prior, data=I.episode_data(cfg, cfg.prior_episodes - 1))
    out[arm] = runs_of_arm
  return out


# ----------------------------------------------------------------------------- analyses

def block_components(law: dict) -> list[str]:
  return [c for c in law if c.startswith("blocks.")]


def halves(law: dict, n_layers: int) -> dict:
  """{"lower"/"upper": {"share/useful", "share/heldout"}}: the components' shares summed per
  half (lower: embed + blocks < n_layers // 2; upper: the other blocks + bias)."""
  def upper(c):
    return c == "bias" or (c.startswith("blocks.") and int(c.split(".")[1]) >= n_layers // 2)
  out = {}
  for half in ("lower", "upper"):
    comps = [c for c in law if c != "total" and upper(c) == (half == "upper")]
    out[half] = {k: sum(law[c][k] for c in comps) for k in ("share/useful", "share/heldout")}
  return out


def per_seed_correlation(final: dict, prior: dict, key: str) -> np.ndarray:
  """Per seed, Pearson's r over the blocks' components of ``key`` in the final model against
  the prior model (components whose value is not finite in either are left out)."""
  comps = block_components(final)
  x = np.array([prior[c][key] for c in comps])  # C x S
  y = np.array([final[c][key] for c in comps])
  out = []
  for s in range(x.shape[1]):
    ok = np.isfinite(x[:, s]) & np.isfinite(y[:, s])
    xs, ys = x[ok, s], y[ok, s]
    out.append(np.corrcoef(xs, ys)[0, 1] if ok.sum() > 2 and xs.std() > 0 and ys.std() > 0
               else np.nan)
  return np.asarray(out)


def analyse_law(runs: dict) -> dict:
  law = {arm: {k: I.component_law(r) for k, r in models.items()} for arm, models in runs.items()}
  n_layers = runs["acquired"]["final"].cfg.n_layers
  corr = {arm: {key: per_seed_correlation(law[arm]["final"], law[arm]["prior"], key)
                for key in LAW_KEYS} for arm in runs}
  half = {arm: {k: halves(law[arm][k], n_layers) for k in ("final", "prior")} for arm in runs}
  return {"law": law, "correlation": corr, "halves": half}


def graft_models(runs: dict) -> dict:
  a, s = runs["acquired"]["final"], runs["sham"]["final"]
  for k in a.data:
    if not np.array_equal(np.asarray(a.data[k]), np.asarray(s.data[k])):
      raise SystemExit(f"inspect_acquired: the acquired and sham points saw different "
                       f"measured-episode data ({k}): not the same seeds")
  parts = {"acquired": a, "sham": s, "acquired prior": runs["acquired"]["prior"],
           "sham prior": runs["sham"]["prior"]}
  upper = I.upper_half(a)
  return {name: parts[lo] if lo == up else I.graft(parts[lo], parts[up], upper)
          for name, lo, up in GRAFTS}


def analyse_grafts(runs: dict) -> dict:
  models = graft_models(runs)
  chance = runs["acquired"]["final"].cfg.chance
  values = {}
  for name, r in models.items():
    evals = I.evaluate_run(r)
    values[name] = {m: np.asarray(f(evals, chance), float) for m, f in MEASURES
                    if "placebo" not in m or "eval/reverse/placebo" in evals}
  v = {name: values[name][HC] for name, _, _ in GRAFTS}
  aa, ss = v["acquired"], v["sham"]
  a_s, s_a = v["acquired lower + sham upper"], v["sham lower + acquired upper"]
  contrasts = {
      "acquired − sham": aa - ss,
      "upper half's origin (acquired − sham upper, mean over both lowers)":
          0.5 * ((aa - a_s) + (s_a - ss)),
      "lower half's origin (acquired − sham lower, mean over both uppers)":
          0.5 * ((aa - s_a) + (a_s - ss)),
      "interaction (upper effect on acquired lower − on sham lower)": (aa - a_s) - (s_a - ss),
      "(sham lower + acquired upper) − sham": s_a - ss,
      "acquired − (acquired lower + sham upper)": aa - a_s,
      "(acquired lower + sham upper) − sham": a_s - ss,
      "acquired − (sham lower + acquired upper)": aa - s_a,
      "(acquired lower + acquired-prior upper) − acquired":
          v["acquired lower + acquired-prior upper"] - aa,
      "(sham lower + sham-prior upper) − sham": v["sham lower + sham-prior upper"] - ss,
  }
  return {"values": values, "contrasts": contrasts}


def prior_values(runs: dict) -> dict:
  """{arm: {measure: S}}: the prior-episode models on the prior episode's data."""
  out = {}
  for arm, models in runs.items():
    evals, chance = I.evaluate_run(models["prior"]), models["prior"].cfg.chance
    out[arm] = {m: np.asarray(f(evals, chance), float) for m, f in MEASURES
                if "placebo" not in m or "eval/reverse/placebo" in evals}
  return out


def checks(runs: dict, grafts: dict, prior: dict) -> dict:
  """Max |difference| between this script's held-out − control (reverse) and the run's own
  record: the final models against summary.json (end of the measured phase 3), the prior
  models (on the rebuilt prior-episode data) against the history's last prior-episode
  phase-3 evaluation. Rounding-sized values say the models and data are the runs'."""
  out = {}
  for arm, models in runs.items():
    final, cfg = models["final"], models["final"].cfg
    stored = np.array([s.get("reverse/heldout_minus_control/final", np.nan)
                       for s in final.summary] or [np.nan])
    out[f"{arm}: final vs summary.json"] = _max_abs(grafts["values"][arm][HC] - stored)
    mine = prior[arm][HC]
    rec = []
    for seed in cfg.seeds:
      rows = [h for h in final.history if h["seed"] == seed and h["phase"] == "mix"
              and h.get("episode") == cfg.prior_episodes - 1]
      last = max(rows, key=lambda h: h["step"]) if rows else None
      rec.append(np.nan if last is None else
                 last["eval/reverse/heldout"] - last["eval/reverse/control"])
    out[f"{arm}: prior vs its last phase-3 evaluation"] = _max_abs(mine - np.array(rec))
  return out


def _max_abs(d) -> float:
  """max |d|; nan where any is missing (a run folder without that record)."""
  d = np.asarray(d, float)
  return float(np.abs(d).max()) if np.all(np.isfinite(d)) else float("nan")


# ----------------------------------------------------------------------------- report

def cell(values, against=0.0) -> str:
  values = np.asarray(values, float)
  if np.ndim(against):
    against = np.asarray(against, float)
  if not np.all(np.isfinite(values)) or not np.all(np.isfinite(against)):
    return "n/a"
  return fmt(paired_test(values, against))


def above(values) -> str:
  values = np.asarray(values, float)
  return f"{int((values > 0).sum())}/{values.size}"


def law_lines(law: dict) -> list[str]:
  lines = []
  for arm, models in law.items():
    fin, pri = models["final"], models["prior"]
    lines += [f"### {arm}", "",
              "| component | final: slope useful | final: slope held-out | prior: slope useful | "
              "prior: slope held-out | final: share useful | final: share held-out | prior: "
              "share useful | prior: share held-out |", "|---" * 9 + "|"]
    for c in fin:
      lines.append(f"| {c} | " + " | ".join(
          cell(m[c][k]) for m in (fin, pri) for k in ("slope/useful", "slope/heldout")) + " | "
          + " | ".join(cell(m[c][k]) for m in (fin, pri)
                       for k in ("share/useful", "share/heldout")) + " |")
    lines.append("")
  return lines


def correlation_lines(corr: dict) -> list[str]:
  lines = ["| quantity | acquired: r (vs 0) | sham: r (vs 0) | acquired − sham (paired) | "
           "k/n acquired > sham |", "|---|---|---|---|---|"]
  for key in LAW_KEYS:
    a, s = corr["acquired"][key], corr["sham"][key]
    lines.append(f"| {key} | {cell(a)} | {cell(s)} | {cell(a, s)} | {above(a - s)} |")
  return lines


def halves_lines(halves: dict) -> list[str]:
  lines = ["| point | model | lower half's share, useful | upper half's share, useful | lower "
           "half's share, held-out | upper half's share, held-out |", "|---|---|---|---|---|---|"]
  for arm, models in halves.items():
    for k in ("prior", "final"):
      h = models[k]
      lines.append(f"| {arm} | {k} | {cell(h['lower']['share/useful'])} | "
                   f"{cell(h['upper']['share/useful'])} | {cell(h['lower']['share/heldout'])} | "
                   f"{cell(h['upper']['share/heldout'])} |")
  return lines


def graft_lines(g: dict) -> list[str]:
  measures = list(next(iter(g["values"].values())))
  lines = ["| model (lower half, upper half) | " + " | ".join(measures) + " |",
           "|---" * (len(measures) + 1) + "|"]
  for name, vals in g["values"].items():
    lines.append(f"| {name} | " + " | ".join(
        cell(vals[m]) + (f", {above(vals[m])} > 0" if m == HC else "") for m in measures) + " |")
  lines += ["", "| contrast (held-out − control, reverse; paired over seeds) | mean ± sd (t, p) "
            "| k/n > 0 |", "|---|---|---|"]
  for name, d in g["contrasts"].items():
    lines.append(f"| {name} | {cell(d)} | {above(d)} |")
  lines += ["", "Per seed, held-out − control under \"reverse\" (nats/token):", "",
            "| seed | " + " | ".join(g["values"]) + " |", "|---" * (len(g["values"]) + 1) + "|"]
  for i, seed in enumerate(g["seeds"]):
    lines.append(f"| {seed} | " + " | ".join(f"{v[HC][i]:+.3f}" for v in g["values"].values())
                 + " |")
  return lines


def prior_lines(prior: dict) -> list[str]:
  measures = list(next(iter(prior.values())))
  lines = ["| prior-episode model | " + " | ".join(measures) + " |",
           "|---" * (len(measures) + 1) + "|"]
  for arm, vals in prior.items():
    lines.append(f"| {arm} | " + " | ".join(
        cell(vals[m]) + (f", {above(vals[m])} > 0" if m == HC else "") for m in measures) + " |")
  return lines


def report(command: str, runs: dict, dirs: dict, law: dict, grafts: dict, chk: dict,
           prior: dict) -> str:
  cfg = runs["acquired"]["final"].cfg
  lines = [
      "# Does the measured episode reuse the prior episode's inversion?", "",
      f"Written by `{command}`. Points of experiments/acquired.py (preset `{cfg.preset}`, seeds "
      f"{cfg.seeds[0]}–{cfg.seeds[-1]}): acquired = one prior episode whose phase 3 froze the "
      "embedding and the lower half; sham = one prior episode under PROTOCOL's phase 3. "
      "Values are mean ± sd over seeds with a t-test against 0, or paired against the value "
      "named (toy.stats.paired_test). Quantities: toy/inspect.py's docstring.", "",
      "| point | final model | prior-episode model |", "|---|---|---|",
      *[f"| {arm} | `{d['final']}` | `{d['prior']}` |" for arm, d in dirs.items()], "",
      "Checks (max over seeds of |this script − the run's own record| of held-out − control "
      "under \"reverse\"): " + "; ".join(f"{k}: {v:.1e}" for k, v in chk.items()) + ".", "",
      "## 1. The law component by component: final model vs its prior-episode model", "",
      "Final model on the measured episode's data; prior model (end of the prior episode) on "
      "the prior episode's data. Own slope: the component's \"reverse\" contribution to the "
      "centred target logit regressed through the origin on its \"regular\" one; share: on "
      "the whole model's \"regular\" one (shares add up to the row `total`, the law slope). "
      "n/a: a component with no \"regular\" contribution, or no spread over seeds.", "",
      *law_lines(law["law"]),
      "### Do the same components carry the law?", "",
      "Per seed, Pearson's r over the blocks' components (attention and MLP of each block) of "
      "the final model's value against the prior model's; mean ± sd of r over seeds.", "",
      *correlation_lines(law["correlation"]), "",
      "### Which half carries it", "",
      "The components' shares of the law slope summed per half (lower: embed + blocks below "
      f"{cfg.n_layers // 2}; upper: the other blocks + the final LayerNorm's bias).", "",
      *halves_lines(law["halves"]), "",
      "## 2. Grafting: does the uplift move with the upper half?", "",
      "Upper half: blocks " + ", ".join(str(i) for i in range(cfg.n_layers // 2, cfg.n_layers))
      + ", the final LayerNorm and the unembedding (what PROTOCOL's phase 2 freezes). Every "
      "model is evaluated on the measured episode's data (the same for both points); nats/"
      "token, mean per-token log-likelihood differences (toy.phases.evaluate). \"acquired-prior "
      "upper\": the acquired point's upper half at the end of its prior episode.", "",
      *graft_lines(grafts), "",
      "For reference, the prior-episode models at the end of their prior episode, on the prior "
      "episode's data:", "", *prior_lines(prior),
  ]
  return "\n".join(lines)


# ----------------------------------------------------------------------------- figure

def plot(law: dict, grafts: dict, path: str):
  fig, axes = plt.subplots(1, 3, figsize=(19, 5.8), gridspec_kw={"width_ratios": [1, 1, 1.4]})
  for ax, s, label in zip(axes[:2], ("useful", "heldout"), ("useful", "held-out")):
    key, pts = f"slope/{s}", []
    for arm in ARMS:
      fin, pri = law["law"][arm]["final"], law["law"][arm]["prior"]
      for c in block_components(fin):
        x, y = np.asarray(pri[c][key], float), np.asarray(fin[c][key], float)
        ok = np.isfinite(x) & np.isfinite(y)
        if not ok.any():
          continue
        ax.scatter(x[ok], y[ok], s=7, color=COLORS[arm], alpha=0.25, lw=0)
        mx, my = x[ok].mean(), y[ok].mean()
        ax.scatter([mx], [my], s=36, color=COLORS[arm], edgecolor="k", lw=0.5, zorder=3)
        ax.annotate(c.replace("blocks.", "b"), (mx, my), fontsize=7, color=COLORS[arm],
                    xytext=(3, 3), textcoords="offset points")
        pts += list(x[ok]) + list(y[ok])
      r = law["correlation"][arm][key]
      ax.scatter([], [], color=COLORS[arm],
                 label=f"{arm}: r over components {np.nanmean(r):+.2f} (mean over seeds)")
    if pts:  # a few extreme own slopes (tiny "regular" contributions) would hide the rest
      lo, hi = np.percentile(pts, [2, 98])
      pad = 0.1 * (hi - lo) + 1e-3
      lo, hi = min(lo, -0.1) - pad, max(hi, 0.1) + pad
      ax.set(xlim=(lo, hi), ylim=(lo, hi))
      ax.plot([lo, hi], [lo, hi], color="0.5", ls="--", lw=0.7)
    ax.axhline(0, color="k", lw=0.5)
    ax.axvline(0, color="k", lw=0.5)
    ax.set(xlabel="prior-episode model (prior episode's data)",
           ylabel="final model (measured episode's data)",
           title=f"own law slope per component, {label} negatives\n(dots: seeds; large: mean; "
                 "axes clipped to the 2–98% range)")
    ax.legend(fontsize=7, loc="lower right")
  ax = axes[2]
  names = list(grafts["values"])
  xs = np.arange(len(names)) + np.array([0.6 if i >= 4 else 0 for i in range(len(names))])
  colors = ["tab:red", "tab:blue", "tab:orange", "tab:purple", "salmon", "lightsteelblue"]
  for x, name, color in zip(xs, names, colors):
    v = grafts["values"][name][HC]
    ax.bar(x, v.mean(), width=0.7, color=color, alpha=0.8,
           yerr=v.std(ddof=1) if v.size > 1 else None, capsize=3)
    ax.scatter(np.full(v.size, x) + np.linspace(-0.18, 0.18, v.size), v, s=10, color="k",
               zorder=3)
  ax.axhline(0, color="k", lw=0.6)
  ax.set_xticks(xs, [n.replace(" + ", " +\n") for n in names], fontsize=7, rotation=15)
  ax.set(ylabel="held-out − control under 'reverse' (nats/token)",
         title="grafted models (lower half + upper half), measured episode's data\n"
               "mean ± sd over seeds, dots: seeds; right pair: a final lower half\n"
               "under its own prior-episode upper half")
  ax.title.set_fontsize(9)
  fig.suptitle("Does the measured episode reuse the prior episode's inversion?")
  save_figure(fig, path, dpi=110)


# ----------------------------------------------------------------------------- main

def _jsonable(obj):
  if isinstance(obj, dict):
    return {str(k): _jsonable(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_jsonable(v) for v in obj]
  if isinstance(obj, (np.ndarray, np.generic)):
    a = np.asarray(obj, float)
    return np.where(np.isfinite(a), a, None).tolist()
  return obj


def main(argv=None):
  parser = script_parser(__doc__)
  parser.add_argument("--preset", default="cpu", help="cpu; tiny for a smoke run only")
  parser.add_argument("--seed", type=int, default=0, help="the points' first seed (0: main, "
                      "8: confirm)")
  parser.add_argument("--runs", default=os.path.join("runs", "acquired"))
  parser.add_argument("--out-md", default=os.path.join("results", "inspect_acquired.md"))
  parser.add_argument("--out-json", default=None, help="default: --out-md with .json")
  parser.add_argument("--figure", default=os.path.join("figures", "inspect_acquired.png"))
  args = parser.parse_args(argv)
  toy.enable_compilation_cache()
  cfgs = arm_configs(args.preset, args.seed)
  runs = load(args.runs, cfgs, args.preset, args.seed)
  law = analyse_law(runs)
  grafts = analyse_grafts(runs)
  grafts["seeds"] = cfgs["acquired"].seeds
  prior = prior_values(runs)
  chk = checks(runs, grafts, prior)
  command = producing_command("experiments/inspect_acquired.py", argv)
  dirs = run_dirs(args.runs, cfgs)
  text = report(command, runs, dirs, law, grafts, chk, prior)
  for path in (args.out_md, args.figure):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(args.out_md, "w") as f:
    f.write(text + "\n")
  write_json_atomic(args.out_json or os.path.splitext(args.out_md)[0] + ".json", _jsonable({
      "command": command, "run_dirs": dirs, "point_ids": {a: point_id(c) for a, c in cfgs.items()},
      "seeds": grafts["seeds"], "checks": chk, "law": law["law"], "prior_models": prior,
      "correlation": law["correlation"], "halves": law["halves"],
      "grafts": {"values": grafts["values"], "contrasts": grafts["contrasts"]},
      "tests": {"correlation": {arm: {k: paired_test(v, 0.0) for k, v in c.items()}
                                for arm, c in law["correlation"].items()},
                "contrasts": {k: paired_test(v, 0.0) for k, v in grafts["contrasts"].items()}}}))
  plot(law, grafts, args.figure)
  print(text)
  return law, grafts, chk


if __name__ == "__main__":
  main()
