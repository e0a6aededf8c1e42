"""The three-phase engine on the tiny preset: freezing, determinism, outputs, failure modes."""
import csv
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import assert_only_these_stayed, leaves, phase2_frozen_keys
from toy import data as data_lib
from toy.config import make_config
from toy.engine import NonFiniteLossError, build_model, train
from toy.optim import lr_schedule


@pytest.fixture(scope="module")
def tiny_run(tiny_cfg):
  snapshots = {}
  result = train(tiny_cfg, progress=False,
                 on_phase_end=lambda phase, params: snapshots.__setitem__(phase, params))
  return result, snapshots


def test_phase2_frozen_params_bitwise_unchanged_and_the_rest_trained(tiny_run):
  result, snaps = tiny_run
  before, after = leaves(snaps["pretrain"]), leaves(snaps["dpo"])
  n_layers = result.cfg.n_layers
  frozen = phase2_frozen_keys(before, n_layers)
  assert_only_these_stayed(before, after, frozen, "during phase 2")
  # phase 3 trains everything again
  mixed = leaves(snaps["mix"])
  assert all(not np.array_equal(after[k], mixed[k]) for k in frozen)


def test_same_seed_gives_identical_metrics(tiny_run, tiny_cfg):
  first, _ = tiny_run
  second = train(tiny_cfg.replace(run_name="again"), progress=False)
  assert first.history == second.history


