"""The prepared GPU check: versions, devices, one seed end to end and 8 seeds vmapped, in time.

  bash benchmarks/gpu_check.sh                    # what to run on a GPU machine (README, "Scale")
  PYTHONPATH=. python benchmarks/gpu_check.py [--preset paper] [--seeds 8] [--budget 400]
  GPU_CHECK_ALLOW_CPU=1 PYTHONPATH=. python benchmarks/gpu_check.py --preset tiny --seeds 2

Exits with status 2 and a one-line message, before any work, unless jax's default backend is
gpu; GPU_CHECK_ALLOW_CPU=1 lets it run on CPU (the smoke test, tests/test_gpu_check.py).

Two stages, each the engine's own loop of ``train_many`` for one config (setup, the
evaluation at initialisation, then each phase's compiled chunks, with the host reading each
chunk's metrics as ``train`` does): one seed, then ``--seeds`` seeds in one vmapped program
(rows over every device). Each stage has a share of ``--budget`` seconds. A phase that would
overrun its share stops after the chunk in progress; the rest of it is extrapolated from the
median of its chunks after the first (the first includes compilation), and the output says
so, phase by phase. The numbers go to $OUT/gpu_check.md if OUT is set, otherwise to
benchmarks/gpu_check.md (``--out`` overrides), rewritten after each stage so that a run cut
short keeps what it measured.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
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


def sync(tree):
  return jax.block_until_ready(tree)


def timed_run(cfg, budget_s: float, log, compile_hint_s: float = 0.0,
              start_by_s: float | None = None) -> dict:
  """``train_many([cfg])``'s work, timed: setup, the evaluation at initialisation, then each
  phase's chunks until the phase is done or its share of ``budget_s`` is spent. A phase is
  not started when, of ``start_by_s`` (default ``budget_s``; more lets a stage borrow from
  the next so that all its phases run), less is left than its first chunk is expected to
  take (the last phase's first chunk, or ``compile_hint_s`` for the first)."""
  t_start = time.perf_counter()
  elapsed = lambda: time.perf_counter() - t_start
  st = E.setup([cfg])
  mesh = E.row_mesh()
  rows = E.padded_rows(None, len(st.seeds), mesh)
  gather = lambda tree: tree if rows is None else jax.tree.map(lambda x: x[rows], tree)
  params = sync(gather(st.params))
  setup_s = elapsed()
  t0 = time.perf_counter()
  E.to_host(E.evaluate_seeds(*E.place_rows(gather((params, st.rest, st.data)), mesh),
                             cfg=E.compile_key(cfg), graphdef=st.graphdef))
  init_eval_s = time.perf_counter() - t0
  log(f"  setup {setup_s:.1f} s, evaluation at initialisation (compile included) "
      f"{init_eval_s:.1f} s")
  # Each phase's share of what is left after the later phases' compilations (estimated as
  # the last first chunk): its steps over the steps left. Every phase runs at least 3 chunks
  # (the first includes compilation) unless the stage's budget is spent.
  steps = {p: E.phase_steps(cfg, p) for p in PHASES}
  phases, ref, first_chunk_s = {}, None, compile_hint_s
  for i, phase in enumerate(PHASES):
    later = len(PHASES) - i - 1
    left = budget_s - elapsed()
    may_start = (budget_s if start_by_s is None else start_by_s) - elapsed()
    if may_start <= 0 or may_start < first_chunk_s:
      log(f"  {phase} and later phases: not run, {max(may_start, 0):.0f} s left to start "
          f"a phase in (a first chunk took {first_chunk_s:.0f} s)")
      break
    share = max(left - later * first_chunk_s, 0) * steps[phase] / sum(
        steps[p] for p in PHASES[i:])
    t_phase = time.perf_counter()
    ph = E.place_phase(E.start_phase(st, cfg, phase, params, ref, rows), mesh)
    n = min(cfg.eval_every, ph.n_total)
    chunks, done = [], 0
    for start in range(0, ph.n_total, n):
      next_s = np.median(chunks[1:]) if len(chunks) > 1 else (chunks[0] if chunks else 0)
      if len(chunks) >= 3 and time.perf_counter() - t_phase + next_s > share:
        break
      if len(chunks) >= 2 and elapsed() + next_s > budget_s:
        break
      t0 = time.perf_counter()
      metrics, _ = E.to_host(ph.run(start, n))  # the host reads each chunk, as train does
      chunks.append(time.perf_counter() - t0)
      done += min(n, ph.n_total - start)
      if not np.isfinite(metrics["loss"]).all():
        log(f"  note: non-finite loss in phase {phase} (timing continues)")
    params = ph.params
    if phase == "pretrain":
      ref = jax.tree.map(jnp.copy, params)
    sync(params)
    measured = time.perf_counter() - t_phase
    n_chunks = -(-ph.n_total // n)
    steady = float(np.median(chunks[1:])) if len(chunks) > 1 else float("nan")
    full = measured if done == ph.n_total else measured + (n_chunks - len(chunks)) * steady
    first_chunk_s = chunks[0]
    phases[phase] = dict(steps=ph.n_total, steps_run=done, measured_s=measured,
                         first_chunk_s=chunks[0], chunk_s=steady, chunk_steps=n,
                         full_s=full, complete=done == ph.n_total)
    log(f"  {phase}: {done}/{ph.n_total} steps in {measured:.1f} s (first chunk, compile "
        f"included, {chunks[0]:.1f} s; then {steady:.3f} s per {n}-step chunk)"
        + ("" if done == ph.n_total else f"; stopped by the budget, full phase "
           f"extrapolated: {full:.1f} s"))
  total_measured = elapsed()
  total_full = setup_s + init_eval_s + sum(p["full_s"] for p in phases.values()) \
      if len(phases) == len(PHASES) else float("nan")
  return dict(seeds=cfg.n_seeds, devices=1 if mesh is None else mesh.size, setup_s=setup_s,
              init_eval_s=init_eval_s, phases=phases, measured_s=total_measured,
              full_s=total_full, complete=len(phases) == len(PHASES) and all(
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
    lines.append(f"| {s['seeds']} | {s['setup_s'] + s['init_eval_s']:.1f} | "
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
    stages.append(timed_run(cfg, left * share, log, hint, left * start_by))
    text = report(args, head, stages)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
      f.write(text)
  print("\n" + text + f"written to {out}; total {time.perf_counter() - t_start:.0f} s",
        flush=True)


if __name__ == "__main__":
  main()
