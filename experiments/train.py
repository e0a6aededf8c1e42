"""One run of the three phases: `python experiments/train.py --preset cpu [--field value ...]`.

Every Config field is a flag (`--help` lists them). Writes runs/<name>/ (config.json,
metrics.csv, summary.json, params.npz) and prints the per-seed summary.
"""
import argparse

import toy
from toy.config import add_config_args, config_from_args
from toy.engine import train
from toy.sweep import fmt, paired_test


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  add_config_args(parser)
  try:
    cfg = config_from_args(parser.parse_args(argv))
  except ValueError as e:  # a bad value: say which field and its range, no traceback
    parser.error(str(e))
  toy.enable_compilation_cache()
  result = train(cfg)
  record = {"summary": result.summary}
  print(f"\nrun folder: {result.run_dir}")
  print("phase 3, reverse prefix, per-token log-likelihood relative to chance "
        f"({cfg.chance:.3f}); over {cfg.n_seeds} seed(s):")
  for key in ["useful", "heldout", "control", "heldout_minus_control"]:
    for when in ["final", "max"]:
      values = [s[f"reverse/{key}/{when}"] for s in record["summary"]]
      print(f"  {key:>22} {when:>5}: {fmt(paired_test(values, 0.0), 4)}")
  return result


if __name__ == "__main__":
  main()
