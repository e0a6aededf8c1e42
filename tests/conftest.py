"""Shared fixtures: the compile cache and a tiny config writing into a temporary folder."""
import os

import pytest

import toy

# Tests compile the same small programs as the previous run; the cache makes reruns fast.
toy.enable_compilation_cache(os.environ.get("TOY_JAX_CACHE"))


@pytest.fixture(scope="session")
def tiny_cfg(tmp_path_factory):
  from toy.config import make_config
  return make_config("tiny", out_dir=str(tmp_path_factory.mktemp("runs")))
