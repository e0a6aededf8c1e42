"""Drawing helpers shared by the experiment scripts: the study's stretched axis, phase curves
and mean ± sd summaries of stored sweep points. Pure matplotlib on arrays already measured."""
from __future__ import annotations

import numpy as np

from toy.config import Config

SET_COLORS = {"control": "tab:gray", "useful": "tab:blue", "heldout": "tab:red"}
SET_LABELS = {"control": "random control", "useful": "useful negatives",
              "heldout": "held-out negatives"}
STRETCH = 0.02  # nats/token: below this the asinh axis is linear, above it logarithmic


def stretch_yaxis(ax, stretch: float = STRETCH) -> None:
  """The study stretched the region just above chance so that a small effect can be seen:
  asinh is linear within ±stretch of chance (0 here) and logarithmic beyond."""
  ax.set_yscale("function", functions=(lambda v: np.arcsinh(v / stretch),
                                       lambda v: stretch * np.sinh(v)))


def chance_line(ax, cfg: Config) -> None:
  ax.axhline(0.0, color="k", ls="--", lw=1, label=f"chance (-log {cfg.alphabet_size})")


def eval_series(history: list[dict], seed: int, name: str, chance: float):
  """(global steps, log-lik − chance) of one seed and set, read as PROTOCOL.md reads it:
  under "regular" in phases 1-2 and under "reverse" in phase 3."""
  rows = [r for r in history if r["seed"] == seed]
  x = np.array([r["global_step"] for r in rows])
  y = np.array([r[f"eval/{'reverse' if r['phase'] == 'mix' else 'regular'}/{name}"]
                for r in rows]) - chance
  return x, y


def phase_curves(ax, cfg: Config, history: list[dict], title: str, sets=tuple(SET_COLORS)):
  """One thin line per seed and a thick mean per set, phase boundaries dotted."""
  seeds = sorted({r["seed"] for r in history})
  for name in sets:
    ys = []
    for s in seeds:
      x, y = eval_series(history, s, name, cfg.chance)
      ax.plot(x, y, color=SET_COLORS[name], alpha=0.3, lw=0.8)
      ys.append(y)
    ax.plot(x, np.mean(ys, axis=0), color=SET_COLORS[name], lw=2,
            label=f"{SET_LABELS[name]} (mean of {len(seeds)} seeds)")
  for phase in ["pretrain", "dpo"]:
    ax.axvline(max(r["global_step"] for r in history if r["phase"] == phase), color="k",
               lw=0.6, ls=":")
  chance_line(ax, cfg)
  stretch_yaxis(ax)
  ax.set_title(title, fontsize=10)
  ax.set_xlabel("step (dotted: ends of phase 1 and phase 2)")
  ax.set_ylabel("log-lik − chance, nats/token (asinh scale)")
  ax.legend(fontsize=8, loc="lower left")


def mean_sd_errorbar(ax, x, values_PxS, **kw):
  """Mean ± sd over seeds (axis 1) at each x, with each seed as a faint dot."""
  v = np.asarray(values_PxS, dtype=float)
  x = np.asarray(x, dtype=float)
  sd = v.std(-1, ddof=1) if v.shape[-1] > 1 else np.zeros(len(v))
  line = ax.errorbar(x, v.mean(-1), yerr=sd, capsize=3, marker="o", ms=4, **kw)
  color = line[0].get_color()
  for xi, vi in zip(x, v):
    ax.scatter(np.full(vi.shape, xi), vi, s=8, alpha=0.35, color=color)
  return line
