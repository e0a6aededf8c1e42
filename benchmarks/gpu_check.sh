#!/usr/bin/env bash
# The prepared GPU check (README, "Scale"), for a GPU machine that may have no network: runs
# the package from this checkout (PYTHONPATH, nothing installed) on the machine's own CUDA
# jax, flax, optax and chex. Prints versions and devices, exits non-zero at once if jax's
# default backend is not gpu, then times one `paper` seed end to end and 8 seeds vmapped
# (benchmarks/gpu_check.py says how). Results: $OUT/gpu_check.md if OUT is set, otherwise
# benchmarks/gpu_check.md. Arguments go to gpu_check.py, e.g.
#   bash benchmarks/gpu_check.sh                          # paper preset, 1 seed then 8
#   GPU_CHECK_ALLOW_CPU=1 bash benchmarks/gpu_check.sh --preset tiny --seeds 2   # CPU smoke
# Under 8 minutes on one H100/H200: gpu_check.py keeps to --budget (400 s by default) by
# stopping phases early and extrapolating them (said in its output), and the process is
# stopped here at 470 s whatever happens (exit 124).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TOY_JAX_CACHE="${TOY_JAX_CACHE:-${TMPDIR:-/tmp}/toy-gpu-check-cache}"
PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"
echo "checkout: $PWD ($(git rev-parse --short HEAD 2>/dev/null || echo 'not a git checkout'))"
if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
else
  echo "nvidia-smi: not found"
fi
if command -v timeout > /dev/null; then
  exec timeout --kill-after=10 470 "$PYTHON" benchmarks/gpu_check.py "$@"
fi
echo "timeout: not found; only gpu_check.py's own --budget bounds the run"
exec "$PYTHON" benchmarks/gpu_check.py "$@"
