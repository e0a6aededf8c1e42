"""Where a times node comes from: prior episodes, then PROTOCOL's own phase 3.

  python experiments/acquired.py                   # every stage, resumable
  python experiments/acquired.py --stage main      # one stage (repeatable flag)
  python experiments/acquired.py --plot-only       # table and figure from stored points

Every learned point's measured episode runs PROTOCOL's phases on the seed's own data (phase 3
trains everything). The points differ only in what the network went through before: prior
episodes (the three phases on other data, toy.data.episode_root), whose phase 3 ran at
``prior_mix_lower_lr_scale``. At 0 a prior phase 3 cannot rewrite the stored negatives and has
to learn to invert them downstream (README, "Partial generalization"); at 1 it is PROTOCOL's.
Stages (cpu preset, 8 seeds each):
  main      seeds 0-7: scratch (no prior episode), sham (1 at scale 1), acquired (1 at scale 0)
  confirm   the same three on seeds 8-15, an independent confirmation
  dial      2 and 4 prior episodes at scale 0 and at scale 1; 1 prior episode at scale 0.3
  lever     no prior episode, phase 3 at scale 0 (the partial lever; flip distributions)
  toy       the toy from scratch and with 1 prior episode
Each point is one JSON in results/acquired/ (hash of its config) with per-seed law slopes,
per-password flip measures and the history of every episode. Writes results/acquired.md and
figures/acquired.png; the cost of each stage is printed before it runs.
"""
from __future__ import annotations

import dataclasses
import os
import time

import jax

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import toy
from toy.config import producing_command, script_parser
from toy.measure import HC_FINAL, HP_FINAL, PC_FINAL, SHARED_NOTE, flip_record, \
    last_prior_mix_rows, law_record, record_cell, record_values, seed_range
from toy.plots import save_figure
from toy.stats import STUDY_UPLIFT, paired_row
from toy.engine import train_many
from toy.io import save_run
from toy.points import ACQUIRED_OUT, acquired_folder, acquired_stages
from toy.sweep import is_stored, load_point, point_id, run_sweep

OUT = ACQUIRED_OUT
MD = os.path.join("results", "acquired.md")
# The stages' configs are toy.points.acquired_stages, where experiments/holm.py finds them too.
STAGE_NAMES = ("main", "confirm", "dial", "lever", "toy")
# Written before the runs (README, "Where a times node comes from", compares them).
PREDICTIONS = [
    "acquired − sham (held-out − control, paired per seed) > 0 on seeds 0-7 and again on "
    "8-15, about +0.2 nats/token; sham ≈ scratch (≤ 0): an extra PROTOCOL episode alone does "
    "not give the inversion, because its phase 3 can rewrite the lower half.",
    "acquired: G small but > 0 (about 0.05-0.1): the useful negatives also get a large direct "
    "offset under PROTOCOL's phase 3; the held-out within-set slope < 0 (per-password "
    "inversion), sham's ≈ 0.",
    "more prior episodes at scale 0 (2, 4): at least as much uplift as 1, saturating; at "
    "scale 1 (2, 4): no acquisition (held-out − control ≤ 0), however many.",
    "prior scale 0.3: between sham and acquired (the partial dial still inverts at 0.3).",
    "toy with 1 prior episode: its times node stays flipped (c > a), so G = 1 and held-out − "
    "control > 0 from the first phase-3 evaluation of the measured episode; from scratch the "
    "first evaluation still has the regular sign (law slope > 0).",
]
# An 8-row cpu episode on the 2 cores, from this script's own 8-row points (docs/acquired.md):
# acquired x2 (3 episodes) 16 min, prior scale 0.3 (2) 11 min; acquired x4 and sham x4 (5
# each) 68 min each when run side by side.
SECONDS_PER_EPISODE = 330


def cost_s(cfg) -> float:
  per = 20 if cfg.model == "toy" else SECONDS_PER_EPISODE
  return per * (cfg.prior_episodes + 1)


RUNS = os.path.join("runs", "acquired")  # trained models, for inspect_acquired.py (not committed)


def train_and_keep(group, progress=True, save=False):
  """``train_many`` that also writes each learned point's final model, and the model at the
  end of its last prior episode, as run folders under RUNS (``toy.inspect.load_run``)."""
  del save
  prior_params = []
  results = train_many(group, progress=progress, save=False, on_phase_end=lambda phase, params:
                       prior_params.append(params) if phase == "mix" else None)
  start = 0
  for cfg, result in zip(group, results):
    rows = slice(start, start + cfg.n_seeds)
    start += cfg.n_seeds
    if cfg.model != "transformer":
      continue
    name = point_id(cfg)
    save_run(dataclasses.replace(result, cfg=cfg.replace(out_dir=RUNS, run_name=name)))
    if cfg.prior_episodes:
      last_prior = jax.tree.map(lambda x: x[rows], prior_params[cfg.prior_episodes - 1])
      save_run(dataclasses.replace(result, cfg=cfg.replace(out_dir=RUNS, run_name=f"{name}_prior"),
                                   params=last_prior, history=[], summary=[]))
  return results


