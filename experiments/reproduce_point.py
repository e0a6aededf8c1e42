"""Retrain a stored sweep point with this checkout and compare its per-seed summaries.

  python experiments/reproduce_point.py results/search/419c483af2b0.json
  python experiments/reproduce_point.py results/ladder/<id>.json --out /tmp/check.json

Stored points (results/*/<id>.json) were trained by the code of their day. A float-level
change to the engine (e.g. the reference log-probs computed once per phase) changes a
rerun's numbers by rounding, which hundreds of optimizer steps amplify; this script says by
how much, for every summary value of every seed. Prints the largest absolute difference and
the headline values side by side; ``--out`` writes them as JSON.
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np

import toy
from toy.config import Config, script_parser, validate
from toy.engine import train_many
from toy.io import write_json_atomic

HEADLINE = ("reverse/heldout_minus_control/final", "reverse/heldout/final", "reverse/useful/final")


def main(argv=None):
  parser = script_parser(__doc__)
  parser.add_argument("point", help="a stored point's JSON file")
  parser.add_argument("--out", default="", help="write the comparison here (JSON)")
  args = parser.parse_args(argv)
  with open(args.point) as f:
    record = json.load(f)
  known = {f.name for f in dataclasses.fields(Config)}
  cfg = validate(Config(**{k: v for k, v in record["config"].items() if k in known}))
  toy.enable_compilation_cache()
  result, = train_many([cfg], save=False)
  keys = sorted(record["summary"][0])
  stored = np.array([[s[k] for k in keys] for s in record["summary"]], dtype=float)
  fresh = np.array([[s[k] for k in keys] for s in result.summary], dtype=float)
  diff = np.abs(fresh - stored)
  worst = np.unravel_index(np.nanargmax(diff), diff.shape)
  out = {"point": args.point, "seeds": cfg.seeds, "n_values": int(diff.size),
         "max_abs_diff": float(np.nanmax(diff)), "max_at": {"seed": cfg.seeds[worst[0]],
                                                            "key": keys[worst[1]]},
         "headline": {k: {"stored": stored[:, keys.index(k)].tolist(),
                          "rerun": fresh[:, keys.index(k)].tolist()} for k in HEADLINE}}
  print(f"{args.point}: {diff.size} summary values over seeds {cfg.seeds}; largest |rerun - "
        f"stored| = {out['max_abs_diff']:.2e} ({out['max_at']['key']}, seed "
        f"{out['max_at']['seed']})")
  for k in HEADLINE:
    print(f"  {k}: stored {np.round(stored[:, keys.index(k)], 4).tolist()}  "
          f"rerun {np.round(fresh[:, keys.index(k)], 4).tolist()}")
  if args.out:
    write_json_atomic(args.out, out)
  return out


if __name__ == "__main__":
  main()
