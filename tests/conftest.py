"""Shared fixtures: the compile cache, the suite's fast compile, a tiny config writing into a
temporary folder, and the runs trained under the default compile (tests/default_compile.py)."""
import os
import pickle
import subprocess
import sys
import tempfile
import time

# The tests' programs are tiny: XLA's compile time, not their run time, is what the suite
# waits on. Without LLVM's optimisations and the new fusion emitters a first compile takes
# half as long and on one core (a tiny run: 30 s on 1.4 cores -> 15 s on 1). Two different
# programs then round differently, so the few tests that compare two programs to the bit read
# runs trained under the default compile (tests/default_compile.py). One LLVM module a program,
# not split for codegen threads that 2 busy cores cannot run: 1.09-1.18x less CPU
# (benchmarks/compile_flags.py). Set before jax starts its backend; the caller's own XLA_FLAGS
# (kept once, for xdist's workers) come last and win.
FAST_COMPILE = ("--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false "
                "--xla_cpu_parallel_codegen_split_count=1")
USER_XLA_FLAGS = os.environ.setdefault("TOY_TESTS_USER_XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
os.environ["XLA_FLAGS"] = f"{FAST_COMPILE} {USER_XLA_FLAGS}".strip()

import pytest

import toy

# Tests compile the same small programs as the previous run; the cache makes reruns fast. Kept
# down to the smallest: the setup's ~100 eager ops a process compiles are then compiled once for
# both xdist workers and the subprocesses (a tiny run in a new process, cache warm: 14 s -> 10 s).
os.environ.setdefault("TOY_JAX_CACHE_MIN_COMPILE_S", "0")
toy.enable_compilation_cache(os.environ.get("TOY_JAX_CACHE"))


@pytest.fixture(scope="session")
def tiny_cfg(tmp_path_factory):
  from toy.config import make_config
  return make_config("tiny", out_dir=str(tmp_path_factory.mktemp("runs")))


DEFAULT_COMPILE = os.path.join(os.path.dirname(__file__), "default_compile.py")
_default_compile: subprocess.Popen | None = None


# The slowest files, slowest first (their summed --durations from a fresh clone with an empty
# compile cache: 55 s down to 7 s), run before the rest. xdist hands each worker the next file
# when it is done, so a long file handed out last leaves the other worker idle: in xdist's own
# order (by test count) test_shard's 42 s ran last. The two files that read the default-compile
# runs come after ten others, by when tests/default_compile.py has finished.
SLOW_FIRST = ("test_engine.py", "test_ladder_transformer.py", "test_shard.py",
              "test_mechanism.py", "test_gates.py", "test_inspect.py", "test_gpu_check.py",
              "test_convert.py", "test_toy_vs_learned.py", "test_lower_lr.py", "test_episodes.py",
              "test_init_from.py", "test_ladder.py", "test_savings.py", "test_inspect_acquired.py",
              "test_leakage.py")


def pytest_configure(config):
  # One folder a session: pytest-xdist's workers inherit it from the process that starts them.
  if "TOY_DEFAULT_COMPILE_OUT" not in os.environ:
    os.environ["TOY_DEFAULT_COMPILE_OUT"] = tempfile.mkdtemp(prefix="toy_default_")
  # --dist loadfile then hands out files in SLOW_FIRST's order, not by test count.
  if hasattr(config.option, "loadscopereorder"):
    config.option.loadscopereorder = False


def _needs_default_compile(item) -> bool:
  return "default_compile_runs" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(config, items):
  """Orders the files as SLOW_FIRST says, and starts tests/default_compile.py once a session,
  as soon as a collected test needs it, so that it trains while the other tests run (the first
  xdist worker to get here starts it)."""
  global _default_compile
  rank = {name: i for i, name in enumerate(SLOW_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable within a file
  if not any(_needs_default_compile(item) for item in items):
    return
  out = os.environ["TOY_DEFAULT_COMPILE_OUT"]
  try:
    os.close(os.open(os.path.join(out, "started"), os.O_CREAT | os.O_EXCL))
  except FileExistsError:
    return
  with open(os.path.join(out, "log.txt"), "w") as log:
    _default_compile = subprocess.Popen([sys.executable, DEFAULT_COMPILE, out],
                                        env={**os.environ, "XLA_FLAGS": USER_XLA_FLAGS},
                                        stdout=log, stderr=subprocess.STDOUT)


def pytest_unconfigure(config):
  # Waited for, not killed: another xdist worker may still be reading it (^C reaches it too).
  if _default_compile is not None:
    _default_compile.wait()


@pytest.fixture(scope="session")
def default_compile_runs() -> dict:
  """tests/default_compile.py's runs: {name: {"params": leaves, "history": rows}}."""
  out = os.environ["TOY_DEFAULT_COMPILE_OUT"]
  done, failed = os.path.join(out, "runs.pkl"), os.path.join(out, "failed")
  deadline = time.monotonic() + 1800
  while not os.path.exists(done):
    crashed = _default_compile is not None and _default_compile.poll() not in (None, 0)
    if os.path.exists(failed) or crashed or time.monotonic() > deadline:
      with open(os.path.join(out, "log.txt")) as f:
        pytest.fail(f"tests/default_compile.py did not finish:\n{f.read()[-3000:]}")
    time.sleep(0.5)
  with open(done, "rb") as f:
    return pickle.load(f)
