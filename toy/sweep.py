"""Resumable sweeps: one stored JSON per finished config.

A sweep is a list of configs. Each finished config is one JSON file, named by a hash of the
config, written to a temporary name and renamed into place: a sweep killed at any moment
leaves only whole files, and a rerun skips them. Configs that differ only in seeds,
learning rate or loss weights train together in one vmapped program (``train_many``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Callable

from toy.config import Config, role_fields
from toy.engine import train_many
from toy.setup import batch_groups
from toy.io import write_json_atomic

# Where a run is written does not change what it is.
_NOT_IDENTITY = tuple(role_fields("not_identity"))
# Fields added after points were stored: at their default they leave the hash as it was, so
# stored points stay valid (evaluating fewer prefixes does not change training; stored
# histories hold both prefixes, a superset, whose values can differ from a rerun's by float
# rounding, about 1e-7, because the evaluation batch was twice as large).
_HASHED_IF_NOT = {name: getattr(Config, name) for name in role_fields("hash_default")}


def point_id(cfg: Config) -> str:
  fields = {k: v for k, v in dataclasses.asdict(cfg).items()
            if k not in _NOT_IDENTITY and _HASHED_IF_NOT.get(k, object()) != v}
  return hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


def point_path(out_dir: str, cfg: Config) -> str:
  return os.path.join(out_dir, f"{point_id(cfg)}.json")


def run_sweep(cfgs: list[Config], out_dir: str, *, train_fn: Callable = train_many,
              progress: bool = True, keep_history: bool = True,
              on_result: Callable | None = None) -> list[dict]:
  """Trains every config not already on disk; returns one record per config, in order.

  A record is {"config": {...}, "summary": [per-seed dicts], "history": [rows]}.
  ``on_result(cfg, result)`` sees each fresh RunResult before it is written (e.g. to add
  per-password measurements to the record, e.g. ``toy.measure.law_record``).
  """
  todo = [cfg for cfg in cfgs if not is_stored(out_dir, cfg)]
  groups = [[todo[i] for i in group] for group in batch_groups(todo)]
  for gi, group in enumerate(groups):
    if progress:
      print(f"sweep {out_dir}: group {gi + 1}/{len(groups)}, {len(group)} configs, "
            f"{sum(c.n_seeds for c in group)} rows")
    for cfg, result in zip(group, train_fn(group, progress=progress, save=False)):
      record = {"config": dataclasses.asdict(cfg), "summary": result.summary,
                "history": result.history if keep_history else []}
      if on_result is not None:
        record.update(on_result(cfg, result) or {})
      write_json_atomic(point_path(out_dir, cfg), record)
  return [load_point(out_dir, cfg) for cfg in cfgs]


def load_point(out_dir: str, cfg: Config) -> dict:
  with open(point_path(out_dir, cfg)) as f:
    return json.load(f)


def is_stored(out_dir: str, cfg: Config) -> bool:
  return os.path.exists(point_path(out_dir, cfg))


def stored_folder(cfg: Config, folders) -> str | None:
  """The first of ``folders`` that holds ``cfg``'s point (experiments read each other's stored
  points: the same config has the same file name); None where none does."""
  return next((f for f in folders if is_stored(f, cfg)), None)
