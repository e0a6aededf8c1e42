"""The ladder of models: from the idealized toy to the plain transformer, one G per rung.

  python experiments/ladder.py                  # every rung, resumable (stored points skipped)
  python experiments/ladder.py --rung unshared  # one rung (repeatable flag)
  python experiments/ladder.py --plot-only      # table and figure from stored points

Each rung removes one idealization of the toy and is measured the same way: G (held-out law
slope / useful law slope), held-out − control and held-out − chance at the end of phase 3
(and their max over phase 3), all under "reverse", seeds 0-7, the cpu preset's data (the
same negatives for every rung: data depend only on the seed). The rungs:
  toy               exact-context memory, one shared times node (G = 1 by construction)
  leak-g            toy + an additive path g * memory that the sign does not reach
  unshared          toy with one times node per memory row instead of one for all
  times-node        transformer whose stream entering the upper half is multiplied by
                    a + c * d(prefix), trained in phase 3 like the toy's (PROTOCOL phase 3;
                    -scale0: embedding and lower half frozen in phase 3)
  swiglu, bilinear  transformer with a gated (multiplicative) MLP, PROTOCOL phase 3
  *-scale0          each MLP kind with phase 3 unable to rewrite the embedding and lower half
  gelu              the plain transformer under PROTOCOL
Their configs are toy.points.RUNGS. Points are JSON files named by a hash of their config. The
plain-GELU points are the same configs as experiments/partial.py's dial points 0 and 1 and are
read from results/partial/ when stored there. results/ladder.md also lists the leakage rungs
(the toy's times node as m gates, experiments/leakage.py), read from results/leakage/ and never
trained here. Writes results/ladder/*.json, results/ladder.md and figures/ladder.png.
"""
from __future__ import annotations

import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import toy
from toy.config import Config, producing_command, script_parser
from toy.mechanism import law_ratio
from toy.measure import G_COLUMNS, PLACEBO_COLUMNS, SHARED_NOTE, STUDY_COLUMNS, law_record, \
    record_cell, record_g, seed_range, seed_values
from toy.plots import save_figure
from toy.points import LADDER_OUT, RUNG_BY_NAME, RUNGS, SEEDS, ladder_toy, rung_folder
from toy.stats import fmt, paired_test
from toy.sweep import load_point, run_sweep

COLUMNS = [  # (header, summary key, "law:" key or toy.measure.record_cell's G keys)
    *G_COLUMNS,
    ("held−control final", "reverse/heldout_minus_control/final"),
    ("held−control max", "reverse/heldout_minus_control/max"),
    *PLACEBO_COLUMNS,
    ("held−chance final", "reverse/heldout/final"),
    *STUDY_COLUMNS,
    ("useful−chance final", "reverse/useful/final"),
    ("slope useful", "law:slope/useful"), ("slope held-out", "law:slope/heldout")]
VS_TOY = [("ΔG vs toy", "law:G"),
          ("Δ(held−control) vs toy", "reverse/heldout_minus_control/final")]


def with_scalars(cfg, result) -> dict:
  """The per-seed law values, and the times node's trained a and c where it has scalars."""
  record = law_record(result)
  if cfg.model == "toy" and cfg.toy_sign == "shared" or cfg.times_node:
    models = [result.model(i) for i in range(cfg.n_seeds)]
    if models[0].times.a[...].ndim == 0:  # a gated toy (toy_gates) has one a, c per gate
      record["times"] = {k: [float(getattr(m.times, k)[...]) for m in models] for k in "ac"}
  return record


LEAKAGE = os.path.join("results", "leakage")  # experiments/leakage.py's grid, read only


