"""experiments/partial.py: its stored points, and drawing its tables and figures from them."""
import json
import os

import numpy as np

from experiments import partial
from toy.points import PARTIAL_STAGES
from toy.sweep import is_stored, load_point, point_id

ROOT = os.path.join(os.path.dirname(__file__), "..")
STORED = os.path.join(ROOT, "results", "partial")


def test_every_stage_point_is_stored_with_per_seed_law_values():
  for stage, points in PARTIAL_STAGES.items():
    for label, cfg in points:
      assert is_stored(STORED, cfg), f"{stage}: {label} ({point_id(cfg)}) is not stored"
      record = load_point(STORED, cfg)
      assert record["config"]["n_seeds"] == 8
      assert len(record["summary"]) == 8
      assert all(len(v) == 8 for v in record["law"].values())
      # G is the ratio of the two stored law slopes, seed by seed
      np.testing.assert_allclose(
          record["law"]["G"],
          np.divide(record["law"]["slope/heldout"], record["law"]["slope/useful"]), rtol=1e-6)


def test_no_stored_file_is_orphaned():
  ids = {point_id(cfg) for points in PARTIAL_STAGES.values() for _, cfg in points}
  names = {n[:-5] for n in os.listdir(STORED) if n.endswith(".json")}
  assert names == ids


def test_scale_one_reproduces_the_protocol_point_of_the_search():
  (_, cfg), = [(l, c) for l, c in PARTIAL_STAGES["dial"] if c.mix_lower_lr_scale == 1.0]
  mine = load_point(STORED, cfg)
  with open(os.path.join(ROOT, "results", "search", f"{point_id(cfg)}.json")) as f:
    search = json.load(f)
  key = "reverse/heldout_minus_control/final"
  np.testing.assert_allclose([s[key] for s in mine["summary"]],
                             [s[key] for s in search["summary"]], atol=1e-4)


def test_plot_only_writes_tables_and_figures(tmp_path):
  out, figs = tmp_path / "res", tmp_path / "figs"
  os.makedirs(out)
  for points in PARTIAL_STAGES.values():  # a copy of the stored points, drawn elsewhere
    for _, cfg in points:
      name = f"{point_id(cfg)}.json"
      (out / name).write_bytes(open(os.path.join(STORED, name), "rb").read())
  partial.main(["--plot-only", "--out", str(out), "--figures", str(figs)])
  assert sorted(os.listdir(figs)) == ["partial_dial.png", "partial_g_over_phase3.png"]
  body = lambda text: text[text.index("| point"):]  # the header names the command's flags
  summary = (out / "summary.md").read_text()
  assert body(summary) == body(open(os.path.join(STORED, "summary.md")).read())
  assert "scale 1 (PROTOCOL)" in summary and "8/8 > 0" in summary