def record_extras(cfg, result) -> dict:
  """What a point's JSON holds beside its summary: law slopes, per-password flips and, for
  the toy, whether its times node ended flipped (c > a) in each seed."""
  out = {**law_record(result), **flip_record(result)}
  if cfg.model == "toy":
    a, c = np.asarray(result.params["times"]["a"]), np.asarray(result.params["times"]["c"])
    out["times_flipped"] = (c > a).tolist()
  return out


def measured(history: list[dict], cfg: dict) -> list[dict]:
  n = cfg.get("prior_episodes", 0)
  return [h for h in history if h.get("episode", n) == n]


def prior_law(record: dict) -> np.ndarray:
  """Per seed, the last prior episode's final law slopes (useful, held-out): did it invert?"""
  return np.asarray([[h["eval/law/useful"], h["eval/law/heldout"]] if h else [np.nan, np.nan]
                     for h in last_prior_mix_rows(record)])


def first_mix(record: dict, key) -> np.ndarray:
  """Per seed, ``key(row)`` at the first phase-3 evaluation of the measured episode."""
  rows = [h for h in measured(record["history"], record["config"]) if h["phase"] == "mix"]
  first = min(h["step"] for h in rows)
  return np.array([key(h) for h in rows if h["step"] == first])


COLUMNS = [("held−control final", HC_FINAL),
           ("held−control max", "reverse/heldout_minus_control/max"),
           ("placebo−control final", PC_FINAL),
           ("G", "G"), ("G: ratio of mean slopes [95% CI]", "G:ratio"),
           ("within-set slope useful", "law:within/useful"),
           ("within-set slope held-out", "law:within/heldout"),
           ("useful−chance", "reverse/useful/final"), ("held−chance", "reverse/heldout/final"),
           ("control−chance", "reverse/control/final"),
           (f"held−chance max (study: {STUDY_UPLIFT:+.3f})", "reverse/heldout/max"),
           ("placebo−chance max", "reverse/placebo/max")]
FLIP_COLUMNS = [("held-out promoted (b < 0)", "flip:promoted/heldout"),
                ("useful promoted", "flip:promoted/useful"),
                ("sd of b, held-out", "flip:spread/heldout"),
                ("sd of b, useful", "flip:spread/useful"),
                ("control law slope", "flip:slope/control")]


def table(labelled, columns) -> str:
  head = ["point", "seeds", "prior episodes (scale)"] + [h for h, _ in columns]
  lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
  for label, r in labelled:
    c = r["config"]
    prior = (f"{c['prior_episodes']} ({c['prior_mix_lower_lr_scale']:g})"
             if c.get("prior_episodes") else "0")  # points stored before the field: 0
    cells = [label, seed_range(c), prior]
    cells += [record_cell(r, key, count_above=key.endswith("minus_control/final"))
              for _, key in columns]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def paired_lines(records: dict) -> list[str]:
  """Paired per-seed differences of held-out − control between arms, per seed block and
  pooled over blocks where both exist."""
  key = HC_FINAL
  lines = ["| comparison | seeds | difference, mean ± sd (t, p) | k/n > 0 |", "|---|---|---|---|"]
  blocks = {"0–7": "main", "8–15": "confirm"}
  for a, b in (("acquired", "sham"), ("acquired", "scratch"), ("sham", "scratch")):
    pooled = []
    for seeds, stage in blocks.items():
      got = dict(records.get(stage, []))
      if a in got and b in got:
        d = record_values(got[a], key) - record_values(got[b], key)
        pooled.append(d)
        lines.append(paired_row(f"{a} − {b}", seeds, d))
    if len(pooled) == 2:
      lines.append(paired_row(f"{a} − {b}", "0–15 pooled", np.concatenate(pooled)))
  for seeds, stage in blocks.items():
    got = dict(records.get(stage, []))
    if "acquired" in got:
      lines.append(paired_row("acquired: held-out − control against 0", seeds,
                               record_values(got["acquired"], key)))
  for seeds, stage in blocks.items():
    got = dict(records.get(stage, []))
    if "acquired" in got and record_values(got["acquired"], HP_FINAL) is not None:
      lines.append(paired_row("acquired: held-out − placebo", seeds,
                               record_values(got["acquired"], HP_FINAL)))
  # The dial against the one-prior-episode arms of the same seeds (0-7), and its placebo.
  main = dict(records.get("main", []))
  for label, r in records.get("dial", []):
    base = "acquired" if r["config"]["prior_mix_lower_lr_scale"] == 0 else "sham"
    if base in main and r["config"]["seed"] == main[base]["config"]["seed"]:
      lines.append(paired_row(f"{label} − {base}", "0–7", record_values(r, key)
                               - record_values(main[base], key)))
    if record_values(r, HP_FINAL) is not None:
      lines.append(paired_row(f"{label}: held-out − placebo", "0–7", record_values(r, HP_FINAL)))
  both = [dict(records.get(s, [])).get("acquired") for s in blocks.values()]
  if all(both):
    lines.append(paired_row("acquired: held-out − control against 0", "0–15 pooled",
                             np.concatenate([record_values(r, key) for r in both])))
  return lines


