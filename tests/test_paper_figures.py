"""The study's figures: which points each figure trains, and drawing from stored points."""
import dataclasses
import json
import math
import os

import jax
import numpy as np
import pytest
from flax import nnx

from experiments import paper_figures as pf
from toy.config import make_config
from toy.engine import build_model
from toy.points import figure_points, heldout_batches
from toy.stats import fmt, paired_test
from toy.sweep import point_path



def test_heldout_shares_cover_the_studys_range_at_both_scales():
  cpu, paper = make_config("cpu"), make_config("paper")
  assert heldout_batches(cpu) == [1, 2, 3, 4]  # 10 batches: 10% .. 40%
  assert heldout_batches(paper) == [1, 3, 5, 7, 9]  # 20 batches: 5% .. 45%
  for cfg in (cpu, paper):
    for _, c in figure_points(cfg)["heldout_proportion"]:
      assert 0 < c.n_heldout / c.n_negatives <= 0.45
      assert c.eval_size <= c.n_heldout  # would fail validation otherwise


def test_each_figure_varies_one_thing_and_shares_the_reference_point():
  base = make_config("cpu", n_seeds=3)
  grid = figure_points(base)
  assert grid["phases"] == [("reference", base)]
  for name, pts in grid.items():
    assert base in [c for _, c in pts], f"{name} lacks the reference point"
  varied = {"heldout_proportion": {"n_heldout_batches", "eval_size"},
            "model_size": {"n_layers", "d_model", "n_heads"},
            "ablations": {"use_prefix", "freeze_phase2"}}
  for name, fields in varied.items():
    for _, c in grid[name]:
      changed = {f.name for f in dataclasses.fields(c)
                 if getattr(c, f.name) != getattr(base, f.name)}
      assert changed <= fields, (name, changed)
  assert dict(grid["ablations"])["no prefix + freeze"].use_prefix is False
  assert dict(grid["ablations"])["prefix + no freeze"].freeze_phase2 is False


def test_parameter_count_from_shapes_matches_a_built_model():
  cfg = make_config("tiny")
  model = build_model(cfg, {}, nnx.Rngs(0))
  built = sum(math.prod(x.shape) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  assert pf.n_params(cfg) == built > 0


def _fake_record(cfg, rng):
  """A stored point with made-up but well-formed per-seed summaries and histories."""
  summary, history = [], []
  for seed in cfg.seeds:
    s = {"seed": seed}
    for name in ["heldout", "control", "useful", "heldout_minus_control"]:
      for when in ["final", "max"]:
        s[f"reverse/{name}/{when}"] = float(rng.normal(0, 0.05))
    summary.append(s)
    step = 0
    for phase, n in [("init", 1), ("pretrain", 3), ("dpo", 3), ("mix", 3)]:
      for _ in range(n):
        step += 5 if phase != "init" else 0
        prefix = "reverse" if phase == "mix" else "regular"
        history.append({"seed": seed, "phase": phase, "global_step": step,
                        **{f"eval/{prefix}/{k}": cfg.chance + float(rng.normal(0, 0.1))
                           for k in ["control", "useful", "heldout"]}})
  return {"config": dataclasses.asdict(cfg), "summary": summary, "history": history}


def test_plot_only_draws_all_four_figures_and_tabulates_the_stored_numbers(tmp_path,
                                                                           monkeypatch):
  base = make_config("tiny", n_seeds=3)
  out, figs = tmp_path / "points", tmp_path / "figs"
  rng = np.random.default_rng(0)
  stored = {}
  for _, pts in figure_points(base).items():
    for _, c in pts:
      if c not in stored:
        stored[c] = _fake_record(c, rng)
        os.makedirs(out, exist_ok=True)
        with open(point_path(str(out), c), "w") as f:
          json.dump(stored[c], f)

  def no_training(cfgs, out_dir, **kw):
    kw["train_fn"] = lambda *a, **k: pytest.fail("--plot-only trained something")
    return run_sweep(cfgs, out_dir, **kw)
  run_sweep = pf.run_sweep
  monkeypatch.setattr(pf, "run_sweep", no_training)
  pf.main(["--preset", "tiny", "--n_seeds", "3", "--plot-only", "--out", str(out),
           "--figures_dir", str(figs)])
  assert sorted(os.listdir(figs)) == sorted(f"paper_{n}_tiny.png" for n in pf.FIGURES)
  table = (out / "table.md").read_text()
  ref = stored[base]
  diff = [s["reverse/heldout_minus_control/final"] for s in ref["summary"]]
  assert fmt(paired_test(diff, 0.0)) in table  # the numbers come from the stored points
  for name in pf.FIGURES:
    assert f"## {name}" in table


def test_plot_only_skips_a_figure_whose_points_are_missing(tmp_path, capsys):
  base = make_config("tiny", n_seeds=2)
  out = tmp_path / "points"
  os.makedirs(out)
  with open(point_path(str(out), base), "w") as f:
    json.dump(_fake_record(base, np.random.default_rng(1)), f)
  pf.main(["--preset", "tiny", "--n_seeds", "2", "--plot-only", "--out", str(out),
           "--figures_dir", str(tmp_path / "figs"), "--figure", "phases", "--figure",
           "ablations"])
  assert "ablations skipped" in capsys.readouterr().out
  assert os.listdir(tmp_path / "figs") == ["paper_phases_tiny.png"]


def test_bad_value_names_the_field(capsys):
  with pytest.raises(SystemExit):
    pf.main(["--n_heldout_batches", "0"])
  assert "n_heldout_batches" in capsys.readouterr().err
