"""The study author's "leakage", as gates: G of the toy as its times node is split into m gates.

  python experiments/leakage.py                      # the whole grid, resumable
  python experiments/leakage.py --m 256 --k 1        # some points (repeatable flags)
  python experiments/leakage.py --plot-only          # table and figure from stored points

The toy keeps each context's exact memory row, but its times node is m gates and each row's
sign is a fixed mix of k of them chosen at random (``toy_gates``, ``toy_gate_mix``;
PROTOCOL, "The author's leakage, as gates"). m = 1 is the toy (G = 1); "one per row" gives
every row its own gate (``toy_gates=0``, the same as ``toy_sign=per_row``), so a flip learnt
on useful rows reaches no held-out row. Grid: m in {1, 16, 64, 256, 1024, 2048, 4096, 16384,
one per row} x k in {1, 4, 16} (k <= m; one per row only k = 1), the cpu preset's data,
seeds 0-7. Per point, under "reverse" at the end of phase 3 (mean ± sd over seeds):
  G                   held-out law slope / useful law slope (toy.measure)
  held−control, held−chance, useful−chance   nats/token
  within useful, within held-out             within-set slopes (with an intercept)
  promoted held-out   the fraction of held-out negatives whose mean per-token
                      log-likelihood under "reverse" is above chance (-log A)
  sd per-pw slope     the sd over held-out negatives of each one's own slope: its "reverse"
                      centred target logits regressed through the origin on its "regular"
                      ones, over its L tokens (one slope per password)
  law control         the law slope (through the origin, per-password means) of the control
Every point is one JSON in results/leakage/ (hash of its config). Writes results/leakage.md
and figures/leakage.png (G against m, one line per k).
"""
from __future__ import annotations

import functools
import os

import matplotlib

matplotlib.use("Agg")
import jax
import matplotlib.pyplot as plt
import numpy as np

import toy
from toy import data as D
from toy.config import make_config, producing_command, script_parser
from toy.losses import token_logps
from toy.measure import law_record
from toy.phases import centred_at, slope_through_origin
from toy.plots import save_figure
from toy.sweep import is_stored, load_point, run_sweep, seed_values

OUT = os.path.join("results", "leakage")
SEEDS = dict(seed=0, n_seeds=8)
GATES = (1, 16, 64, 256, 1024, 2048, 4096, 16384, 0)  # 0: one gate per memory row
MIXES = (1, 4, 16)
PER_ROW = "one per row"


def point(m: int, k: int):
  return make_config("cpu", model="toy", toy_gates=m, toy_gate_mix=k, **SEEDS)


GRID = [(m, k) for m in GATES for k in MIXES if k <= max(m, 1) and (m or k == 1)]
COLUMNS = [  # (header, summary key or "law:" key)
    ("G", "law:G"),
    ("held−control", "reverse/heldout_minus_control/final"),
    ("held−chance", "reverse/heldout/final"),
    ("useful−chance", "reverse/useful/final"),
    ("within useful", "law:within/useful"),
    ("within held-out", "law:within/heldout"),
    ("promoted held-out", "law:promoted/heldout"),
    ("sd per-pw slope held-out", "law:slope_sd/heldout"),
    ("law control", "law:slope/control")]


def m_label(m: int) -> str:
  return PER_ROW if m == 0 else str(m)


@functools.partial(jax.jit, static_argnames=("cfg", "apply"))
def _per_token(params, rest, data, *, cfg, apply):
  """Per seed, set and prefix: centred target logits (S x N x L), and the log-likelihood
  of each letter under "reverse" (S x N x L)."""
  def one_seed(params, rest, data):
    out = {}
    for s in ("useful", "heldout", "control"):
      for name, which in (("regular", D.REGULAR), ("reverse", D.REVERSE)):
        logits = apply(params, rest, D.model_inputs(cfg, data[s], which))
        out[f"{s}/{name}"] = centred_at(logits[..., :cfg.alphabet_size], data[s])
        if name == "reverse":
          out[f"{s}/logp"] = token_logps(logits, data[s], cfg.alphabet_size, cfg.normalize)
    return out
  return jax.vmap(one_seed)(params, rest, data)


