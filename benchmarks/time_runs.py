"""Wall time of one whole `cpu` run and of one phase-2 (DPO) step at the `paper` size.

  python benchmarks/time_runs.py [--skip-cpu] [--paper-steps 3]

The cpu run is the engine's own loop (``toy.engine.train``). The paper step is timed as a
1-step chunk of the engine's own compiled phase-2 program, on the state ``train`` builds for
phase 2 (``toy.engine.phase_state``; compile excluded, median of --paper-steps calls; its
evaluation of 6 x 128 sequences is timed separately and subtracted). Prints a markdown table
and writes benchmarks/time_runs.md.
"""
import argparse
import os
import platform
import time

import jax
import numpy as np

import toy
from toy.config import make_config
from toy import engine as E


def time_cpu_run() -> float:
  t0 = time.perf_counter()
  E.train(make_config("cpu", out_dir="runs/bench"), progress=False, save=False)
  return time.perf_counter() - t0


def time_paper_dpo_step(repeats: int) -> dict:
  # both prefixes, so that the chunk's evaluations (its program's and the other prefix's) are
  # what evaluate_seeds times below
  cfg = make_config("paper", eval_every=1, eval_prefixes="both")
  ph = E.phase_state(cfg, "dpo")  # its reference: a copy of the initial parameters
  t0 = time.perf_counter()
  jax.block_until_ready(ph.run(0, 1))
  compile_s = time.perf_counter() - t0
  evaluate = lambda p: E.evaluate_seeds(p, ph.state, ph.data, cfg=ph.cfg, graphdef=ph.graphdef)
  jax.block_until_ready(evaluate(ph.params))  # compile outside the timed loop
  steps, evals = [], []
  for i in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(ph.run(i + 1, 1))
    steps.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    jax.block_until_ready(evaluate(ph.params))
    evals.append(time.perf_counter() - t0)
  return {"first_call_s": compile_s, "chunk_s": float(np.median(steps)),
          "eval_s": float(np.median(evals))}


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--skip-cpu", action="store_true")
  parser.add_argument("--paper-steps", type=int, default=3)
  args = parser.parse_args()
  toy.enable_compilation_cache()
  lines = [f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
           f"jax {jax.__version__} on {jax.devices()[0].platform}; "
           f"load average before: {os.getloadavg()}", "", "| measure | seconds |", "|---|---|"]
  if not args.skip_cpu:
    lines.append(f"| one `cpu` run, 1 seed, compile included (cache as found) | "
                 f"{time_cpu_run():.1f} |")
  p = time_paper_dpo_step(args.paper_steps)
  lines += [f"| `paper` phase-2 step, first call (compile + step + eval) | {p['first_call_s']:.1f} |",
            f"| `paper` phase-2 step + eval, median of {args.paper_steps} | {p['chunk_s']:.2f} |",
            f"| `paper` evaluation alone, median | {p['eval_s']:.2f} |",
            f"| `paper` phase-2 step alone (difference) | {p['chunk_s'] - p['eval_s']:.2f} |"]
  text = "\n".join(lines)
  print(text)
  with open(os.path.join(os.path.dirname(__file__), "time_runs.md"), "w") as f:
    f.write(f"# `python benchmarks/time_runs.py` ({time.strftime('%Y-%m-%d')})\n\n{text}\n")


if __name__ == "__main__":
  main()