def per_seed_lines(records: dict) -> list[str]:
  """Per seed of every prior-episode point: held-out − control and the last prior episode's
  final law slopes (an episode that did not invert has a useful slope ≥ 0)."""
  lines = ["| point | seed | held−control final | prior episode's law slope useful / "
           "held-out |", "|---|---|---|---|"]
  for stage in ("main", "confirm", "dial"):
    for label, r in records.get(stage, []):
      if not r["config"].get("prior_episodes"):
        continue
      hc = record_values(r, HC_FINAL)
      for seed, v, (u, h) in zip([s["seed"] for s in r["summary"]], hc, prior_law(r)):
        lines.append(f"| {label} | {seed} | {v:+.3f} | {u:+.2f} / {h:+.2f} |")
  return lines


def toy_lines(records: dict) -> list[str]:
  lines = ["| toy point | law slope useful / held-out at the first phase-3 evaluation | "
           "held-out − control there | c > a at the end |", "|---|---|---|---|"]
  for label, r in records.get("toy", []):
    u = first_mix(r, lambda h: h["eval/law/useful"])
    h = first_mix(r, lambda h: h["eval/law/heldout"])
    d = first_mix(r, lambda h: h["eval/reverse/heldout"] - h["eval/reverse/control"])
    flipped = r.get("times_flipped", [])
    lines.append(f"| {label} | {u.mean():+.3f} ± {u.std(ddof=1):.3f} / {h.mean():+.3f} ± "
                 f"{h.std(ddof=1):.3f} (G = {np.mean(h / u):.3f}) | {d.mean():+.3f} ± "
                 f"{d.std(ddof=1):.3f}, {int((d > 0).sum())}/{d.size} > 0 | "
                 f"{sum(flipped)}/{len(flipped)} |")
  return lines


def plot(records: dict, path: str):
  fig, axes = plt.subplots(1, 3, figsize=(17, 4.6))
  colors = {"scratch": "0.4", "sham": "tab:blue", "acquired": "tab:red"}
  ax = axes[0]
  for label, r in records.get("main", []):
    rows = [h for h in measured(r["history"], r["config"]) if h["phase"] == "mix"]
    seeds = sorted({h["seed"] for h in rows})
    steps = sorted({h["step"] for h in rows})
    y = np.array([[h["eval/reverse/heldout"] - h["eval/reverse/control"] for h in rows
                   if h["seed"] == s] for s in seeds])
    ax.plot(steps, y.mean(0), color=colors[label], label=f"{label} (mean over seeds 0–7)")
    ax.fill_between(steps, y.mean(0) - y.std(0, ddof=1), y.mean(0) + y.std(0, ddof=1),
                    color=colors[label], alpha=0.15)
  ax.axhline(0, color="k", ls=":")
  ax.set(xlabel="measured episode, phase-3 step (PROTOCOL's phase 3)",
         title="held-out − control under 'reverse' (± sd)")
  ax.legend(fontsize=8)
  ax = axes[1]
  key = HC_FINAL
  for x0, stage in ((0, "main"), (4, "confirm")):
    got = dict(records.get(stage, []))
    names = [n for n in ("scratch", "sham", "acquired") if n in got]
    vals = np.stack([record_values(got[n], key) for n in names]) if names else np.zeros((0, 0))
    xs = x0 + np.arange(len(names))
    for j in range(vals.shape[1] if vals.size else 0):
      ax.plot(xs, vals[:, j], color="0.8", lw=0.8, zorder=1)
    for x, n, v in zip(xs, names, vals):
      ax.scatter(np.full(v.size, x), v, color=colors[n], s=14, zorder=2)
      ax.errorbar(x + 0.2, v.mean(), v.std(ddof=1), color=colors[n], marker="o", capsize=3)
  ax.set_xticks([0, 1, 2, 4, 5, 6],
                ["scratch", "sham", "acquired", "scratch", "sham", "acquired"], fontsize=8)
  ax.axhline(0, color="k", ls=":")
  ax.set_title("end of phase 3, per seed (lines pair seeds)\nseeds 0–7 (chosen) | 8–15 (confirm)")
  ax = axes[2]
  dial = {**dict(records.get("main", [])), **dict(records.get("dial", []))}
  for scale, names, color in ((0.0, ["scratch", "acquired", "acquired x2", "acquired x4"],
                               "tab:red"),
                              (1.0, ["scratch", "sham", "sham x2", "sham x4"], "tab:blue")):
    pts = [(dial[n]["config"]["prior_episodes"], record_values(dial[n], key)) for n in names
           if n in dial]
    if pts:
      xs = [p for p, _ in pts]
      ax.errorbar(xs, [v.mean() for _, v in pts], [v.std(ddof=1) for _, v in pts],
                  color=color, marker="o", capsize=3,
                  label=f"prior phase 3 at scale {scale:g}")
  if "prior scale 0.3" in dial:
    v = record_values(dial["prior scale 0.3"], key)
    ax.errorbar([1.1], [v.mean()], [v.std(ddof=1)], color="tab:purple", marker="s", capsize=3,
                label="prior phase 3 at scale 0.3")
  ax.axhline(0, color="k", ls=":")
  ax.set(xlabel="prior episodes", title="held-out − control, end of phase 3 (seeds 0–7)")
  ax.legend(fontsize=8)
  fig.suptitle("an acquired times node: the measured episode always runs PROTOCOL's phase 3")
  save_figure(fig, path)


