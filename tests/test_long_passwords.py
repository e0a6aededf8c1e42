"""experiments/long_passwords.py: the 16-letter probe and arms are the configs they claim."""
import dataclasses
import os

from experiments import long_passwords as lp

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _diff(a, b) -> set:
  a, b = dataclasses.asdict(a), dataclasses.asdict(b)
  return {k for k in a if a[k] != b[k]}


def test_probe_points_are_16_letters_on_their_own_seeds_each_beside_its_scale0_twin():
  cfgs = [c for _, c in lp.PROBE]
  assert all(c.password_len == 16 and (c.seed, c.n_seeds) == (100, 2) for c in cfgs)
  for protocol, twin in zip(cfgs[::2], cfgs[1::2]):
    assert (protocol.mix_lower_lr_scale, twin.mix_lower_lr_scale) == (1.0, 0.0)
    assert _diff(protocol, twin) == {"mix_lower_lr_scale"}


def test_the_arms_differ_only_in_what_names_them():
  arms = dict(lp.arms())
  assert set(arms) == {"scratch", "sham", "acquired", "lever"}
  base = arms["scratch"]
  assert (base.password_len, base.seed, base.n_seeds, base.prior_episodes) == (16, 0, 8, 0)
  assert _diff(base, arms["lever"]) == {"mix_lower_lr_scale"}
  assert arms["sham"].prior_episodes == arms["acquired"].prior_episodes == 1
  assert (arms["sham"].prior_mix_lower_lr_scale, arms["acquired"].prior_mix_lower_lr_scale) \
      == (1.0, 0.0)
  assert _diff(arms["sham"], arms["acquired"]) == {"prior_mix_lower_lr_scale"}
  assert _diff(base, arms["acquired"]) <= {"prior_episodes", "prior_mix_lower_lr_scale"}


def test_plot_only_rewrites_the_committed_table(tmp_path, monkeypatch):
  monkeypatch.chdir(ROOT)
  md = tmp_path / "long_passwords.md"
  lp.main(["--plot-only", "--md", str(md)])
  body = lambda text: text[text.index("cpu preset"):]
  with open(lp.MD) as f:
    assert body(md.read_text()) == body(f.read())