def leakage_rungs(folder: str = LEAKAGE) -> tuple[list, dict, dict]:
  """The leakage rungs (experiments/leakage.py's grid: the toy's times node as m gates, each
  row a mix of k), read from ``folder``'s stored points, never trained here: (rungs as
  RUNGS' tuples, records, sources), ordered by m (one per row last), then k. Only points
  with the ladder's seeds and PROTOCOL's phase 3, like the toy rungs."""
  import glob
  import json
  found = []
  for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
    with open(path) as f:
      record = json.load(f)
    c = record["config"]
    m, k = c.get("toy_gates", 1), c.get("toy_gate_mix", 1)
    if (c["model"] != "toy" or (m, k) == (1, 1) or c.get("mix_lower_lr_scale", 1.0) != 1.0
        or c["seed"] != SEEDS["seed"] or c["n_seeds"] != SEEDS["n_seeds"]
        or c.get("preset") != "cpu" or _ladder_toy_departs(c)):
      continue
    found.append(((m == 0, m, k), m, k, record))
  rungs, records, sources = [], {}, {}
  for _, m, k, record in sorted(found, key=lambda x: x[0]):
    name = f"gates-{m or 'row'}-k{k}"
    what = (f"times node as {m} gates, each row a mix of {k}" if m else
            "times node as one gate per memory row (= unshared)")
    rungs.append((name, "toy", what, None))
    records[name], sources[name] = record, folder
  return rungs, records, sources


def _ladder_toy_departs(c: dict) -> bool:
  """Whether a stored toy config differs from the ladder's toy in anything but its gates."""
  want = json.loads(ladder_toy().to_json())
  skip = ("toy_gates", "toy_gate_mix", "out_dir", "run_name", "eval_prefixes")
  defaults = json.loads(Config().to_json())
  return any(c.get(f, defaults.get(f)) != v for f, v in want.items() if f not in skip)


def table(records: dict[str, dict], sources: dict[str, str], rungs: list = RUNGS,
          toy_record: dict | None = None) -> str:
  head = ["rung", "what it is", "seeds", *[h for h, _ in COLUMNS], *[h for h, _ in VS_TOY],
          "stored in"]
  lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
  toy_record = toy_record or records.get("toy")
  for name, _, what, _ in rungs:
    if name not in records:
      continue
    r, c = records[name], records[name]["config"]
    cells = [f"`{name}`", what, seed_range(c)]
    for _, key in COLUMNS:
      cells.append(record_cell(r, key, count_above=key.endswith("control/final")))
    for _, key in VS_TOY:
      same_seeds = toy_record is not None and toy_record["config"]["seed"] == c["seed"]
      if not same_seeds or name == "toy":
        cells.append("")
      elif key == "law:G" and not record_g(r)["defined"]:
        cells.append("n/a")  # the rung's G is n/a: no difference to test
      else:
        cells.append(fmt(paired_test(seed_values(r, key), seed_values(toy_record, key))))
    cells.append(f"`{sources[name]}`")
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def plot(records: dict[str, dict], path: str):
  """G and held-out − control per rung (seeds as dots, mean ± sd), and the leak rungs' law
  slope against the one the trained scalars predict."""
  names = [n for n, *_ in RUNGS if n in records]
  family = {n: f for n, f, *_ in RUNGS}
  fig, axes = plt.subplots(1, 3, figsize=(18, 5.2), gridspec_kw=dict(width_ratios=[2, 2, 1.2]))
  x = np.arange(len(names))
  for ax, (key, title) in zip(axes[:2], [
      ("law:G", "generalization ratio G = held-out law slope / useful law slope"),
      ("reverse/heldout_minus_control/final",
       "held-out − control, end of phase 3 (nats/token)")]):
    for i, n in enumerate(names):
      v = seed_values(records[n], key)
      color = "tab:green" if family[n] == "toy" else "tab:red"
      ax.scatter(np.full(v.size, i) + np.linspace(-0.15, 0.15, v.size), v, s=9, color="0.6",
                 zorder=2)
      ax.errorbar(i, v.mean(), v.std(ddof=1), color=color, marker="o", capsize=4, zorder=3)
    if key == "law:G":
      ax.axhline(1, color="tab:green", ls="--", lw=1, label="G = 1 (perfect)")
      ax.axhline(0, color="k", ls=":", lw=1, label="G = 0 (stored suppression erased)")
      ax.set_ylim(-1.5, 1.6)  # a seed outside is clipped; results/ladder.md has every value
    else:
      ax.axhline(0, color="k", ls=":", lw=1, label="held-out = control")
      ax.set_yscale("symlog", linthresh=0.1)
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
  ax = axes[2]
  for n in names:
    if not (n == "toy" or n.startswith("leak")) or "times" not in records[n]:
      continue
    g = records[n]["config"]["toy_gain_add"]
    a, c = (np.asarray(records[n]["times"][k]) for k in "ac")
    predicted = np.array([law_ratio(ai, ci, g) for ai, ci in zip(a, c)])
    ax.scatter(predicted, seed_values(records[n], "law:slope/useful"), marker="o", s=16,
               label=f"g = {g:g}, useful")
    ax.scatter(predicted, seed_values(records[n], "law:slope/heldout"), marker="x", s=22,
               color="k", lw=0.8)
  lim = ax.get_xlim()
  ax.plot(lim, lim, color="0.5", lw=0.8, ls="--", label="measured = predicted")
  ax.scatter([], [], marker="x", color="k", label="held-out (x)")
  ax.set_xlabel("predicted (a − c + g) / (a + c + g), trained a, c")
  ax.set_ylabel("measured law slope (reverse on regular)")
  ax.set_title("leak rungs: law slope, per seed", fontsize=10)
  ax.legend(fontsize=7)
  fig.suptitle("the ladder: green = toy rungs, red = transformer rungs; 'reverse' prefix, "
               "seeds as grey dots, mean ± sd")
  save_figure(fig, path)


