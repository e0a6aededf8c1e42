"""Rows: the engine's leading axis (seeds x sweep points), laid out over devices and shared.

With several devices a phase's rows are padded to a multiple of their number and split over
them (``row_mesh``, ``padded_rows``, ``place_rows``; README, "Scale"); with one device nothing
here changes an array. Rows whose configs differ only in fields that phase 3 alone reads train
phases 1-2 once (``shared_rows``).
"""
from __future__ import annotations

import dataclasses
from typing import Iterable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def row_mesh(devices=None) -> Mesh | None:
  """A 1-D mesh, axis 'rows', over every device (all processes'); None with one device, where
  the engine then runs exactly as it would without sharding."""
  devices = jax.devices() if devices is None else list(devices)
  if len(devices) == 1:
    return None
  # Auto, not make_mesh's Explicit default: shardings are propagated by the compiler and the
  # programs' code stays the single-device code.
  return Mesh(np.asarray(devices), ("rows",), axis_types=(jax.sharding.AxisType.Auto,))


def padded_rows(rows, n_rows: int, mesh: Mesh | None):
  """``rows`` (indices; None: 0 .. n_rows-1) repeated at the end to a multiple of the mesh's
  size; None when that is every row unpadded (nothing to gather)."""
  idx = np.arange(n_rows) if rows is None else np.asarray(rows)
  pad = 0 if mesh is None else -len(idx) % mesh.size
  if rows is None and pad == 0:
    return None
  return np.concatenate([idx, np.repeat(idx[-1:], pad)])


def gather(tree, idx):
  """The rows ``idx`` of every leaf (None: the tree itself)."""
  return tree if idx is None else jax.tree.map(lambda x: x[idx], tree)


def place_rows(tree, mesh: Mesh | None):
  """Every leaf's leading (row) axis split over the mesh's devices, the rest replicated."""
  if mesh is None:
    return tree
  rows, whole = NamedSharding(mesh, P("rows")), NamedSharding(mesh, P())

  def place(x):
    sharding = rows if np.ndim(x) else whole
    if jax.process_count() > 1 and getattr(x, "is_fully_addressable", True):
      # A process-local value, the same on every process (rows derive from the seeds):
      # each process supplies its own devices' shards.
      host = np.asarray(x)
      return jax.make_array_from_callback(host.shape, sharding, lambda i: host[i])
    return jax.device_put(x, sharding)

  return jax.tree.map(place, tree)


def place_fields(obj, names: Iterable[str], mesh: Mesh | None):
  """``obj``'s attributes ``names`` laid out over ``mesh`` (in place); returns ``obj``."""
  if mesh is not None:
    for name in names:
      setattr(obj, name, place_rows(getattr(obj, name), mesh))
  return obj


def to_host(tree):
  """NumPy copies of a tree's leaves, gathered from every process's devices."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    return jax.tree.map(lambda x: np.asarray(multihost_utils.process_allgather(x, tiled=True)),
                        tree)
  return jax.tree.map(np.asarray, tree)


def shared_rows(row_cfgs: list, phase3_only: Iterable[str]) -> tuple[list[int], np.ndarray]:
  """Rows identical through phases 1-2: (the first row of each group, each row's group).

  Two rows are identical there when their configs (each for its own seed) differ only in
  ``phase3_only`` fields: the same data, initialisation, tables and training keys.
  """
  phase3_only = set(phase3_only)
  blank = {f.name: f.default for f in dataclasses.fields(row_cfgs[0]) if f.name in phase3_only}
  keys = [c.replace(n_seeds=1, out_dir="", run_name="", **blank) for c in row_cfgs]
  first: list[int] = []
  expand = []
  for i, k in enumerate(keys):
    j = next((g for g, f in enumerate(first) if keys[f] == k), None)
    if j is None:
      first.append(i)
      j = len(first) - 1
    expand.append(j)
  return first, np.asarray(expand)
