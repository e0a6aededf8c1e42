"""Helpers shared by the tests: parameter snapshots between phases, a jitted toy forward pass,
NumPy model inputs and history comparisons."""
import functools
import json
import os

import jax
import numpy as np
from flax import nnx

from toy import data as data_lib


def leaves(tree) -> dict:
  """{path, e.g. "['blocks'][0]['attn']['qkv']['kernel']": NumPy array} of a parameter tree."""
  return {jax.tree_util.keystr(p): np.asarray(v)
          for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def assert_only_these_stayed(before: dict, after: dict, still: list, when: str):
  """The leaves named in ``still`` are bitwise unchanged from ``before`` to ``after``; every
  other leaf moved. Both lists must be non-empty."""
  moved = [k for k in before if k not in still]
  assert still and moved
  for k in still:
    assert np.array_equal(before[k], after[k]), f"{k} moved {when}"
  for k in moved:
    assert not np.array_equal(before[k], after[k]), f"{k} did not learn {when}"


def phase2_frozen_keys(keys, n_layers: int) -> list:
  """The transformer's leaves PROTOCOL's phase 2 freezes (``leaves`` keys): the upper half of
  the blocks, the final LayerNorm and the unembedding."""
  return [k for k in keys if "unembed" in k or "final_ln" in k
          or any(f"['blocks'][{i}]" in k for i in range(n_layers // 2, n_layers))]


def model_inputs(cfg, pw, which):
  """NumPy twin of toy.data.model_inputs (eager JAX would compile per shape)."""
  pw = np.asarray(pw, np.int32)
  prefix = np.full((len(pw), 1), data_lib.prefix_token(cfg, which), np.int32)
  return np.concatenate([prefix, pw[:, :-1]], axis=1)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _jit_call(graphdef, params, state, tokens, method):
  model = nnx.merge(graphdef, params, state)
  return model(tokens) if method == "call" else model.parts(tokens)


def forward(model, tokens, method="call"):
  """model(tokens) or model.parts(tokens) under one jit: a compile per shape is far cheaper
  than eager op-by-op."""
  graphdef, params, state = nnx.split(model, nnx.Param, ...)
  return jax.tree.map(np.asarray, _jit_call(graphdef, params, state, tokens, method))


def assert_histories_close(got, want, **tol):
  """The same rows (phase, keys), every metric close."""
  assert len(got) == len(want)
  for g, w in zip(got, want):
    assert g.keys() == w.keys() and g["phase"] == w["phase"]
    keys = [k for k in w if k != "phase"]
    np.testing.assert_allclose([g[k] for k in keys], [w[k] for k in keys], **tol,
                               err_msg=f"{w['phase']} step {w['step']} seed {w['seed']}")


def edit_scalars_json(folder, fn):
  """Applies ``fn`` to a toy weights folder's scalars.json in place (a hand edit)."""
  from toy import mechanism_io as MIO
  path = os.path.join(folder, MIO.SCALARS_FILE)
  with open(path) as f:
    scalars = json.load(f)
  fn(scalars)
  with open(path, "w") as f:
    json.dump(scalars, f)
