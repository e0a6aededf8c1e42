"""Sweeps resume after an interruption, never recompute finished points, never leave torn files."""
import json
import os
import types

import numpy as np
import pytest

from toy import io, sweep
from toy.config import Config, make_config
from toy.sweep import point_id


def _fake_train(calls, fail_on_call=None):
  """Stands in for train_many: records which configs it was asked to train."""
  def train_fn(cfgs, progress=False, save=False):
    calls.append([c.lr for c in cfgs])
    if fail_on_call is not None and len(calls) == fail_on_call:
      raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-sweep
    return [types.SimpleNamespace(summary=[{"seed": s, "lr": c.lr} for s in c.seeds],
                                  history=[]) for c in cfgs]
  return train_fn


def _grid():
  # two shapes (password_len) -> two groups; lr varies within a group
  return [make_config("tiny", password_len=L, lr=lr) for L in (3, 4) for lr in (1e-3, 2e-3)]


def test_interrupted_sweep_resumes_without_recomputing(tmp_path):
  out, calls = str(tmp_path), []
  with pytest.raises(KeyboardInterrupt):
    sweep.run_sweep(_grid(), out, train_fn=_fake_train(calls, fail_on_call=2), progress=False)
  finished = sorted(os.listdir(out))
  assert len(finished) == 2 and all(n.endswith(".json") and not n.startswith(".") for n in finished)
  calls.clear()
  records = sweep.run_sweep(_grid(), out, train_fn=_fake_train(calls), progress=False)
  assert calls == [[1e-3, 2e-3]]  # only the group that was interrupted
  assert [r["summary"][0]["lr"] for r in records] == [1e-3, 2e-3, 1e-3, 2e-3]
  calls.clear()
  sweep.run_sweep(_grid(), out, train_fn=_fake_train(calls), progress=False)
  assert calls == []  # everything on disk: nothing trains


def test_write_killed_midway_leaves_old_file_and_no_partial(tmp_path, monkeypatch):
  path = str(tmp_path / "point.json")
  io.write_json_atomic(path, {"v": 1})

  def torn_dump(obj, f):
    f.write('{"v": 2, "trunc')
    raise KeyboardInterrupt

  monkeypatch.setattr(io.json, "dump", torn_dump)
  with pytest.raises(KeyboardInterrupt):
    io.write_json_atomic(path, {"v": 2})
  monkeypatch.undo()
  assert json.load(open(path)) == {"v": 1}
  assert os.listdir(tmp_path) == ["point.json"]


def test_point_id_ignores_output_location_but_not_content():
  a = make_config("tiny")
  assert sweep.point_id(a) == sweep.point_id(a.replace(out_dir="elsewhere", run_name="x"))
  assert sweep.point_id(a) != sweep.point_id(a.replace(lr=2e-3))
  assert sweep.point_id(a) != sweep.point_id(a.replace(seed=1))


def test_every_committed_search_point_is_still_found_under_its_name():
  """Config fields added later must not re-hash stored points (resuming would retrain them)."""
  folder = os.path.join(os.path.dirname(__file__), "..", "results", "search")
  names = [n for n in os.listdir(folder) if n.endswith(".json")]
  assert names
  for name in names:
    with open(os.path.join(folder, name)) as f:
      stored = json.load(f)["config"]
    assert point_id(Config(**stored)) + ".json" == name


def test_every_stored_point_under_results_is_named_by_its_config():
  """Every stored sweep point (results/partial, results/ladder, ... : a record with a config,
  in a file named by 12 hex digits) recomputes to its own name from the config it holds, so
  that moving the engine's field lists out of Config's metadata left stored points' hashes
  as they were."""
  import glob
  import re
  root = os.path.join(os.path.dirname(__file__), "..", "results")
  stored = {}
  for path in glob.glob(os.path.join(root, "**", "*.json"), recursive=True):
    if re.fullmatch(r"[0-9a-f]{12}\.json", os.path.basename(path)):
      with open(path) as f:
        record = json.load(f)
      if "config" in record:  # a sweep point (not, e.g., a per-run measurement)
        stored[path] = record["config"]
  partial = os.path.join(root, "partial")
  assert sum(os.path.dirname(p) == partial for p in stored) >= 19  # experiments/partial.py's
  for path, config in stored.items():
    assert point_id(Config(**config)) + ".json" == os.path.basename(path), path
