"""Drawing: the study's stretched axis, phase curves, mean ± sd plots, the toy's diagram.

Helpers shared by the experiment scripts, in matplotlib, on values already measured; the
toy's diagram is drawn from a model's current weights.
"""
from __future__ import annotations

import os

import numpy as np

from toy.config import Config
from toy.phases import PHASE_NAMES, PHASES

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
  """One thin line per seed and a thick mean per set, phase boundaries dotted; the measured
  episode only (a run with prior episodes has them in its history too)."""
  history = [r for r in history if r.get("episode", cfg.prior_episodes) == cfg.prior_episodes]
  seeds = sorted({r["seed"] for r in history})
  for name in sets:
    ys = []
    for s in seeds:
      x, y = eval_series(history, s, name, cfg.chance)
      ax.plot(x, y, color=SET_COLORS[name], alpha=0.3, lw=0.8)
      ys.append(y)
    ax.plot(x, np.mean(ys, axis=0), color=SET_COLORS[name], lw=2,
            label=f"{SET_LABELS[name]} (mean of {len(seeds)} seeds)")
  boundaries = PHASES[:-1]  # the last phase's end is the plot's
  for phase in boundaries:
    ax.axvline(max(r["global_step"] for r in history if r["phase"] == phase), color="k",
               lw=0.6, ls=":")
  chance_line(ax, cfg)
  stretch_yaxis(ax)
  ax.set_title(title, fontsize=10)
  ax.set_xlabel(f"step (dotted: ends of {' and '.join(PHASE_NAMES[p] for p in boundaries)})")
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


def row_signs(model: "toy.mechanism.ToyMechanism", d: float):
  """The times node's sign for prefix value ``d``: a number (shared), or one per memory row
  (per row, or the mix of each row's gates)."""
  a, c = np.asarray(model.times.a[...], np.float64), np.asarray(model.times.c[...], np.float64)
  s = a + c * d
  if model.times.gated:
    gates, weights = np.asarray(model.times.gates[...]), np.asarray(model.times.gate_weights[...])
    return (weights * s[gates]).sum(-1)
  return float(s) if s.ndim == 0 else s


def gate_label(model: "toy.mechanism.ToyMechanism") -> str:
  """How the times node is shared, in words: "one shared times node", "one per memory row",
  "m gates, k per row"."""
  kind = dict(model.sign_kind)
  if not model.times.gated:
    return "one per memory row" if model.times.a[...].ndim else "one shared times node"
  if "toy_gate_shared" in kind:  # toy.mechanism.shared_gate_toy
    return (f"one shared gate (weight {kind['toy_gate_shared']:g}) + one gate per memory row "
            f"({model.times.a[...].shape[0] - 1})")
  if kind["toy_gates"] == 0:
    return f"one gate per memory row ({model.times.a[...].shape[0]})"
  return f"{kind['toy_gates']} gates, {kind['toy_gate_mix']} per row"


