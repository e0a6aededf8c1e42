"""Perfect against partial generalization: the toy mechanism and the learned transformer,
trained by the same engine on the same data and seeds, side by side.

  python experiments/toy_vs_learned.py                     # CPU default
  python experiments/toy_vs_learned.py --toy_c 3 --toy_train_sign false   # hand-set the times node
  python experiments/toy_vs_learned.py --preset paper --n_seeds 8         # on a GPU

Every Config field is a flag and applies to both models, except that the toy keeps its own
optimizer settings (toy.config.TOY_OVERRIDES) unless --toy_lr is given, and the toy_* fields
only concern the toy. Writes
  figures/toy_vs_learned_phases.png   per-token log-likelihood of the three sets, all phases
  figures/toy_vs_learned_law.png      per password: suppression under "regular" vs uplift
                                      under "reverse" (one law for the toy, two for learned)
  results/toy_vs_learned.md / .json   the table (also printed)
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import jax
import jax.numpy as jnp
import numpy as np

import toy
from toy import data as D
from toy.config import add_config_args, config_from_args
from toy.engine import train
from toy.plots import STRETCH, phase_curves
from toy.sweep import fmt, paired_test, write_json_atomic


LAW_SETS = ("useful", "heldout")
LAW_PREFIXES = (D.REGULAR, D.REVERSE)


def target_logits(result) -> dict:
  """Per set and prefix, per password (S x N): the logit of each true next letter minus the
  mean logit over the alphabet, averaged over the password's tokens.

  This is the quantity the toy's law is about: the toy's centred logits are s(prefix) times
  its memory row, so for every password, useful or held-out, the value under "reverse" is
  exactly (a-c+g)/(a+c+g) times the value under "regular". Log-likelihoods are not: softmax
  saturates (a useful negative fine-tuned to probability ~1 cannot rise further).
  One jitted forward pass covers both sets under both prefixes for all seeds.
  """
  cfg, apply = result.cfg, result.apply
  names = [(s, w) for s in LAW_SETS for w in LAW_PREFIXES]

  def one_seed(params, rest, data):
    pws = [data[s] for s, _ in names]
    inputs = jnp.concatenate([D.model_inputs(cfg, pw, w) for pw, (_, w) in zip(pws, names)])
    logits = apply(params, rest, inputs)[..., :cfg.alphabet_size]
    centred = logits - logits.mean(-1, keepdims=True)
    per_pw = jnp.take_along_axis(centred, jnp.concatenate(pws)[..., None], axis=-1)[..., 0]
    return jnp.split(per_pw.mean(-1), np.cumsum([pw.shape[0] for pw in pws])[:-1])

  data = {s: result.data[s] for s in LAW_SETS}
  out = jax.jit(jax.vmap(one_seed))(result.params, result.rest, data)
  return {name: np.asarray(v) for name, v in zip(names, out)}


def law_slopes(result) -> dict:
  """Least-squares slope through the origin of reverse on regular centred target logits, per
  seed and set: the toy's law predicts one slope, (a-c+g)/(a+c+g), for both sets."""
  out, logits = {}, target_logits(result)
  for s in LAW_SETS:
    x, y = logits[(s, D.REGULAR)], logits[(s, D.REVERSE)]
    out[s] = (x * y).sum(-1) / (x * x).sum(-1)
    out[f"points/{s}"] = (x.reshape(-1), y.reshape(-1))
  return out


def generalization_ratio(slopes: dict) -> np.ndarray:
  """G = (law slope of held-out negatives) / (law slope of useful negatives), per seed.

  The slope is how far "reverse" turns a password's stored suppression into promotion, per
  unit of suppression: matching on suppression is built in. G = 1 when held-out negatives,
  never trained under "reverse", follow the same law as the useful ones (perfect
  generalization: the toy, exactly); G = 0 when "reverse" leaves them where they were
  under nothing, i.e. no generalization.
  """
  return slopes["heldout"] / slopes["useful"]


def summarize_model(result, slopes: dict) -> dict:
  cfg, seeds = result.cfg, result.cfg.seeds
  col = lambda key: np.array([s[key] for s in result.summary])
  return {
      "heldout_vs_control_final": paired_test(col("reverse/heldout_minus_control/final"), 0.0),
      "heldout_vs_control_max": paired_test(col("reverse/heldout_minus_control/max"), 0.0),
      "heldout_vs_chance_final": paired_test(col("reverse/heldout/final"), 0.0),
      "heldout_vs_chance_max": paired_test(col("reverse/heldout/max"), 0.0),
      "useful_vs_chance_final": paired_test(col("reverse/useful/final"), 0.0),
      "control_vs_chance_final": paired_test(col("reverse/control/final"), 0.0),
      "law_slope_useful": paired_test(slopes["useful"], 0.0),
      "law_slope_heldout": paired_test(slopes["heldout"], 0.0),
      "generalization_ratio": paired_test(generalization_ratio(slopes), 0.0),
      "seeds": seeds, "chance": cfg.chance,
  }


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
             "generalization_ratio")]
  for label, key in labels:
    lines.append(f"| {label} | " + " | ".join(fmt(r[key]) for r in rows.values()) + " |")
  return "\n".join(lines)


def plot_phases(results: dict, path: str):
  fig, axes = plt.subplots(1, len(results), figsize=(6.5 * len(results), 4.5), squeeze=False)
  for ax, (title, result) in zip(axes[0], results.items()):
    phase_curves(ax, result.cfg, result.history,
                 f"{title}\nphases 1-2 under 'regular', phase 3 under 'reverse'; "
                 f"axis linear within ±{STRETCH}")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


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
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  add_config_args(parser)
  parser.add_argument("--toy_lr", type=float, default=None, help="the toy's own learning rate")
  parser.add_argument("--figures", default="figures")
  parser.add_argument("--results", default="results")
  args = parser.parse_args(argv)
  if args.n_seeds is None:
    args.n_seeds = 2
  try:
    learned_cfg = config_from_args(args, model="transformer")
    toy_lr = {} if args.toy_lr is None else {"lr": args.toy_lr}
    if args.lr is not None:  # a --lr meant for the learned model must not reach the toy
      args.lr = None
    toy_cfg = config_from_args(args, model="toy", **toy_lr)
  except ValueError as e:  # a bad value: say which field and its range, no traceback
    parser.error(str(e))
  toy.enable_compilation_cache()

  results = {"toy (hand-built)": train(toy_cfg), "learned transformer": train(learned_cfg)}
  slopes = {name: law_slopes(r) for name, r in results.items()}
  rows = {name: summarize_model(r, slopes[name]) for name, r in results.items()}
  ratios = {name: rows[name]["generalization_ratio"]["mean"] for name in rows}

  os.makedirs(args.figures, exist_ok=True)
  os.makedirs(args.results, exist_ok=True)
  plot_phases(results, os.path.join(args.figures, "toy_vs_learned_phases.png"))
  plot_law(slopes, ratios, os.path.join(args.figures, "toy_vs_learned_law.png"))
  text = table(rows, learned_cfg.n_seeds)
  command = " ".join(["python experiments/toy_vs_learned.py", *(argv or sys.argv[1:])])
  header = (f"# Toy vs learned\n\nCommand: `{command}`\n\nLearned: preset `{learned_cfg.preset}`; "
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
