"""Tracing and lowering cost of the tiny preset's three phase programs: the model's forward as
one jitted function per graphdef (``toy.setup.apply_fn``, traced once per input shape) beside
a plain function (traced at every call: a phase program calls the model about 15 times).

  python benchmarks/trace_cost.py [--repeats 3]

Side by side in one process, alternating, in-memory caches cleared before each measurement;
prints each arm's median seconds and their ratio. XLA's compile is not included (``lower``
only), so the number is the Python-side cost a test or a new process pays for every new
program, whatever the compile cache holds.
"""
import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from toy import engine as E
from toy import setup as setup_lib
from toy.config import make_config


def plain_apply_fn(graphdef):
  return lambda params, state, tokens_BxT: nnx.merge(graphdef, params, state)(tokens_BxT)


def lower_phases(cfg, states) -> float:
  t0 = time.perf_counter()
  for phase, ph in states.items():
    E.run_chunk.lower(ph.params, ph.opt_state, ph.ref, ph.ref_neg, ph.state, ph.data,
                      ph.tables, ph.key, ph.hyperparams, jnp.int32(0), cfg=ph.cfg,
                      graphdef=ph.graphdef, phase=phase, n_steps=cfg.eval_every, labels=ph.labels)
  return time.perf_counter() - t0


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  if args.repeats < 1:
    parser.error(f"--repeats must be >= 1, got {args.repeats}")
  cfg = make_config("tiny")
  states = {phase: E.phase_state(cfg, phase) for phase in ("pretrain", "dpo", "mix")}
  jitted = E.apply_fn
  times = {"jitted forward": [], "plain forward": []}
  for _ in range(args.repeats):
    for arm, fn in (("jitted forward", jitted), ("plain forward", plain_apply_fn)):
      E.apply_fn = fn  # run_chunk reads the engine's name at trace time
      jax.clear_caches()
      setup_lib.apply_fn.cache_clear()
      times[arm].append(lower_phases(cfg, states))
  E.apply_fn = jitted
  med = {arm: float(np.median(t)) for arm, t in times.items()}
  for arm, t in times.items():
    print(f"{arm:15s} median {med[arm]:.2f} s  ({', '.join(f'{x:.2f}' for x in t)})")
  print(f"plain / jitted: {med['plain forward'] / med['jitted forward']:.2f}x")


if __name__ == "__main__":
  main()
