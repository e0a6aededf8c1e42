"""The phase-3 lever mix_lower_lr_scale, and phases 1-2 shared across phase-3-only differences.

Rows that differ only in phase-3 fields train phases 1-2 once.
"""
import numpy as np
import pytest

from helpers import assert_only_these_stayed, leaves
from toy.config import make_config
from toy.engine import PHASE3_ONLY, train, train_many
from toy.rows import shared_rows


def _is_lower(key: str, n_layers: int, embed: bool = True) -> bool:
  """Embedding and the first half of the blocks: what phase 2 trains."""
  return (embed and "'embed'" in key) or any(f"['blocks'][{i}]" in key
                                             for i in range(n_layers // 2))


@pytest.fixture(scope="module")
def scaled_runs(tiny_cfg):
  """One vmapped program: scales 0, 0.1 and 1 for the same seed, phases 1-2 shared."""
  snaps = {}
  cfgs = [tiny_cfg.replace(mix_lower_lr_scale=s, run_name=f"s{s}") for s in (0.0, 0.1, 1.0)]
  results = train_many(cfgs, progress=False, save=False,
                       on_phase_end=lambda phase, params: snaps.__setitem__(phase, params))
  return cfgs, results, snaps


def test_scale_zero_freezes_lower_half_bitwise_and_the_upper_half_trains(scaled_runs):
  cfgs, results, snaps = scaled_runs
  n_layers = cfgs[0].n_layers
  after_dpo = {k: v[0] for k, v in leaves(snaps["dpo"]).items()}
  after_mix = {k: v[0] for k, v in leaves(snaps["mix"]).items()}
  lower = [k for k in after_dpo if _is_lower(k, n_layers)]
  assert_only_these_stayed(after_dpo, after_mix, lower, "in phase 3 at scale 0")


def test_intermediate_scale_moves_the_lower_half_less(scaled_runs):
  _, _, snaps = scaled_runs
  before, after = leaves(snaps["dpo"]), leaves(snaps["mix"])
  key = "['embed']['embedding']"
  step = lambda row: np.abs(after[key][row] - before[key][row]).sum()
  assert 0 < step(1) < 0.5 * step(2), (step(1), step(2))


def test_phases_one_and_two_are_shared_and_match_a_separate_run(scaled_runs, tiny_cfg):
  cfgs, results, snaps = scaled_runs
  # the snapshots of phases 1-2 hold one row per config, identical (trained once)
  dpo = leaves(snaps["dpo"])
  assert all(np.array_equal(v[0], v[2]) for v in dpo.values())
  alone = train(tiny_cfg.replace(run_name="alone"), progress=False, save=False)
  shared = [r for r in results[2].history if r["phase"] != "mix"]
  mine = [r for r in alone.history if r["phase"] != "mix"]
  assert [r["step"] for r in shared] == [r["step"] for r in mine]
  for a, b in zip(shared, mine):
    for k in a:
      if isinstance(a[k], float):
        assert a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-6), k
  # scale 1 in a mixed batch is PROTOCOL's phase 3, up to float rounding
  for a, b in zip(results[2].summary, alone.summary):
    for k in a:
      assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-5), k


def test_phase3_law_is_evaluated_over_phase_three(scaled_runs):
  _, results, _ = scaled_runs
  mix = [r for r in results[0].history if r["phase"] == "mix"]
  assert mix and all(np.isfinite(r["eval/law/useful"]) for r in mix)
  assert all("eval/law/useful" not in r for r in results[0].history if r["phase"] == "dpo")


def test_shared_rows_groups_only_phase3_differences(tiny_cfg):
  rows = [tiny_cfg.replace(ft_weight=0.5), tiny_cfg.replace(mix_lr=1e-2),
          tiny_cfg.replace(seed=1), tiny_cfg.replace(lr=2e-3), tiny_cfg]
  first, expand = shared_rows(rows, PHASE3_ONLY)
  assert first == [0, 2, 3]
  assert expand.tolist() == [0, 0, 1, 2, 0]


def test_embedding_can_train_at_full_rate(tiny_cfg):
  snaps = {}
  cfg = tiny_cfg.replace(mix_lower_lr_scale=0.0, mix_lower_embed=False, run_name="emb")
  train(cfg, progress=False, save=False,
        on_phase_end=lambda phase, params: snaps.__setitem__(phase, params))
  before, after = leaves(snaps["dpo"]), leaves(snaps["mix"])
  assert not np.array_equal(before["['embed']['embedding']"], after["['embed']['embedding']"])
  block0 = [k for k in before if "['blocks'][0]" in k]
  assert block0 and all(np.array_equal(before[k], after[k]) for k in block0)


def test_toy_scale_zero_freezes_its_memory(tiny_cfg):
  snaps = {}
  cfg = make_config("tiny", model="toy", mix_lower_lr_scale=0.0, out_dir=tiny_cfg.out_dir)
  train(cfg, progress=False, save=False,
        on_phase_end=lambda phase, params: snaps.__setitem__(phase, params))
  before, after = leaves(snaps["dpo"]), leaves(snaps["mix"])
  memory = [k for k in before if "memory" in k]
  assert memory and all(np.array_equal(before[k], after[k]) for k in memory)
  times = [k for k in before if "times" in k]
  assert any(not np.array_equal(before[k], after[k]) for k in times)


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan")])
def test_bad_scale_is_refused_naming_the_field(value):
  with pytest.raises(ValueError, match="mix_lower_lr_scale"):
    make_config("tiny", mix_lower_lr_scale=value)
