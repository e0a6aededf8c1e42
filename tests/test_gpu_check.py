"""benchmarks/gpu_check.sh: refuses a CPU backend loudly; its CPU smoke path writes the results.

No test times anything: the numbers the smoke run writes are not checked, only that the
file holds every stage and phase; the budget logic is checked on a fake clock and on a budget
spent by phase 1.
"""
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "gpu_check.sh")


def run(args, **env):
  env = {**{k: v for k, v in os.environ.items() if k != "GPU_CHECK_ALLOW_CPU"},
         "JAX_PLATFORMS": "cpu", **env}
  return subprocess.run(["bash", SCRIPT, *args], env=env, capture_output=True, text=True,
                        timeout=600)


def test_cpu_backend_is_refused_with_a_message(tmp_path):
  out = tmp_path / "gpu_check.md"
  proc = run(["--preset", "tiny", "--out", str(out)])
  assert proc.returncode == 2, proc.stdout + proc.stderr
  assert "gpu_check: FAILED: jax's default backend is 'cpu', not 'gpu'" in proc.stderr
  assert "versions: " in proc.stdout and "jax " in proc.stdout  # printed before refusing
  assert not out.exists()


def test_cpu_smoke_run_writes_every_stage_and_phase(tmp_path):
  out = tmp_path / "gpu_check.md"
  proc = run(["--preset", "tiny", "--seeds", "2", "--budget", "100000", "--out", str(out)],
             GPU_CHECK_ALLOW_CPU="1")
  assert proc.returncode == 0, proc.stdout + proc.stderr
  text = out.read_text()
  assert "preset `tiny`" in text and "backend: cpu" in text
  for seeds in (1, 2):
    for phase in ("pretrain", "dpo", "mix"):
      assert f"| {seeds} | 1 | {phase} |" in text, text
  assert "Throughput of 2 vmapped seeds" in text and "- mix: " in text
  # a budget no run reaches: every phase runs whole
  assert "extrapolated" not in text and "not run" not in text


def _gpu_check():
  from benchmarks import gpu_check
  return gpu_check


def test_phase_budget_ends_phases_and_the_run_on_a_fake_clock():
  """The budget logic alone, on made-up chunk times: a phase ends once its next chunk would
  overrun its share (after 3 chunks) or the stage's budget (after 2); the rest of a phase
  ended early is extrapolated from its chunks after the first."""
  from toy.config import make_config
  from toy.engine import Chunk
  gc = _gpu_check()
  cfg = make_config("tiny")  # chunks of 3 steps; phases of 6, 16 and 16 steps
  now = [0.0]
  logs = []
  budget = gc.PhaseBudget(cfg, 100.0, 100.0, 0.0, 0.0, logs.append, [1.0], clock=lambda: now[0])

  def chunk(phase, start, wall, n_total):
    now[0] += wall
    return budget(Chunk(0, phase, start, min(3, n_total - start), n_total, wall, {}, {}, None))

  now[0] = 1.0  # the last model was built at 1 s; the first chunk starts there
  assert chunk("pretrain", 0, 10, 6) is None  # share 99 x 6/38: one chunk is never ended
  assert chunk("pretrain", 3, 1, 6) is None  # phase done; dpo may start (88 s left >= 10)
  assert budget.setup_s == 1.0 and budget.init_eval_s == 0.0
  # dpo's share: (100 - 12 - 1 later phase x 10 s first chunk) x 16/32 = 39 s
  assert chunk("dpo", 0, 20, 16) is None and chunk("dpo", 3, 1, 16) is None
  assert chunk("dpo", 6, 20, 16) == "end_phase"  # 41 s + 10.5 s median chunk > 39 s
  assert chunk("mix", 0, 30, 16) is None
  assert chunk("mix", 3, 12, 16) == "stop"  # after 2 chunks, 95 s + 12 s > the 100 s budget
  p = budget.phases
  assert list(p) == ["pretrain", "dpo", "mix"]
  assert p["pretrain"] == dict(steps=6, steps_run=6, measured_s=11.0, first_chunk_s=10,
                               chunk_s=1.0, chunk_steps=3, full_s=11.0, complete=True)
  assert p["dpo"] == dict(steps=16, steps_run=9, measured_s=41.0, first_chunk_s=20,
                          chunk_s=10.5, chunk_steps=3, full_s=41.0 + 3 * 10.5, complete=False)
  assert p["mix"]["steps_run"] == 6 and p["mix"]["full_s"] == 42.0 + 4 * 12
  assert sum("extrapolated" in line for line in logs) == 2


def test_timed_run_stops_before_a_phase_it_cannot_start():
  """A budget spent by phase 1: phases 2-3 are not started, and the engine's loop, stopped by
  the callback, returns (results incomplete); a first chunk longer than the time left to
  start in: the stage trains nothing."""
  from toy.config import make_config
  gc = _gpu_check()
  cfg = make_config("tiny", out_dir="")
  logs = []
  assert gc.timed_run(cfg, 10.0, logs.append, compile_hint_s=20.0)["phases"] == {}
  assert "pretrain and later phases: not run" in logs[-1]
  logs.clear()
  stage = gc.timed_run(cfg, 1e-3, logs.append)
  assert list(stage["phases"]) == ["pretrain"] and stage["phases"]["pretrain"]["complete"]
  assert stage["phases"]["pretrain"]["steps_run"] == 6 and not stage["complete"]
  assert any("dpo and later phases: not run" in line for line in logs), logs
