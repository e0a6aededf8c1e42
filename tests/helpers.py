"""Helpers shared by the tests that compare parameter snapshots between phases."""
import jax
import numpy as np


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
