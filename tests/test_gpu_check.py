"""benchmarks/gpu_check.sh: refuses a CPU backend loudly; its CPU smoke path writes the results.

Neither test times anything: the numbers the smoke run writes are not checked, only that the
file holds every stage and phase.
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