def main(argv=None):
  parser = script_parser(__doc__)
  parser.add_argument("--rung", choices=list(RUNG_BY_NAME), action="append")
  parser.add_argument("--plot-only", action="store_true")
  parser.add_argument("--out", default=LADDER_OUT)
  parser.add_argument("--leakage", default=LEAKAGE,
                      help="where experiments/leakage.py stored its grid (read only)")
  parser.add_argument("--table", default=os.path.join("results", "ladder.md"))
  parser.add_argument("--figure", default=os.path.join("figures", "ladder.png"))
  args = parser.parse_args(argv)
  toy.enable_compilation_cache()
  chosen = args.rung or list(RUNG_BY_NAME)
  todo = [RUNG_BY_NAME[n] for n in chosen if rung_folder(RUNG_BY_NAME[n], args.out) is None]
  if todo and not args.plot_only:
    run_sweep(todo, args.out, on_result=with_scalars)
  sources = {n: rung_folder(cfg, args.out) for n, cfg in RUNG_BY_NAME.items()}
  records = {n: load_point(sources[n], cfg) for n, cfg in RUNG_BY_NAME.items() if sources[n]}
  command = producing_command("experiments/ladder.py", argv)
  head = (f"Written by `{command}`. End of phase 3 (\"max\": over phase 3), \"reverse\" "
          "prefix, nats/token relative to chance or to the control; law slopes of centred "
          "target logits (reverse on regular), G = held-out slope / useful slope; mean ± sd "
          "over seeds, t-test against 0; Δ vs toy: paired per seed (same seeds, same "
          f"negatives), n/a where the rung's G is. {SHARED_NOTE}\n\n")
  text = table(records, sources)
  leak_rungs, leak_records, leak_sources = leakage_rungs(args.leakage)
  if leak_rungs:
    text += (
        "\n\n## Leakage rungs (results/leakage)\n\nThe study author's \"leakage\" "
        "(PROTOCOL, \"The author's leakage, as gates\"): the toy with its times node as m "
        "gates, each memory row's sign a fixed mix of k of them chosen at random. Trained "
        "by `python experiments/leakage.py` and only read here; the same seeds and negatives "
        "as the `toy` rung, so Δ vs toy is paired per seed. Flip distributions and the law "
        "per position: results/leakage.md.\n\n"
        + table(leak_records, leak_sources, leak_rungs, records.get("toy")))
  os.makedirs(os.path.dirname(args.table) or ".", exist_ok=True)
  with open(args.table, "w") as f:
    f.write(head + text + "\n")
  print(text)
  if records:
    os.makedirs(os.path.dirname(args.figure) or ".", exist_ok=True)
    plot(records, args.figure)
  return records


if __name__ == "__main__":
  main()