def main(argv=None):
  parser = script_parser(__doc__)
  parser.add_argument("--stage", choices=STAGE_NAMES, action="append")
  parser.add_argument("--preset", default="cpu", help="cpu; tiny for a smoke run only")
  parser.add_argument("--point", action="append",
                      help="train only the points with this label (repeatable), e.g. acquired")
  parser.add_argument("--plot-only", action="store_true")
  parser.add_argument("--out", default=OUT)
  parser.add_argument("--md", default=MD)
  parser.add_argument("--figures", default="figures")
  args = parser.parse_args(argv)
  toy.enable_compilation_cache()
  all_stages = acquired_stages(args.preset)
  names = args.stage or list(STAGE_NAMES)
  for name in names if not args.plot_only else []:
    chosen = [c for label, c in all_stages[name] if not args.point or label in args.point]
    chosen = [c for c in chosen if acquired_folder(c, args.out) in (None, args.out)]
    todo = [c for c in chosen if not is_stored(args.out, c)]
    print(f"stage {name}: {len(todo)} of {len(all_stages[name])} points to train, about "
          f"{sum(cost_s(c) for c in todo) / 60:.0f} min on 2 cores", flush=True)
    t0 = time.perf_counter()
    run_sweep(chosen, args.out, on_result=record_extras, train_fn=train_and_keep)
    print(f"stage {name}: {time.perf_counter() - t0:.0f} s", flush=True)
  records = {name: [(label, load_point(acquired_folder(c, args.out), c)) for label, c in pts
                    if acquired_folder(c, args.out)] for name, pts in all_stages.items()}
  write(records, producing_command("experiments/acquired.py", argv), args.md)
  os.makedirs(args.figures, exist_ok=True)
  plot(records, os.path.join(args.figures, "acquired.png"))
  return records


def write(records: dict, command: str, path: str):
  learned = [lr for s in ("main", "confirm", "dial", "lever") for lr in records.get(s, [])]
  parts = [
      f"# Where a times node comes from\n\nWritten by `{command}`. The measured episode: the "
      "seed's own data, PROTOCOL's three phases (the lever row excepted); nats/token under "
      "'reverse' at the end of its phase 3, relative to chance or to the control; mean ± sd "
      f"over seeds, t-test against 0. {SHARED_NOTE}",
      "## Predictions, written before the runs\n\n" + "\n".join(f"- {p}" for p in PREDICTIONS),
      "## Points\n\n" + table(learned, COLUMNS),
      "## Paired comparisons (held-out − control, end of phase 3)\n\n"
      + "\n".join(paired_lines(records)),
      "## How the flip is spread over passwords\n\nb: a password's own law slope (its letters' "
      "'reverse' centred target logits on their 'regular' ones, through the origin).\n\n"
      + table(learned, FLIP_COLUMNS),
      "## Did each prior episode invert?\n\n" + "\n".join(per_seed_lines(records)),
      "## The toy\n\n" + "\n".join(toy_lines(records)) + "\n\n"
      + table(records.get("toy", []), COLUMNS),
  ]
  with open(path, "w") as f:
    f.write("\n\n".join(parts) + "\n")
  print("\n\n".join(parts[2:4]))


if __name__ == "__main__":
  main()
