"""A run's results (``RunResult``, its ``history_rows``) and the files a run or a sweep
writes, each all-or-nothing: run folders, CSV rows, atomic JSON; and a run folder read back
(``load_run``, through ``read_history`` and ``fill_from_npz``).

A run folder and a sweep point are written under a temporary name and renamed into place, so
a process killed at any moment leaves the old file or the whole new one, never a torn one.
``load_run`` rebuilds the model as the run built it (``toy.setup``), then fills it in.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import tempfile
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from toy.config import Config, validate
from toy.model import param_key, path_names  # noqa: F401 (path_names: also imported from here)
from toy.setup import apply_fn, setup


@dataclasses.dataclass
class RunResult:
  """Everything a run produced. Arrays carry a leading seed axis S."""
  cfg: Config
  history: list[dict]  # one row per seed per evaluation
  summary: list[dict]  # one dict per seed
  graphdef: object
  params: dict
  state: dict  # the model's state that is not a parameter (toy.setup.Setup.state)
  data: dict
  apply: Callable
  run_dir: str | None
  complete: bool = True  # False: stopped early by on_chunk or a time budget, not saved

  def seed_slice(self, i: int):
    take = lambda tree: jax.tree.map(lambda x: x[i], tree)
    return take(self.params), take(self.state), take(self.data)

  def model(self, i: int = 0) -> nnx.Module:
    """The trained model of seed index ``i`` as a live nnx module (for inspection)."""
    params, state, _ = self.seed_slice(i)
    return nnx.merge(self.graphdef, params, state)


def history_rows(seeds, config_of_row, episode, phase, step, global_step, metrics, evals, *,
                 tag_episodes) -> list[dict]:
  """One history row per seed after a chunk: its step, the mean of each training metric over
  the chunk's valid steps (``metrics``, row x step) and each evaluation (``evals``, per row).
  Rows past ``seeds`` (padding) are left out."""
  valid = np.asarray(metrics.get("valid", True), dtype=bool)
  train_means = {k: np.where(valid, np.asarray(v), 0).sum(-1) / np.maximum(valid.sum(-1), 1)
                 for k, v in metrics.items() if k != "valid"}
  evals = {k: np.asarray(v) for k, v in evals.items()}
  rows = []
  for i, seed in enumerate(seeds):
    row = {"config": config_of_row[i], "seed": seed, "phase": phase, "step": step,
           "global_step": global_step}
    if tag_episodes:
      row["episode"] = episode
    row.update({f"train/{k}": float(v[i]) for k, v in train_means.items()})
    row.update({k: float(v[i]) for k, v in evals.items()})
    rows.append(row)
  return rows


def default_run_name(cfg: Config) -> str:
  # a checkpoint's runs are named by its folder, beside the from-scratch ones
  model = os.path.basename(os.path.normpath(cfg.init_from)) if cfg.init_from else cfg.model
  return cfg.run_name or f"{model}_{cfg.preset}_seed{cfg.seed}x{cfg.n_seeds}"


def save_run(result: RunResult) -> str:
  """Writes config.json, metrics.csv, summary.json, params.npz of a ``RunResult``
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
              for p, v in jax.tree_util.tree_flatten_with_path(result.state)[0]}
    if tables:
      np.savez(os.path.join(tmp, "tables.npz"), **tables)
    if os.path.exists(final):
      shutil.rmtree(final)
    os.replace(tmp, final)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return final


def load_run(run_dir: str) -> RunResult:
  """A run folder written by ``save_run`` -> a seed-stacked ``RunResult``.

  The data and the model skeleton are rebuilt from config.json by ``setup`` exactly as the
  run built them (same seeds, ``build_model``), then every parameter is filled from
  params.npz (the shapes and the set of names must match), and the rest of the state (the
  toy's trie and gate code) from tables.npz where the folder has one; history and summary
  come from metrics.csv and summary.json when present. A toy's ``toy_weights`` is ignored
  (params.npz and tables.npz hold the trained weights and the code it ran with).
  """
  with open(os.path.join(run_dir, "config.json")) as f:
    cfg = validate(Config(**json.load(f)))
  st = setup([cfg.replace(toy_weights="")])
  graphdef, state, data = st.graphdef, st.state, st.data
  params = fill_from_npz(st.params, os.path.join(run_dir, "params.npz"), run_dir)
  if os.path.exists(os.path.join(run_dir, "tables.npz")):
    state = fill_from_npz(state, os.path.join(run_dir, "tables.npz"), run_dir)
  history, summary = [], []
  if os.path.exists(os.path.join(run_dir, "metrics.csv")):
    history = read_history(os.path.join(run_dir, "metrics.csv"))
  if os.path.exists(os.path.join(run_dir, "summary.json")):
    with open(os.path.join(run_dir, "summary.json")) as f:
      summary = json.load(f)
  return RunResult(cfg, history, summary, graphdef, params, state, data, apply_fn(graphdef),
                   run_dir)


def read_history(path: str) -> list[dict]:
  """The rows of a metrics.csv written by ``save_run``: numbers as floats (seed, step and
  global_step as ints), empty cells left out."""
  def value(v):
    try:
      return float(v)
    except ValueError:
      return v
  with open(path, newline="") as f:
    rows = [{k: value(v) for k, v in r.items() if v != ""} for r in csv.DictReader(f)]
  for r in rows:
    for k in ("seed", "step", "global_step"):
      if k in r:
        r[k] = int(r[k])
  return rows


def fill_from_npz(tree, path: str, run_dir: str):
  """``tree`` with every leaf replaced by the array of the same name in the .npz at ``path``
  (the set of names and each shape must match), as ``save_run`` named them."""
  with np.load(path) as stored:
    stored = dict(stored)
  leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
  names = [param_key(p) for p, _ in leaves]
  missing = [n for n in names if n not in stored]
  extra = sorted(set(stored) - set(names))
  if missing or extra:
    raise ValueError(f"{path}: does not match the model of {run_dir}/config.json "
                     f"(missing {missing[:5]}, unexpected {extra[:5]})")
  filled = []
  for name, (_, leaf) in zip(names, leaves):
    if stored[name].shape != leaf.shape:
      raise ValueError(f"{path}: {name} has shape {stored[name].shape}, the config's model "
                       f"{leaf.shape}")
    filled.append(jnp.asarray(stored[name], leaf.dtype))
  return jax.tree.unflatten(treedef, filled)


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
