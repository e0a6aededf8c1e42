"""One run of the three phases: `python experiments/train.py --preset cpu [--field value ...]`.

Every Config field is a flag (`--help` lists them). Writes runs/<name>/ (config.json,
metrics.csv, summary.json, params.npz) and prints the per-seed summary.

  python experiments/train.py --init_from /path/to/pythia-160m --preset paper --n_seeds 8

starts every seed from a local Hugging Face GPT-NeoX / Pythia folder (never downloaded); its
log-probs are then a softmax over the whole vocabulary, as the study's (--normalize).
"""
import toy
from toy.cli import parse_config
from toy.config import script_parser
from toy.engine import train
from toy.stats import fmt, paired_test


def main(argv=None):
  cfg, _ = parse_config(script_parser(__doc__), argv)
  toy.enable_compilation_cache()
  result = train(cfg)
  record = {"summary": result.summary}
  print(f"\nrun folder: {result.run_dir}")
  print("phase 3, reverse prefix, per-token log-likelihood (normalised over the "
        f"{cfg.normalize}) relative to chance ({cfg.chance:.3f}); over {cfg.n_seeds} seed(s):")
  for key in ["useful", "heldout", "control", "placebo", "heldout_minus_control",
              "placebo_minus_control"]:
    for when in ["final", "max"]:
      values = [s[f"reverse/{key}/{when}"] for s in record["summary"]]
      print(f"  {key:>22} {when:>5}: {fmt(paired_test(values, 0.0), 4)}")
  return result


if __name__ == "__main__":
  main()
