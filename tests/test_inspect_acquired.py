"""toy.inspect's grafting (graft, upper_half), episode_data and evaluate_run, which
experiments/inspect_acquired.py is built on, and that script end to end on untrained tiny run
folders laid out as experiments/acquired.py writes them."""
import dataclasses
import os

import jax
import numpy as np
import pytest

from helpers import leaves, phase2_frozen_keys
from toy import inspect as I
from toy.config import make_config
from toy.engine import RunResult, apply_fn, setup
from toy.io import save_run
from toy.sweep import point_id

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _untrained(seed=0, n_seeds=2, **kw):
  """Freshly initialised seed-stacked models dressed as a RunResult."""
  cfg = make_config("tiny", seed=seed, n_seeds=n_seeds, **kw)
  st = setup([cfg])
  return RunResult(cfg, [], [], st.graphdef, st.params, st.state, st.data, apply_fn(st.graphdef),
                   None)


def test_graft_takes_exactly_the_upper_half_from_b():
  a, b = _untrained(seed=0), _untrained(seed=5)  # other seeds: other initial weights
  g = I.graft(a, b, I.upper_half(a))
  la, lb, lg = leaves(a.params), leaves(b.params), leaves(g.params)
  upper = phase2_frozen_keys(list(la), a.cfg.n_layers)
  assert upper and len(upper) < len(la)
  for k in la:
    assert not np.array_equal(la[k], lb[k]) or "bias" in k or "scale" in k, k
    np.testing.assert_array_equal(lg[k], lb[k] if k in upper else la[k], err_msg=k)
  assert g.data is a.data and g.cfg == a.cfg and g.history == [] and g.run_dir is None


def test_grafting_a_model_onto_itself_changes_nothing():
  a, b = _untrained(seed=0), _untrained(seed=5)
  clean = I.evaluate_run(a)
  for k, v in I.evaluate_run(I.graft(a, a, I.upper_half(a))).items():
    np.testing.assert_array_equal(v, clean[k], err_msg=k)
  back = I.graft(I.graft(a, b, I.upper_half(a)), a, I.upper_half(a))
  for k, v in leaves(back.params).items():
    np.testing.assert_array_equal(v, leaves(a.params)[k], err_msg=k)
  # and a graft that changes the upper half changes the evaluation
  other = I.evaluate_run(I.graft(a, b, I.upper_half(a)))
  assert not np.array_equal(other["eval/reverse/heldout"], clean["eval/reverse/heldout"])


def test_graft_refuses_other_models_and_unknown_paths():
  a = _untrained()
  with pytest.raises(ValueError, match="no parameter under"):
    I.graft(a, a, [("blocks", 7)])
  with pytest.raises(ValueError, match="different models"):
    I.graft(a, _untrained(n_layers=4), I.upper_half(a))
  with pytest.raises(ValueError, match="shape"):
    I.graft(a, _untrained(d_model=8, n_heads=2), I.upper_half(a))


def test_episode_data_is_what_the_engine_trains_on():
  cfg = make_config("tiny", n_seeds=2, prior_episodes=2)
  st = setup([cfg])
  for episode, want in [(None, st.data), (0, st.episodes[0].data), (1, st.episodes[1].data)]:
    got = I.episode_data(cfg, episode)
    assert set(got) == set(want)
    for k in want:
      np.testing.assert_array_equal(np.asarray(got[k]), np.asarray(want[k]), err_msg=k)
  assert not np.array_equal(np.asarray(st.episodes[0].data["useful"]), np.asarray(st.data["useful"]))


def _write_points(runs: str):
  """Untrained run folders named and laid out as acquired.py's train_and_keep writes them."""
  for scale in (0.0, 1.0):
    r = _untrained(n_seeds=8, prior_episodes=1, prior_mix_lower_lr_scale=scale)
    name = point_id(r.cfg)
    summary = [{"reverse/heldout_minus_control/final": 0.0}] * 8
    save_run(dataclasses.replace(r, cfg=r.cfg.replace(out_dir=runs, run_name=name),
                                 summary=summary))
    perturbed = jax.tree.map(lambda x: x * 1.01, r.params)
    save_run(dataclasses.replace(r, cfg=r.cfg.replace(out_dir=runs, run_name=f"{name}_prior"),
                                 params=perturbed))


def test_script_end_to_end_on_untrained_folders(tmp_path):
  # In this process, not a subprocess: its programs are the ones the other tests compiled.
  from experiments import inspect_acquired
  runs, md = str(tmp_path / "runs"), str(tmp_path / "ia.md")
  argv = ["--preset", "tiny", "--runs", runs, "--out-md", md, "--figure", str(tmp_path / "ia.png")]
  with pytest.raises(SystemExit) as missing:
    inspect_acquired.main(argv)
  assert "acquired.py --stage main --preset tiny" in str(missing.value).strip().splitlines()[-1]
  _write_points(runs)
  inspect_acquired.main(argv)
  text = open(md).read()
  assert "## 2. Grafting" in text and "sham lower + acquired upper" in text
  assert os.path.isfile(str(tmp_path / "ia.json")) and os.path.isfile(str(tmp_path / "ia.png"))