def per_password(result) -> dict:
  """The per-seed values beyond ``law_record`` (module docstring): promoted fraction,
  sd of per-password slopes, and the control's law slope."""
  cfg = result.cfg
  sets = {s: result.data[s] for s in ("useful", "heldout", "control")}
  v = {k: np.asarray(x, np.float64) for k, x in
       _per_token(result.params, result.rest, sets, cfg=cfg, apply=result.apply).items()}
  out = {}
  for s in ("useful", "heldout"):
    out[f"promoted/{s}"] = (v[f"{s}/logp"].mean(-1) > cfg.chance).mean(-1)
    x, y = v[f"{s}/regular"], v[f"{s}/reverse"]  # S x N x L
    sxx = (x * x).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
      slopes = np.where(sxx > 0, (x * y).sum(-1) / sxx, np.nan)  # a password read nowhere: nan
    out[f"slope_sd/{s}"] = np.nanstd(slopes, axis=-1, ddof=1)
  out["slope/control"] = slope_through_origin(v["control/regular"].mean(-1),
                                              v["control/reverse"].mean(-1))
  return out


def measure(cfg, result) -> dict:
  record = law_record(result)
  record["law"].update({k: np.asarray(v).tolist() for k, v in per_password(result).items()})
  return record


def _mean_sd(values) -> str:
  v = np.asarray(values, dtype=float)
  sd = v.std(ddof=1) if v.size > 1 else float("nan")
  return f"{v.mean():+.3f} ± {sd:.3f}"


def table(records: dict) -> str:
  head = ["m", "k", "seeds", *[h for h, _ in COLUMNS]]
  lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
  for (m, k), r in records.items():
    c = r["config"]
    cells = [m_label(m), str(k), f"{c['seed']}–{c['seed'] + c['n_seeds'] - 1}"]
    cells += [_mean_sd(seed_values(r, key)) for _, key in COLUMNS]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def plot(records: dict, path: str):
  """G and held-out − control against m (log axis, one per row at the right), per k."""
  positions = {m: (np.log2(m) if m else np.log2(max(GATES)) + 2) for m in GATES}
  fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
  for ax, (key, title) in zip(axes, [
      ("law:G", "G = held-out law slope / useful law slope"),
      ("reverse/heldout_minus_control/final",
       "held-out − control, end of phase 3 (nats/token)")]):
    for k in MIXES:
      ms = [m for m in GATES if (m, k) in records]
      if not ms:
        continue
      values = {m: seed_values(records[(m, k)], key) for m in ms}
      sd = lambda v: v.std(ddof=1) if v.size > 1 else 0.0
      finite = [m for m in ms if m]  # one per row is not on the m axis: drawn unjoined
      color = None
      if finite:
        line = ax.errorbar([positions[m] for m in finite], [values[m].mean() for m in finite],
                           [sd(values[m]) for m in finite], marker="o", capsize=3,
                           label=f"k = {k} per row")
        color = line[0].get_color()
      if 0 in ms:
        ax.errorbar(positions[0], values[0].mean(), sd(values[0]), marker="s", capsize=3,
                    color=color, label=None if finite else f"k = {k} per row")
      for m, v in values.items():
        ax.scatter(np.full(v.size, positions[m]), v, s=8, alpha=0.35, color=color or "0.4")
    ax.axhline(0, color="k", ls=":", lw=1)
    if key == "law:G":
      ax.axhline(1, color="tab:green", ls="--", lw=1, label="G = 1 (the toy)")
    ax.set_xticks(list(positions.values()), [m_label(m) for m in positions], fontsize=8)
    ax.set_xlabel("m, the number of gates (log scale)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
  fig.suptitle("the toy's times node as m gates, each row a mix of k: \"reverse\" prefix, "
               "seeds as dots, mean ± sd")
  save_figure(fig, path)


def main(argv=None):
  parser = script_parser(__doc__)
  parser.add_argument("--m", type=int, action="append", help="gates (0: one per row)")
  parser.add_argument("--k", type=int, action="append", help="gates per row")
  parser.add_argument("--plot-only", action="store_true")
  parser.add_argument("--out", default=OUT)
  parser.add_argument("--table", default=os.path.join("results", "leakage.md"))
  parser.add_argument("--figure", default=os.path.join("figures", "leakage.png"))
  args = parser.parse_args(argv)
  toy.enable_compilation_cache()
  chosen = [(m, k) for m, k in GRID
            if (args.m is None or m in args.m) and (args.k is None or k in args.k)]
  todo = [point(m, k) for m, k in chosen if not is_stored(args.out, point(m, k))]
  if todo and not args.plot_only:
    run_sweep(todo, args.out, on_result=measure)
  records = {(m, k): load_point(args.out, point(m, k)) for m, k in GRID
             if is_stored(args.out, point(m, k))}
  command = producing_command("experiments/leakage.py", argv)
  head = (f"Written by `{command}`. The toy (cpu preset's data) with its times node as m "
          "gates, each memory row's sign a mix of k of them; end of phase 3, \"reverse\" "
          "prefix, mean ± sd over seeds. Columns: experiments/leakage.py's docstring.\n\n")
  text = table(records)
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
