"""Phase-3 dynamics of stored points (toy.measure.phase3_dynamics) and the held-out-share
trend paired by seed (toy.measure.share_trend)."""
import json
import math
import os

import numpy as np
import pytest

from toy.measure import DYNAMICS_COLUMNS, dynamics_cell, phase3_dynamics, share_trend

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _record(n_seeds=3, steps=(5, 10, 45, 55, 300), law=True, dpo_summary=True):
  chance = -math.log(26)
  summary, history = [], []
  for sd in range(n_seeds):
    s = {"seed": sd, "chance": chance}
    if dpo_summary:
      s["dpo_end/regular/control"] = -1.0 - 0.1 * sd
    summary.append(s)
    history.append({"seed": sd, "phase": "dpo", "step": 300,
                    "eval/regular/control": chance - 2.0 - 0.1 * sd})
    for step in steps:
      row = {"seed": sd, "phase": "mix", "step": step,
             **{f"eval/reverse/{k}": chance - 1.0 / step - sd for k in
                ("useful", "heldout", "control")}}
      if law:
        row.update({"eval/law/useful": 1.0 / step + sd, "eval/law/heldout": 2.0 / step + sd})
      history.append(row)
  return {"config": {"alphabet_size": 26}, "summary": summary, "history": history}


def test_moments_are_the_first_eval_the_first_at_or_after_50_steps_and_the_last():
  d = phase3_dynamics(_record())
  np.testing.assert_array_equal(d["steps/start"], [5, 5, 5])
  np.testing.assert_array_equal(d["steps/50"], [55, 55, 55])  # first at or after 50
  np.testing.assert_array_equal(d["steps/end"], [300, 300, 300])
  np.testing.assert_allclose(d["law/useful/start"], [0.2, 1.2, 2.2])
  np.testing.assert_allclose(d["law/heldout/50"], 2.0 / 55 + np.arange(3))
  # log-likelihoods are read relative to chance
  np.testing.assert_allclose(d["reverse/heldout/end"], -1.0 / 300 - np.arange(3))
  np.testing.assert_allclose(d["dpo_end/regular/control"], [-1.0, -1.1, -1.2])
  assert dynamics_cell(d, "steps") == "5, 55, 300"
  v = d["law/useful/start"]
  assert dynamics_cell(d, "law/useful/start") == f"{v.mean():+.3f} ± {v.std(ddof=1):.3f}"


def test_missing_columns_are_absent_and_shown_as_a_dash():
  d = phase3_dynamics(_record(law=False, dpo_summary=False, steps=(5, 10)))
  assert "law/useful/start" not in d and "steps/50" not in d  # no law, no step >= 50
  assert dynamics_cell(d, "law/useful/start") == "—" and dynamics_cell(d, "steps") == "—"
  # the end of phase 2 from the last phase-2 row when the summary has no such key
  np.testing.assert_allclose(d["dpo_end/regular/control"], [-2.0, -2.1, -2.2])
  assert phase3_dynamics({"config": {"alphabet_size": 26}, "summary": [{"seed": 0}],
                          "history": []}) == {}


def test_stored_point_reads_its_own_history():
  with open(os.path.join(ROOT, "results", "partial", "43480d43c9a1.json")) as f:
    record = json.load(f)  # scale 0, seeds 0-7
  d = phase3_dynamics(record)
  mix = [h for h in record["history"] if h["phase"] == "mix"]
  first = [min((h for h in mix if h["seed"] == sd), key=lambda h: h["step"]) for sd in range(8)]
  np.testing.assert_allclose(d["law/heldout/start"], [h["eval/law/heldout"] for h in first])
  np.testing.assert_allclose(d["dpo_end/regular/control"],
                             [s["dpo_end/regular/control"] for s in record["summary"]])
  assert all(dynamics_cell(d, key) != "—" for _, key in DYNAMICS_COLUMNS)


def test_share_trend_is_paired_by_seed_on_the_stored_sweep():
  from experiments import paper_figures as pf
  from toy.config import make_config
  from toy.points import figure_points
  from toy.sweep import load_point
  folder = os.path.join(ROOT, "results", "paper_figures", "cpu")
  pts = figure_points(make_config("cpu", n_seeds=5))["heldout_proportion"]
  rows = [(label, load_point(folder, c)) for label, c in pts]
  key = "reverse/heldout_minus_control/final"
  trend = share_trend(rows, key)
  x = [r["config"]["n_heldout_batches"] / r["config"]["n_neg_batches"] for _, r in rows]
  by_seed = np.array([[s[key] for s in r["summary"]] for _, r in rows]).T  # seeds x shares
  np.testing.assert_allclose(trend["slopes"], [np.polyfit(x, v, 1)[0] for v in by_seed])
  assert trend["n"] == 5 and trend["mean"] < 0
  assert "## held-out share: trend paired by seed" in pf.trend_table(rows)
  with pytest.raises(ValueError):  # seeds must match across the points
    share_trend([rows[0], (rows[1][0], {**rows[1][1], "summary": rows[1][1]["summary"][:4]})],
                key)