def draw_mechanism(model: "toy.mechanism.ToyMechanism", path: str, title: str = "") -> str:
  """Draws the parts with their current values: direction, times node, memory, additive path."""
  from toy import mechanism as M  # here, not above: the other plots need no model
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

  sc = model.other_scalars()
  g, d = sc["gain_add"], sc["direction"]
  values = np.asarray(model.memory.values[...])
  contexts = M.trie_contexts(np.asarray(model.memory.children[...]))
  used = sorted(contexts)
  times = model.combine == "times"
  s_reg, s_rev = row_signs(model, d["regular"]), row_signs(model, d["reverse"])
  if np.ndim(s_reg) == 0:
    a, c = float(model.times.a[...]), float(model.times.c[...])
    sign_text = (f"sign  s = a + c·d\na = {a:.4g}   c = {c:.4g}\n"
                 f"s(regular) = {s_reg:.4g}\ns(reverse) = {s_rev:.4g}")
    ratio = M.law_ratio(a, c, g, model.combine)
    law = (f"memory contribution (reverse) = {ratio:.4g} x contribution (regular)\n"
           + ("(a-c+g)/(a+c+g)" if times else "sum ablation: the sign only shifts every letter"))
  else:
    keys = [n for n in used if n != M.NULL]
    flipped = int(np.sum((s_reg[keys] + g > 0) & (s_rev[keys] + g < 0)))
    sign_text = (f"sign per memory row\n{gate_label(model)}\n"
                 f"s(regular): {s_reg[keys].mean():.3g} ± {s_reg[keys].std():.2g}\n"
                 f"s(reverse): {s_rev[keys].mean():.3g} ± {s_rev[keys].std():.2g}")
    law = (f"each memory row its own law, (s_row(reverse)+g)/(s_row(regular)+g):\n"
           f"flipped (regular > 0 > reverse) at {flipped} of {len(keys)} contexts"
           if times else "sum ablation: the sign only shifts every letter")

  fig = plt.figure(figsize=(12, 6.4))
  ax = fig.add_axes([0, 0, 0.66, 1])
  ax.set_xlim(0, 10)
  ax.set_ylim(0, 7.4)
  ax.axis("off")

  def box(x, y, w, h, text, color):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.08", fc=color, ec="k"))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=9.5)

  def node(x, y, symbol, color):
    ax.add_patch(Circle((x, y), 0.42, fc=color, ec="k", lw=1.5))
    ax.text(x, y, symbol, ha="center", va="center", fontsize=20, fontweight="bold")

  def arrow(x0, y0, x1, y1, text="", dy=0.18):
    ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=14,
                                 lw=1.3, color="k"))
    if text:
      ax.text((x0 + x1) / 2, (y0 + y1) / 2 + dy, text, ha="center", fontsize=8.5, color="0.2")

  box(0.2, 5.2, 2.3, 1.3, "prefix token\n(position 0)", "#e8e8e8")
  box(3.2, 5.0, 2.6, 1.7, "prefix direction d\n"
      f"regular: {d['regular']:+.3g}\nreverse: {d['reverse']:+.3g}\nneutral: {d['neutral']:+.3g}",
      "#cfe2ff")
  box(6.5, 5.0, 3.2, 1.7, sign_text, "#ffe3b3")
  box(0.2, 1.0, 2.3, 1.4, "context\np_1 .. p_t", "#e8e8e8")
  box(3.2, 0.7, 2.6, 2.0, "key-value memory\nkey = exact context (trie)\n"
      f"{len(used) - 1} keys + null slot\nvalues: {values.shape[0]} x {values.shape[1]}\n"
      f"max |value| = {np.abs(values).max():.3g}", "#d4f5d4")
  node(8.1, 3.4, "×" if times else "+", "#ffd0d0")
  box(6.6, 0.3, 2.4, 1.2, f"additive path\ngain = {g:.4g}", "#eadcff")
  node(9.45, 2.0, "+", "#f0f0f0")
  arrow(2.5, 5.85, 3.2, 5.85)
  arrow(5.8, 5.85, 6.5, 5.85, "d")
  arrow(8.1, 5.0, 8.1, 3.85, "s", dy=0)
  arrow(2.5, 1.7, 3.2, 1.7, "key")
  arrow(5.8, 2.2, 7.68, 3.3, "readout r")
  arrow(5.8, 1.1, 6.6, 0.9, "r")
  arrow(8.45, 3.15, 9.25, 2.35)
  arrow(9.0, 0.9, 9.35, 1.6)
  ax.text(9.45, 2.6, "logits", ha="center", fontsize=10, fontweight="bold")
  ax.text(0.2, 4.1, law, fontsize=10, color="darkred")
  fig.suptitle(title or f"Toy mechanism (combine = {model.combine})", fontsize=12,
               fontweight="bold", x=0.02, ha="left")

  hm = fig.add_axes([0.70, 0.1, 0.24, 0.76])
  rows = used[: 24]
  lim = max(np.abs(values[rows]).max(), 1e-6)
  image = hm.imshow(values[rows], cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
  fig.colorbar(image, cax=fig.add_axes([0.955, 0.1, 0.012, 0.76]))
  labels = ["null" if n == M.NULL else "root" if n == M.ROOT else
            "".join(chr(ord("a") + x) if x < 26 else f"<{x}>" for x in contexts[n])
            for n in rows]
  hm.set_yticks(range(len(rows)), labels, fontsize=7)
  hm.set_xticks(range(values.shape[1]),
                [chr(ord("a") + x) if x < 26 else str(x) for x in range(values.shape[1])],
                fontsize=7)
  hm.set_title(f"memory values, first {len(rows)} keys (contexts)\n"
               "logits add s(prefix) x row", fontsize=9)
  hm.set_xlabel("next letter", fontsize=8)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def save_figure(fig, path: str, dpi: int = 120) -> str:
  """Lays out, writes and closes a script's figure; returns the path."""
  import matplotlib.pyplot as plt
  fig.tight_layout()
  fig.savefig(path, dpi=dpi)
  plt.close(fig)
  return path
