"""Files a run or a sweep writes, each all-or-nothing: run folders, CSV rows, atomic JSON.

A run folder and a sweep point are written under a temporary name and renamed into place, so
a process killed at any moment leaves the old file or the whole new one, never a torn one.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile

import jax
import numpy as np

from toy.config import Config


def path_names(path) -> tuple:
  """A parameter's tree path as plain names, e.g. ('blocks', 0, 'attn', 'qkv', 'kernel')."""
  return tuple(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))) for k in path)


def param_key(path) -> str:
  """A parameter's name in params.npz, e.g. 'blocks/0/attn/qkv/kernel'."""
  return "/".join(map(str, path_names(path)))


def default_run_name(cfg: Config) -> str:
  # a checkpoint's runs are named by its folder, beside the from-scratch ones
  model = os.path.basename(os.path.normpath(cfg.init_from)) if cfg.init_from else cfg.model
  return cfg.run_name or f"{model}_{cfg.preset}_seed{cfg.seed}x{cfg.n_seeds}"


def save_run(result) -> str:
  """Writes config.json, metrics.csv, summary.json, params.npz of a ``toy.engine.RunResult``
  into ``cfg.out_dir/<run name>``, and tables.npz where the model has state that is not a
  parameter (the toy's trie and gate code: a code loaded from an edited weights folder
  cannot be rebuilt from the config); all-or-nothing via rename. Returns the folder."""
  cfg = result.cfg
  final = os.path.join(cfg.out_dir, default_run_name(cfg))
  os.makedirs(cfg.out_dir, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=".partial-", dir=cfg.out_dir)
  try:
    with open(os.path.join(tmp, "config.json"), "w") as f:
      f.write(cfg.to_json())
    write_csv(os.path.join(tmp, "metrics.csv"), result.history)
    with open(os.path.join(tmp, "summary.json"), "w") as f:
      json.dump(result.summary, f, indent=2)
    flat = {param_key(p): np.asarray(v)
            for p, v in jax.tree_util.tree_flatten_with_path(result.params)[0]}
    np.savez(os.path.join(tmp, "params.npz"), **flat)
    tables = {param_key(p): np.asarray(v)
              for p, v in jax.tree_util.tree_flatten_with_path(result.rest)[0]}
    if tables:
      np.savez(os.path.join(tmp, "tables.npz"), **tables)
    if os.path.exists(final):
      shutil.rmtree(final)
    os.replace(tmp, final)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return final


def write_csv(path: str, rows: list[dict]):
  """One CSV row per dict; the columns are every key, in order of first appearance."""
  fields = list(dict.fromkeys(k for r in rows for k in r))
  with open(path, "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)


def write_json_atomic(path: str, obj) -> None:
  """``json.dump`` to a temporary file beside ``path``, synced, then renamed over it."""
  folder = os.path.dirname(path) or "."
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=".partial-", suffix=".json", dir=folder)
  try:
    with os.fdopen(fd, "w") as f:
      json.dump(obj, f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
