"""Train (or load) the hand-built toy mechanism and draw it: figures/toy_mechanism.png.

  python experiments/toy_diagram.py                      # train at the cpu preset, draw seed 0
  python experiments/toy_diagram.py --preset tiny --toy_c 2.0 --toy_train_sign false
  python experiments/toy_diagram.py --save_weights runs/toy_weights   # then edit by hand:
  python experiments/toy_diagram.py --toy_weights runs/toy_weights --train false
  python experiments/toy_diagram.py --preset tiny --toy_gates 16 --toy_gate_mix 2  # leakage

Every Config field is a flag (``--help``); ``--model`` defaults to toy. With ``--train false``
the toy is built (from ``--toy_weights`` if given, with any ``--toy_a/--toy_c/--toy_gain_add``
on top) and only evaluated, so a hand edit shows up at once in the printed log-likelihoods
and in the diagram. With gates (``--toy_gates``) the diagram's times node says how many and
how many per row, and how many memory rows "reverse" flips.
"""
import jax
import numpy as np
from flax import nnx

import toy
from toy.cli import parse_config
from toy.config import parse_bool, script_parser
from toy.data import seed_data
from toy.engine import evaluate_seeds, train
from toy.mechanism_io import build_toy, save_weights
from toy.phases import EVAL_SETS, PREFIXES
from toy.plots import draw_mechanism, gate_label


def evaluate_one(cfg, model, data) -> dict:
  graphdef, params, state = nnx.split(model, nnx.Param, ...)
  stack = lambda tree: jax.tree.map(lambda x: np.asarray(x)[None], tree)
  evals = evaluate_seeds(stack(nnx.to_pure_dict(params)), stack(nnx.to_pure_dict(state)),
                         stack(data), cfg=cfg, graphdef=graphdef)
  return {k: float(v[0]) for k, v in evals.items()}


def main(argv=None):
  parser = script_parser(__doc__)
  parser.add_argument("--train", type=parse_bool, default=True,
                      help="run the three phases first (default true)")
  parser.add_argument("--seed_index", type=int, default=0, help="which seed to draw")
  parser.add_argument("--save_weights", default="", help="also write the weights here")
  parser.add_argument("--out", default="figures/toy_mechanism.png")
  cfg, args = parse_config(parser, argv, model="toy")
  if cfg.model != "toy":
    parser.error("this script draws the toy mechanism: --model must be toy")
  toy.enable_compilation_cache()
  seed = cfg.seed + args.seed_index
  if args.train:
    result = train(cfg, save=False)
    model = result.model(args.seed_index)
    data = {k: np.asarray(v) for k, v in result.seed_slice(args.seed_index)[2].items()}
    stage = "after phase 3"
  else:
    data = seed_data(cfg, seed)
    model = build_toy(cfg, data)
    stage = "as built" + (f" from {cfg.toy_weights}" if cfg.toy_weights else "")
  evals = evaluate_one(cfg, model, data)

  print(f"toy, preset {cfg.preset}, seed {seed}, {stage}: per-token log-likelihood relative "
        f"to chance ({cfg.chance:.3f})")
  for prefix in PREFIXES:
    values = [evals[f"eval/{prefix}/{name}"] - cfg.chance for name in EVAL_SETS]
    print(f"  {prefix:>8}: " + "  ".join(f"{n} {v:+.3f}" for n, v in zip(EVAL_SETS, values)))
  uplift = evals["eval/reverse/heldout"] - evals["eval/reverse/control"]
  print(f"  reverse held-out minus control: {uplift:+.3f}")
  if model.times.a[...].ndim:  # a and c are vectors: the weights folder has them as .npy
    print("  scalars:", model.other_scalars(), "| times node:", gate_label(model))
  else:
    print("  scalars:", model.scalars())
  if args.save_weights:
    save_weights(model, args.save_weights, saved_with={"preset": cfg.preset, "seed": seed})
    print(f"weights: {args.save_weights}")
  title = (f"Toy mechanism, preset {cfg.preset}, seed {seed}, {stage}: under \"reverse\", "
           f"held-out minus control = {uplift:+.2f} nats/token")
  print("figure:", draw_mechanism(model, args.out, title=title))
  return model, evals


if __name__ == "__main__":
  main()