def test_run_folder_has_config_metrics_and_params(tiny_run):
  result, _ = tiny_run
  names = sorted(os.listdir(result.run_dir))
  assert names == ["config.json", "metrics.csv", "params.npz", "summary.json"]
  with open(os.path.join(result.run_dir, "config.json")) as f:
    assert json.load(f)["password_len"] == result.cfg.password_len
  with open(os.path.join(result.run_dir, "metrics.csv")) as f:
    rows = list(csv.DictReader(f))
  cfg = result.cfg
  n_evals = 1 + sum(-(-n // cfg.eval_every) for n in
                    (cfg.pretrain_steps, cfg.dpo_steps, cfg.mix_steps_resolved))
  assert len(rows) == n_evals
  assert rows[-1]["global_step"] == str(cfg.pretrain_steps + cfg.dpo_steps + cfg.mix_steps_resolved)
  for key in ["rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
              "logps/chosen", "logps/rejected"]:
    assert rows[-1][f"train/{key}"] != ""
  # PROTOCOL's reading: "regular" in phases 1-2, "reverse" in phase 3, both at initialisation
  expected = {"init": {"regular", "reverse"}, "pretrain": {"regular"}, "dpo": {"regular"},
              "mix": {"reverse"}}
  for row in rows:
    for prefix in ["regular", "reverse"]:
      for name in ["control", "useful", "heldout"]:
        value = row[f"eval/{prefix}/{name}"]
        assert (value != "") == (prefix in expected[row["phase"]]), (row["phase"], prefix)
        if value != "":
          assert np.isfinite(float(value))
  params = np.load(os.path.join(result.run_dir, "params.npz"))
  assert params["unembed/kernel"].shape == (1, cfg.d_model, data_lib.vocab_size(cfg))


def test_phase2_dpo_lowers_negatives_relative_to_reference(tiny_run):
  result, _ = tiny_run
  dpo_rows = [r for r in result.history if r["phase"] == "dpo"]
  assert dpo_rows[-1]["train/rewards/margins"] > 0
  assert dpo_rows[-1]["train/rewards/accuracies"] > 0.5


def test_vmapped_seeds_match_separate_runs(tiny_cfg):
  batch = train(tiny_cfg.replace(n_seeds=2, run_name="pair"), progress=False, save=False)
  alone = train(tiny_cfg.replace(seed=1, run_name="alone"), progress=False, save=False)
  row_b = [r for r in batch.history if r["seed"] == 1][-1]
  row_a = alone.history[-1]
  assert row_a.keys() == row_b.keys()
  for k, v in row_a.items():
    if isinstance(v, float):  # numbers as numbers (float rounding differs under vmap)
      assert row_b[k] == pytest.approx(v, rel=1e-3, abs=1e-4), k
    else:  # phase names and step counts exactly
      assert row_b[k] == v, k


def _nan_under_reverse(cfg, data, rngs):
  """The normal model, except the reverse prefix embeds to NaN: only phase 3 trains on it."""
  model = build_model(cfg, data, rngs)
  model.embed.embedding[data_lib.prefix_token(cfg, data_lib.REVERSE)] = jnp.nan
  return model


def test_nan_loss_names_phase_and_step_and_leaves_no_run_folder(tiny_cfg):
  cfg = tiny_cfg.replace(run_name="nan_run")
  with pytest.raises(NonFiniteLossError, match=r"phase 'mix' at step 0"):
    train(cfg, _nan_under_reverse, progress=False)
  assert not os.path.exists(os.path.join(cfg.out_dir, "nan_run"))
  assert not [n for n in os.listdir(cfg.out_dir) if n.startswith(".partial")]


def test_lr_schedule_warms_up_then_decays_to_zero():
  cfg = make_config("tiny", lr=1.0, warmup_steps=10)
  sched = lr_schedule(cfg, 110)
  assert float(sched(0)) == 0.0
  assert float(sched(5)) == pytest.approx(0.5)
  assert float(sched(10)) == pytest.approx(1.0)
  assert float(sched(60)) == pytest.approx(0.5, abs=1e-6)
  assert float(sched(110)) == pytest.approx(0.0, abs=1e-7)
  # the paper's 64-step phase 1 never leaves its 100-step warmup
  short = lr_schedule(make_config("paper", lr=1.0), 64)
  assert float(short(63)) == pytest.approx(0.63)


def test_data_sets_follow_protocol():
  cfg = make_config("paper")
  data = data_lib.make_data(cfg, jax.random.key(3))
  assert data["useful"].shape == (19 * 128, 16) and data["heldout"].shape == (128, 16)
  assert data["control"].shape == data["placebo"].shape == (128, 16)
  assert int(data["useful"].max()) < 26 and int(data["useful"].min()) >= 0
  assert cfg.dpo_steps == 1200 and cfg.mix_steps_resolved == 1200
  again = data_lib.make_data(cfg, jax.random.key(3))
  assert all(np.array_equal(data[k], again[k]) for k in data)
  idx = np.asarray(data_lib.epoch_indices(jax.random.key(0), 10, 5, 4))  # 20 draws = 2 epochs
  assert sorted(idx.reshape(-1)[:10]) == list(range(10))
  assert sorted(idx.reshape(-1)[10:]) == list(range(10))


def test_evaluating_both_prefixes_changes_no_training_and_adds_the_other_prefix(tiny_run):
  # The other prefix is evaluated by a program of its own (Phase.extra_prefixes): the training
  # program is the PROTOCOL run's, so its parameters and every value it records are the same
  # to the bit, under any compile.
  protocol = tiny_run[0]
  both = train(protocol.cfg.replace(eval_prefixes="both"), progress=False, save=False)
  for a, b in zip(leaves(protocol.params), leaves(both.params), strict=True):
    assert np.array_equal(a, b)
  assert len(protocol.history) == len(both.history)
  for row_p, row_b in zip(protocol.history, both.history):
    assert set(row_p) < set(row_b) or row_p["phase"] == "init"
    for key, value in row_p.items():
      assert row_b[key] == value or (value != value and row_b[key] != row_b[key]), key
  mix_b = [r for r in both.history if r["phase"] == "mix"][-1]
  assert np.isfinite(mix_b["eval/regular/heldout"]) and np.isfinite(mix_b["eval/reverse/heldout"])


def test_placebo_is_a_fresh_random_set_and_leaves_the_other_sets_bitwise_as_they_were():
  cfg = make_config("cpu")
  for seed in (0, 3):
    key = data_lib.seed_keys([seed])[0][0]
    data = data_lib.make_data(cfg, key)
    k_neg, k_ctl = jax.random.split(key)  # the sets as they were drawn before the placebo
    negatives = data_lib.random_passwords(cfg, k_neg, cfg.n_negatives)
    assert np.array_equal(data["useful"], negatives[:cfg.n_useful])
    assert np.array_equal(data["heldout"], negatives[cfg.n_useful:])
    assert np.array_equal(data["control"], data_lib.random_passwords(cfg, k_ctl, cfg.eval_size))
    placebo = np.asarray(data["placebo"])
    assert placebo.shape == data["control"].shape
    # not a copy of any other set: rows match another set's only by chance (26^8 passwords)
    others = {tuple(r) for k in ("useful", "heldout", "control") for r in np.asarray(data[k])}
    assert sum(tuple(r) in others for r in placebo) <= 1


def test_adding_the_placebo_changes_no_other_value(tiny_run, tiny_cfg, monkeypatch):
  """Every value a run without the placebo set records is the same with it, to float
  rounding: training never reads it, and the evaluation batch only grows by one set per
  prefix (which XLA may round differently; measured here: at most 2.4e-7 on the transformer,
  bitwise on the toy)."""
  placebo, _ = tiny_run
  make_data = data_lib.make_data
  # Data without the set is another pytree, so the programs are traced anew: no cache to clear.
  monkeypatch.setattr(data_lib, "make_data", lambda cfg, key: {
      k: v for k, v in make_data(cfg, key).items() if k != "placebo"})
  without = train(tiny_cfg.replace(run_name="no_placebo"), progress=False, save=False)
  assert "placebo" not in without.data
  assert [k for k in placebo.summary[0] if "placebo" in k] == [
      "reverse/placebo/final", "reverse/placebo/max", "dpo_end/regular/placebo",
      "reverse/placebo_minus_control/final", "reverse/placebo_minus_control/max"]
  for row_p, row_n in zip(placebo.history + placebo.summary, without.history + without.summary):
    assert {k for k in row_p if "placebo" not in k} == set(row_n)
    for key, value in row_n.items():
      assert row_p[key] == pytest.approx(value, abs=1e-5), key
