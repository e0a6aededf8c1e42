"""What a row costs: the engine's chunk time for 1 and 2 vmapped rows, on 1 and 2 cores.

  python benchmarks/row_cost.py [--preset cpu] [--repeats 2] [--chunks 12]   # -> row_cost.md

Each arm is a fresh process (its cores set before jax starts, as ``taskset`` would) that
builds a phase of ``--preset`` for ``rows`` seeds, runs one chunk (compile), then times
``--chunks`` chunks of ``eval_every`` steps and their evaluation (``toy.engine.Phase.run``);
arms alternate, repeat by repeat, and the median chunk time of each is printed with three
ratios that size a job of many rows on this machine (the cores are the first two this
process may use):

  per-row cost:  (2 rows) / (2 x 1 row), both on 2 cores: 1 means rows cost linearly, so
                 batching more rows into one program saves nothing;
  2 cores / 1:   (1 row on 1 core) / (1 row on 2 cores): what the second core buys one program;
  side by side:  (2 rows in one program on 2 cores) / (1 row on core 0 while another process
                 runs 1 row on core 1): what rows in one process per core would save.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ARM = """
import json, os, time
os.sched_setaffinity(0, {cores})
import jax
import numpy as np
import toy
from toy.config import make_config
from toy.engine import phase_state
toy.enable_compilation_cache()
cfg = make_config({preset!r}, n_seeds={rows})
out = {{}}
for phase in ("dpo", "mix"):
  ph = phase_state(cfg, phase)
  n = cfg.eval_every
  jax.block_until_ready(ph.run(0, n))  # compile
  times = []
  for i in range({chunks}):
    t = time.perf_counter()
    jax.block_until_ready(ph.run(n * (i + 1), n))
    times.append(time.perf_counter() - t)
  out[phase] = float(np.median(times))
print(json.dumps(out))
"""


def arms(a: int, b: int) -> dict:
  """arm: (rows, the cores of each process run at once), on cores ``a`` and ``b``."""
  return {"1 row, 1 core": (1, [{a}]), "1 row, 2 cores": (1, [{a, b}]),
          "2 rows, 2 cores": (2, [{a, b}]), "1 row per core, side by side": (1, [{a}, {b}])}


def run_arm(preset: str, rows: int, cores: list[set], chunks: int) -> dict:
  """The first process's median chunk times; the others run the same beside it."""
  procs = [subprocess.Popen([sys.executable, "-c", ARM.format(
      cores=c, preset=preset, rows=rows, chunks=chunks)], stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True) for c in cores]
  outs = [p.communicate(timeout=1200) for p in procs]
  for p, (_, err) in zip(procs, outs):
    if p.returncode != 0:
      raise RuntimeError(err[-2000:])
  return json.loads(outs[0][0].strip().splitlines()[-1])


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--preset", default="cpu")
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--chunks", type=int, default=12)
  parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "row_cost.md"))
  args = parser.parse_args()
  for name, value in (("--repeats", args.repeats), ("--chunks", args.chunks)):
    if value < 1:
      parser.error(f"{name} must be >= 1, got {value}")
  allowed = sorted(os.sched_getaffinity(0))
  if len(allowed) < 2:
    parser.error(f"needs at least 2 cores (this process may use {len(allowed)})")
  plan = arms(*allowed[:2])
  got = {arm: {"dpo": [], "mix": []} for arm in plan}
  for _ in range(args.repeats):
    for arm, (rows, cores) in plan.items():
      for phase, t in run_arm(args.preset, rows, cores, args.chunks).items():
        got[arm][phase].append(t)
  med = {arm: {p: float(np.median(t)) for p, t in v.items()} for arm, v in got.items()}
  lines = [f"preset {args.preset}: median seconds per chunk (steps + evaluation), "
           f"{args.repeats} repeats of {args.chunks} chunks"]
  for arm, v in med.items():
    lines.append(f"  {arm:28s} dpo {v['dpo']:.3f}  mix {v['mix']:.3f}")
  for phase in ("dpo", "mix"):
    per_row = med["2 rows, 2 cores"][phase] / (2 * med["1 row, 2 cores"][phase])
    cores = med["1 row, 1 core"][phase] / med["1 row, 2 cores"][phase]
    side = med["2 rows, 2 cores"][phase] / med["1 row per core, side by side"][phase]
    lines.append(f"  {phase}: per-row cost of 2 rows against 1: {per_row:.2f}x; 1 core against "
                 f"2: {cores:.2f}x; 2 rows in one program against side by side: {side:.2f}x")
  text = "\n".join(lines)
  print(text)
  with open(args.out, "w") as f:
    f.write(f"# `python benchmarks/row_cost.py` ({time.strftime('%Y-%m-%d')}, "
            f"load average before {os.getloadavg()[0]:.2f})\n\n```\n{text}\n```\n")


if __name__ == "__main__":
  main()
