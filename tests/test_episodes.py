"""Prior episodes: the default is today's run, prior data is no run seed's, each episode has its
own reference, the toy's flipped times node carries over, bad values are refused."""
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toy import data as data_lib
from toy.config import make_config
from toy.engine import train

GOLDEN = os.path.join(os.path.dirname(__file__), "data", "default_histories_tiny.json")


def test_default_runs_are_the_runs_before_prior_episodes_existed(default_compile_runs):
  # Written by the engine before prior_episodes was added (commit f1de0b8), 2 seeds each,
  # under XLA's default compile (so the runs are tests/default_compile.py's), and bitwise equal
  # on the machine that wrote it. Another CPU rounds float32 otherwise: on an AMD EPYC
  # the DPO log-probs (about -8 nats) were 1.3e-6 off, 1.3 ulp. So floats are compared to 1e-6
  # plus 4 ulp of their size, on the keys the golden holds (later evaluation sets may join).
  # One value is rounding's alone: at DPO step 1 the policy is the reference, so every margin
  # is 0 and its sign, counted by rewards/accuracies, is the sign of rounding noise (the first
  # chunk's accuracy there: 0.27 off the golden's). Step 1 is 1/eval_every of that chunk's mean,
  # and that is all the mean may move.
  with open(GOLDEN) as f:
    golden = json.load(f)
  assert set(golden) == {"transformer", "toy"}
  eps32 = float(np.finfo(np.float32).eps)
  for model, want in golden.items():
    history = default_compile_runs["tiny" if model == "transformer" else "toy"]["history"]
    assert len(history) == len(want["history"])
    first_dpo = min(r["step"] for r in want["history"] if r["phase"] == "dpo")
    for got, old in zip(history, want["history"]):
      assert "episode" not in got
      assert {k: got[k] for k in old if not isinstance(old[k], float)} == \
          {k: v for k, v in old.items() if not isinstance(v, float)}
      tie = "train/rewards/accuracies" if (old["phase"], old["step"]) == ("dpo", first_dpo) \
          else None
      if tie is not None:
        assert abs(got[tie] - old[tie]) <= 1 / first_dpo + 1e-12
      floats = [k for k in old if isinstance(old[k], float) and k != tie]
      np.testing.assert_allclose([got[k] for k in floats], [old[k] for k in floats],
                                 rtol=4 * eps32, atol=1e-6)


def test_prior_episode_data_is_no_run_seeds_data():
  cfg = make_config("tiny")
  run_seeds = range(64)
  measured = {s: data_lib.seed_data(cfg, s) for s in run_seeds}
  fingerprint = lambda d: np.concatenate([d["useful"], d["heldout"], d["control"]]).tobytes()
  seen = {fingerprint(d): s for s, d in measured.items()}
  assert len(seen) == len(measured)  # run seeds differ among themselves: the check can fire
  for seed in range(16):
    for episode in range(4):
      root = jax.random.key_data(data_lib.episode_root(seed, episode))
      assert int(root[0]) != 0  # key(s) has data [0, s]: no run seed has this root
      assert fingerprint(data_lib.seed_data(cfg, seed, episode)) not in seen
      # nor one of the seed's own measured-episode keys (data, init, tables, train)
      own = np.asarray(jax.random.key_data(jnp.stack(data_lib.seed_keys([seed]))[:, 0]))
      assert not (own == np.asarray(root)).all(-1).any()


def test_measured_episode_is_the_seeds_own_and_every_episode_has_its_own_reference():
  cfg = make_config("tiny", prior_episodes=2, eval_every=1, n_seeds=2)
  r = train(cfg, progress=False, save=False)
  for i, seed in enumerate(cfg.seeds):
    for name, values in data_lib.seed_data(cfg, seed).items():
      np.testing.assert_array_equal(np.asarray(r.data[name][i]), values)
  assert {h["episode"] for h in r.history} == {0, 1, 2}
  # At the first step of each episode's phase 2 the policy is that episode's phase-1 model:
  # DPO's loss is log 2 only if that model is also the reference.
  first_dpo = [h for h in r.history if h["phase"] == "dpo" and h["step"] == 1]
  assert sorted(h["episode"] for h in first_dpo) == [0, 0, 1, 1, 2, 2]
  np.testing.assert_allclose([h["train/dpo"] for h in first_dpo], math.log(2), atol=1e-5)
  # the summary reads the measured episode only
  last = [h for h in r.history if h["episode"] == 2 and h["phase"] == "mix"][-2:]
  for s, h in zip(r.summary, last):
    assert s["reverse/heldout/final"] == pytest.approx(h["eval/reverse/heldout"] - cfg.chance)
  # and differs from what an episode's history alone would give: the episodes are not copies
  prior_last = [h for h in r.history if h["episode"] == 1 and h["phase"] == "mix"][-1]
  assert prior_last["eval/reverse/heldout"] != last[-1]["eval/reverse/heldout"]


def test_toys_flipped_times_node_carries_over():
  # From scratch the toy's sign under "reverse" is still positive at the first phase-3
  # evaluation (law slope > 0); after one prior episode it starts flipped, for every
  # negative alike (G = 1), and held-out negatives are above the control at once.
  def first_mix(prior):
    cfg = make_config("tiny", model="toy", prior_episodes=prior, n_seeds=2)
    r = train(cfg, progress=False, save=False)
    rows = [h for h in r.history if h["phase"] == "mix" and h.get("episode", prior) == prior]
    return r, rows[:2]

  scratch, rows0 = first_mix(0)
  carried, rows1 = first_mix(1)
  for h in rows0:
    assert h["eval/law/useful"] > 0
  for h in rows1:
    assert h["eval/law/useful"] < 0
    assert h["eval/law/heldout"] == pytest.approx(h["eval/law/useful"], abs=1e-6)
    assert h["eval/reverse/heldout"] > h["eval/reverse/control"]
  a, c = np.asarray(carried.params["times"]["a"]), np.asarray(carried.params["times"]["c"])
  assert np.all(c > a)


@pytest.mark.parametrize("field,value", [("prior_episodes", -1),
                                         ("prior_mix_lower_lr_scale", 1.5),
                                         ("prior_mix_lower_lr_scale", float("nan"))])
def test_bad_prior_values_name_the_field(field, value):
  with pytest.raises(ValueError, match=f"invalid {field}="):
    make_config("tiny", **{field: value})
