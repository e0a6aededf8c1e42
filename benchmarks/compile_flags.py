"""CPU seconds that tiny runs cost to trace and compile under a set of XLA flags, with and
without one more flag, each arm in a fresh process with an empty compile cache, alternating.

  python benchmarks/compile_flags.py [--repeats 4] [--extra FLAG]

Each process trains the tiny preset twice (the plain transformer, then with the times node:
two sets of phase programs, as a test file does) and reports its own CPU time (user + system,
all threads). CPU rather than wall: the test suite keeps both cores busy, so CPU is what a flag
can save it. Prints every measurement, each arm's median and their ratio.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

# By default the second arm is tests/conftest.py's FAST_COMPILE, the first the same without
# its last flag: the measurement behind that flag (a test keeps BASE + EXTRA equal to it).
BASE = "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"
EXTRA = "--xla_cpu_parallel_codegen_split_count=1"
CHILD = """
import resource
import toy
toy.enable_compilation_cache()  # $TOY_JAX_CACHE: the parent's empty folder
from toy.config import make_config
from toy.engine import train
cfg = make_config("tiny")  # save=False below: nothing is written
train(cfg, progress=False, save=False)
train(cfg.replace(times_node=True, toy_train_sign=False), progress=False, save=False)
r = resource.getrusage(resource.RUSAGE_SELF)
print(r.ru_utime + r.ru_stime)
"""


def cpu_seconds(flags: str) -> float:
  with tempfile.TemporaryDirectory() as cache:
    # Every program kept on disk, as tests/conftest.py has it: writing them is the suite's CPU too.
    env = {**os.environ, "XLA_FLAGS": flags, "TOY_JAX_CACHE": cache,
           "TOY_JAX_CACHE_MIN_COMPILE_S": "0", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True,
                         check=True).stdout
  return float(out.strip().splitlines()[-1])


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=4)
  parser.add_argument("--base", default=BASE, help="the flags both arms share")
  parser.add_argument("--extra", default=EXTRA,
                      help="the flag the second arm adds")
  args = parser.parse_args()
  if args.repeats < 1:
    parser.error(f"--repeats must be at least 1, got {args.repeats}")
  arms = {"base": args.base, "base + extra": f"{args.base} {args.extra}"}
  cpu = {name: [] for name in arms}
  for i in range(args.repeats):
    for name, flags in (arms.items() if i % 2 == 0 else reversed(arms.items())):
      cpu[name].append(cpu_seconds(flags))
      print(f"repeat {i + 1}/{args.repeats} {name:13s} {cpu[name][-1]:6.2f} s CPU", flush=True)
  med = {name: statistics.median(v) for name, v in cpu.items()}
  print(f"base: {args.base}\nextra: {args.extra}")
  for name, m in med.items():
    print(f"{name:13s} median {m:6.2f} s CPU  (all: {', '.join(f'{x:.2f}' for x in cpu[name])})")
  print(f"ratio base / (base + extra): {med['base'] / med['base + extra']:.3f}")


if __name__ == "__main__":
  main()
