"""Bad values are rejected before training, with the field and its allowed range named."""
import argparse

import pytest

from toy.config import PRESETS, add_config_args, config_from_args, make_config


@pytest.mark.parametrize("overrides, field", [
    (dict(n_heldout_batches=25), "n_heldout_batches"),
    (dict(password_len=0), "password_len"),
    (dict(alphabet_size=1), "alphabet_size"),
    (dict(beta=0.0), "beta"),
    (dict(beta=-1.0), "beta"),
    (dict(lr=0.0), "lr"),
    (dict(lr=float("nan")), "lr"),
    (dict(n_heads=5), "n_heads"),
    (dict(dpo_loss="hinge"), "dpo_loss"),
    (dict(label_smoothing=0.7), "label_smoothing"),
    (dict(eval_size=10_000), "eval_size"),
    (dict(model="lstm"), "model"),
    (dict(toy_c=float("inf")), "toy_c"),
])
def test_invalid_values_name_field_and_range(overrides, field):
  with pytest.raises(ValueError, match=rf"invalid {field}=.*allowed"):
    make_config("paper", **overrides)


def test_unknown_preset_lists_the_known_ones():
  with pytest.raises(ValueError, match="preset.*allowed one of"):
    make_config("huge")


def test_presets_are_valid_and_paper_matches_protocol():
  for name in PRESETS:
    make_config(name)
  cfg = make_config("paper")
  assert (cfg.alphabet_size, cfg.password_len, cfg.batch_size) == (26, 16, 128)
  assert (cfg.n_negatives, cfg.n_useful, cfg.n_heldout) == (2560, 2432, 128)
  assert (cfg.pretrain_steps, cfg.dpo_steps, cfg.mix_steps_resolved) == (64, 1200, 1200)
  assert (cfg.lr, cfg.weight_decay, cfg.clip_norm, cfg.warmup_steps) == (1e-4, 0.01, 1.0, 100)
  assert (cfg.beta, cfg.ft_weight, cfg.random_weight, cfg.eval_every) == (0.1, 0.2, 0.2, 5)


def test_every_field_overridable_from_the_command_line():
  parser = argparse.ArgumentParser()
  add_config_args(parser)
  args = parser.parse_args(["--preset", "tiny", "--lr", "0.5", "--use_prefix", "false",
                            "--password_len", "3"])
  cfg = config_from_args(args)
  assert (cfg.preset, cfg.lr, cfg.use_prefix, cfg.password_len) == ("tiny", 0.5, False, 3)
  with pytest.raises(ValueError, match="invalid lr"):
    config_from_args(parser.parse_args(["--lr", "-1"]))
