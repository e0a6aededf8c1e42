"""The runs of the tests that compare two programs to the bit or to 1e-5, trained under XLA's
default compile in a process of their own: test_episodes' golden histories and test_savings'
padded chunks.

The rest of the suite compiles with LLVM's optimisations off (conftest.py). That rounds two
different programs differently, and the attention's key bias, whose gradient is zero up to
rounding, then drifts by Adam's normalised noise (2.8e-4 in 16 steps). Users run the default
compile and these claims are about it. conftest.py starts this script as soon as the tests are
collected, so that it trains beside them:

    python tests/default_compile.py OUT   # writes OUT/runs.pkl, or OUT/failed with the error
"""
import os
import pickle
import sys
import traceback

import jax
import numpy as np

import toy
from toy.config import make_config
from toy.engine import train

# 2 seeds: the golden histories' transformer program, which the padded-chunks comparison shares.
TINY = make_config("tiny", n_seeds=2)


def run(cfg) -> dict:
  result = train(cfg, progress=False, save=False)
  return {"params": [np.asarray(x) for x in jax.tree.leaves(result.params)],
          "history": result.history}


def main(out: str) -> None:
  toy.enable_compilation_cache()
  runs = {"tiny": run(TINY), "toy": run(make_config("tiny", model="toy", n_seeds=2)),
          "eval_every_1": run(TINY.replace(eval_every=1))}
  with open(os.path.join(out, "runs.tmp"), "wb") as f:
    pickle.dump(runs, f)
  os.replace(os.path.join(out, "runs.tmp"), os.path.join(out, "runs.pkl"))


if __name__ == "__main__":
  try:
    main(sys.argv[1])
  except BaseException:
    with open(os.path.join(sys.argv[1], "failed"), "w") as f:
      f.write(traceback.format_exc())
    raise
