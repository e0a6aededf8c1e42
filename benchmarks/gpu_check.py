"""The prepared GPU check: versions, devices, one seed end to end and 8 seeds vmapped, in time.

  bash benchmarks/gpu_check.sh                    # what to run on a GPU machine (README, "Scale")
  PYTHONPATH=. python benchmarks/gpu_check.py [--preset paper] [--seeds 8] [--budget 400]
  GPU_CHECK_ALLOW_CPU=1 PYTHONPATH=. python benchmarks/gpu_check.py --preset tiny --seeds 2

Exits with status 2 and a one-line message, before any work, unless jax's default backend is
gpu; GPU_CHECK_ALLOW_CPU=1 lets it run on CPU (the smoke test, tests/test_gpu_check.py).

Two stages, each the engine's own loop, ``train`` of one config (setup, the evaluation at
initialisation, then each phase's compiled chunks), timed and kept to its budget by an
``on_chunk`` callback (``PhaseBudget``): one seed, then ``--seeds`` seeds in one vmapped
program (rows over every device). Each stage has a share of ``--budget`` seconds. A phase
that would overrun its share stops after the chunk in progress; the rest of it is
extrapolated from the median of its chunks after the first (the first includes
compilation), and the output says so, phase by phase. The numbers go to $OUT/gpu_check.md
if OUT is set, otherwise to benchmarks/gpu_check.md (``--out`` overrides), rewritten after
each stage so that a run cut short keeps what it measured.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import sys
import time

import jax
import numpy as np

import toy
from toy import engine as E
from toy.config import PRESETS, make_config
from toy.phases import PHASES


def versions() -> dict:
  out = {"python": platform.python_version()}
  for name in ["jax", "jaxlib", "flax", "optax", "chex", "numpy", "jax-cuda13-plugin",
               "jax-cuda13-pjrt", "jax-cuda12-plugin", "jax-cuda12-pjrt"]:
    try:
      out[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      pass
  return out


def device_lines() -> list[str]:
  lines = []
  for d in jax.devices():
    try:
      limit = (d.memory_stats() or {}).get("bytes_limit")
    except Exception:  # some backends have no memory stats
      limit = None
    mem = f", {limit / 2**30:.0f} GiB usable" if limit else ""
    lines.append(f"{d.id}: {d.platform} {d.device_kind}{mem}")
  return lines


def refuse_cpu() -> None:
  """Exits 2 with one line unless the default backend is gpu (or GPU_CHECK_ALLOW_CPU=1)."""
  backend = jax.default_backend()
  if backend != "gpu" and os.environ.get("GPU_CHECK_ALLOW_CPU") != "1":
    print(f"gpu_check: FAILED: jax's default backend is '{backend}', not 'gpu' (devices: "
          f"{jax.devices()}); no GPU run was made. Rerun with JAX_PLATFORMS=cuda to see why "
          "CUDA did not start, or set GPU_CHECK_ALLOW_CPU=1 for a CPU smoke run.",
          file=sys.stderr, flush=True)
    sys.exit(2)


class PhaseBudget:
  """``timed_run``'s ``on_chunk``: times each phase of ``train``'s loop chunk by chunk and
  keeps it to its share of the stage's budget.

  A phase's share is set when it starts: what is left of ``budget_s`` after the later phases'
  compilations (estimated as the last first chunk), times its steps over the steps left.
  After each chunk the phase ends ("end_phase") when the next chunk would overrun the share
  (after at least 3 chunks; the first includes compilation) or the stage's budget (after at
  least 2). At a phase's last chunk, the next phase is not started ("stop") when, of
  ``start_by_s``, less is left than the last first chunk took.
  """

  def __init__(self, cfg, budget_s: float, start_by_s: float, first_chunk_s: float, t_start,
               log, model_built: list, clock=time.perf_counter):
    self.budget_s, self.start_by_s, self.first_chunk_s = budget_s, start_by_s, first_chunk_s
    self.clock = clock
    self.t_start, self.log, self.model_built = t_start, log, model_built
    self.steps = {p: E.phase_steps(cfg, p) for p in PHASES}
    self.phases: dict = {}
    self.setup_s = self.init_eval_s = float("nan")
    self.phase = None

  def elapsed(self, now: float) -> float:
    return now - self.t_start

  def open(self, phase: str, t_phase: float):
    i = PHASES.index(phase)
    later = len(PHASES) - i - 1
    left = self.budget_s - self.elapsed(t_phase)
    self.share = max(left - later * self.first_chunk_s, 0) * self.steps[phase] / sum(
        self.steps[p] for p in PHASES[i:])
    self.phase, self.t_phase, self.chunks, self.done, self.n = phase, t_phase, [], 0, None

  def overrun(self, now: float) -> bool:
    """Whether the phase's next chunk would overrun its share or the stage's budget."""
    chunks = self.chunks
    next_s = np.median(chunks[1:]) if len(chunks) > 1 else chunks[0]
    return (len(chunks) >= 3 and now - self.t_phase + next_s > self.share) or (
        len(chunks) >= 2 and self.elapsed(now) + next_s > self.budget_s)

  def close(self, now: float):
    """The phase in progress, from its chunks so far (the rest extrapolated)."""
    if self.phase is None or not self.chunks:
      return
    phase, chunks, done, n, n_total = self.phase, self.chunks, self.done, self.n, self.n_total
    measured = now - self.t_phase
    steady = float(np.median(chunks[1:])) if len(chunks) > 1 else float("nan")
    full = measured if done == n_total else measured + (-(-n_total // n) - len(chunks)) * steady
    self.first_chunk_s = chunks[0]
    self.phases[phase] = dict(steps=n_total, steps_run=done, measured_s=measured,
                              first_chunk_s=chunks[0], chunk_s=steady, chunk_steps=n,
                              full_s=full, complete=done == n_total)
    self.log(f"  {phase}: {done}/{n_total} steps in {measured:.1f} s (first chunk, compile "
             f"included, {chunks[0]:.1f} s; then {steady:.3f} s per {n}-step chunk)"
             + ("" if done == n_total else f"; stopped by the budget, full phase "
                f"extrapolated: {full:.1f} s"))
    self.phase = None

  def __call__(self, c: E.Chunk):
    now = self.clock()
    if not self.phases and self.phase is None:  # the first chunk: setup, evaluation behind
      t_first = now - c.wall_s
      self.setup_s = self.model_built[-1] - self.t_start
      self.init_eval_s = t_first - self.model_built[-1]
      self.log(f"  setup {self.setup_s:.1f} s, evaluation at initialisation (compile "
               f"included) {self.init_eval_s:.1f} s")
      self.open(c.phase, t_first)
    assert c.phase == self.phase, (c.phase, self.phase)
    self.chunks.append(c.wall_s)
    self.done += c.steps
    self.n, self.n_total = self.n or c.steps, c.n_total
    more = c.start + c.steps < c.n_total
    if more and not self.overrun(now):
      return None
    self.close(now)
    i = PHASES.index(c.phase) + 1
    if i == len(PHASES):
      return "stop" if more else None
    may_start = self.start_by_s - self.elapsed(self.clock())
    if may_start <= 0 or may_start < self.first_chunk_s:
      self.log(f"  {PHASES[i]} and later phases: not run, {max(may_start, 0):.0f} s left to "
               f"start a phase in (a first chunk took {self.first_chunk_s:.0f} s)")
      return "stop"
    self.open(PHASES[i], self.clock())
    return "end_phase" if more else None


def timed_run(cfg, budget_s: float, log, compile_hint_s: float = 0.0,
              start_by_s: float | None = None, setup_hint_s: float = 0.0) -> dict:
  """``train(cfg)`` timed: setup, the evaluation at initialisation, then each phase's chunks
  until the phase is done or its share of ``budget_s`` is spent (``PhaseBudget``, the loop's
  ``on_chunk``). A phase is not started when, of ``start_by_s`` (default ``budget_s``; more
  lets a stage borrow from the next so that all its phases run), less is left than its first
  chunk is expected to take (the last phase's first chunk, or ``compile_hint_s`` for the
  first). For the first phase that is judged before ``train`` starts, with ``setup_hint_s``
  as the expected setup and evaluation at initialisation (an earlier stage's).

  Setup is timed to the last model ``setup`` builds; the evaluation at initialisation, from
  there to the first chunk (phase 1's optimizer state included)."""
  if cfg.prior_episodes:
    raise ValueError("timed_run times one episode's phases: prior_episodes must be 0")
  t_start = time.perf_counter()
  start_by = budget_s if start_by_s is None else start_by_s
  mesh = E.row_mesh()
  model_built = []

  def make_model(*args):
    model = E.build_model(*args)
    model_built.append(time.perf_counter())
    return model

  timer = PhaseBudget(cfg, budget_s, start_by, compile_hint_s, t_start, log, model_built)
  may_start = start_by - setup_hint_s
  if may_start <= 0 or may_start < compile_hint_s:
    log(f"  {PHASES[0]} and later phases: not run, {max(may_start, 0):.0f} s left to start a "
        f"phase in after the expected {setup_hint_s:.0f} s of setup and evaluation (a first "
        f"chunk took {compile_hint_s:.0f} s)")
  else:
    try:
      E.train(cfg, make_model, progress=False, save=False, on_chunk=timer)
    except E.NonFiniteLossError as err:
      log(f"  note: {err}; timing stopped there")
      timer.close(time.perf_counter())
  phases = timer.phases
  total_full = timer.setup_s + timer.init_eval_s + sum(p["full_s"] for p in phases.values()) \
      if len(phases) == len(PHASES) else float("nan")
  return dict(seeds=cfg.n_seeds, devices=1 if mesh is None else mesh.size,
              setup_s=timer.setup_s, init_eval_s=timer.init_eval_s, phases=phases,
              measured_s=time.perf_counter() - t_start, full_s=total_full,
              complete=len(phases) == len(PHASES) and all(
                  p["complete"] for p in phases.values()))


def report(args, head: dict, stages: list[dict]) -> str:
  lines = [f"# `benchmarks/gpu_check.sh` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
           "", f"command: `{' '.join([os.path.basename(sys.argv[0])] + sys.argv[1:])}`; "
           f"preset `{args.preset}`, budget {args.budget:.0f} s", "",
           "versions: " + ", ".join(f"{k} {v}" for k, v in head["versions"].items()), "",
           f"backend: {head['backend']}; devices:", ""]
  lines += [f"- {d}" for d in head["devices"]]
  lines += ["", "| seeds | devices | phase | steps run / total | measured s | first chunk s "
            "(compile) | s per chunk after | full phase s |", "|---|---|---|---|---|---|---|---|"]
  for s in stages:
    for phase, p in s["phases"].items():
      full = f"{p['full_s']:.1f}" + ("" if p["complete"] else " (extrapolated)")
      lines.append(f"| {s['seeds']} | {s['devices']} | {phase} | {p['steps_run']} / "
                   f"{p['steps']} | {p['measured_s']:.1f} | {p['first_chunk_s']:.1f} | "
                   f"{p['chunk_s']:.3f} ({p['chunk_steps']} steps) | {full} |")
  lines += ["", "| seeds | setup + initial evaluation s | measured s | end to end s |",
            "|---|---|---|---|"]
  for s in stages:
    e2e = "not measured: phases not run" if len(s["phases"]) < len(PHASES) else (
        f"{s['full_s']:.1f}" + ("" if s["complete"] else " (phases extrapolated)"))
    pre = s["setup_s"] + s["init_eval_s"]
    lines.append(f"| {s['seeds']} | {'not run' if np.isnan(pre) else f'{pre:.1f}'} | "
                 f"{s['measured_s']:.1f} | {e2e} |")
  if len(stages) == 2:
    one, many = stages
    lines += ["", f"Throughput of {many['seeds']} vmapped seeds against one seed, per phase "
              f"(seeds x one seed's s per chunk / {many['seeds']} seeds' s per chunk, after "
              "compilation; above 1: seeds in one program beat seeds one after another):", ""]
    for phase in PHASES:
      a, b = one["phases"].get(phase), many["phases"].get(phase)
      if a and b and np.isfinite(a["chunk_s"]) and np.isfinite(b["chunk_s"]):
        lines.append(f"- {phase}: {many['seeds'] * a['chunk_s'] / b['chunk_s']:.2f}x")
  return "\n".join(lines) + "\n"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--preset", default="paper", choices=sorted(PRESETS))
  parser.add_argument("--seeds", type=int, default=8, help="rows of the vmapped stage")
  parser.add_argument("--budget", type=float, default=400.0,
                      help="seconds for both stages together (gpu_check.sh stops the "
                      "process at 470 s whatever happens)")
  parser.add_argument("--out", default=None, help="results file (default: $OUT/gpu_check.md "
                      "or benchmarks/gpu_check.md)")
  args = parser.parse_args(argv)
  if args.seeds < 1 or not args.budget > 0:
    parser.error("--seeds must be >= 1 and --budget > 0")
  t_start = time.perf_counter()
  head = {"versions": versions(), "backend": jax.default_backend(), "devices": device_lines()}
  print("versions:", ", ".join(f"{k} {v}" for k, v in head["versions"].items()), flush=True)
  print(f"backend {head['backend']}; devices:\n  " + "\n  ".join(head["devices"]), flush=True)
  refuse_cpu()
  toy.enable_compilation_cache()
  out = args.out or os.path.join(os.environ.get("OUT") or os.path.dirname(__file__),
                                 "gpu_check.md")
  log = lambda text: print(text, flush=True)
  stages = []
  # One seed gets 40% of the budget, and may start its phases until 80% of it (every phase
  # of it then runs, at least in part); the vmapped seeds get the rest.
  for seeds, share, start_by in [(1, 0.4, 0.8), (args.seeds, 1.0, 1.0)]:
    left = args.budget - (time.perf_counter() - t_start)
    cfg = make_config(args.preset, n_seeds=seeds, out_dir="")
    log(f"{seeds} seed(s), preset {args.preset}, {left * share:.0f} s of budget:")
    hint = max([p["first_chunk_s"] for s in stages for p in s["phases"].values()] or [0])
    setup_hint = max([s["setup_s"] + s["init_eval_s"] for s in stages] or [0])
    stages.append(timed_run(cfg, left * share, log, hint, left * start_by, setup_hint))
    text = report(args, head, stages)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
      f.write(text)
  print("\n" + text + f"written to {out}; total {time.perf_counter() - t_start:.0f} s",
        flush=True)


if __name__ == "__main__":
  main()
