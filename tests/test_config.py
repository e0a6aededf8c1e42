"""Config: bad values refused naming the field and range, presets, flags, field roles."""
import argparse
import importlib

import pytest

from toy.cli import config_from_args
from toy.config import PRESETS, add_config_args, make_config


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


def test_field_roles_give_the_engine_and_sweep_their_field_lists():
  """Declared once in Config's metadata; these values are what stored points were hashed with."""
  from toy import setup, sweep
  assert setup.HYPER == ("lr", "weight_decay", "clip_norm", "beta", "label_smoothing",
                         "dpo_weight", "ft_weight", "random_weight", "mix_lower_lr_scale",
                         "mix_lr")
  assert setup.PHASE3_ONLY == ("ft_weight", "random_weight", "mix_lower_lr_scale", "mix_lr",
                               "mix_lower_embed")
  assert setup._HOST_ONLY == dict(
      preset="", seed=0, n_seeds=1, out_dir="", run_name="", toy_a=0.0, toy_c=0.0,
      toy_gain_add=0.0, toy_weights="", toy_train_sign=True, freeze_phase2=True, init_from="",
      eval_prefixes="protocol", prior_episodes=0, prior_mix_lower_lr_scale=0.0)
  assert sweep._NOT_IDENTITY == ("out_dir", "run_name")
  assert sweep._HASHED_IF_NOT == {"eval_prefixes": "protocol", "mix_lower_lr_scale": 1.0,
                                  "mix_lower_embed": True, "mix_lr": 0.0, "mlp": "gelu",
                                  "times_node": False, "times_lr": 0.1, "init_from": "",
                                  "normalize": "alphabet", "toy_sign": "shared",
                                  "prior_episodes": 0, "prior_mix_lower_lr_scale": 0.0,
                                  "toy_gates": 1, "toy_gate_mix": 1}


@pytest.mark.parametrize("script", ["train", "toy_diagram", "toy_vs_learned", "paper_figures",
                                    "inspect_flip"])
def test_every_script_refuses_a_bad_value_in_one_line_naming_the_field(script, capsys):
  module = importlib.import_module(f"experiments.{script}")
  with pytest.raises(SystemExit) as exit_info:
    module.main(["--n_heldout_batches", "0"])
  assert exit_info.value.code == 2
  error = capsys.readouterr().err.strip().splitlines()[-1]
  assert "invalid n_heldout_batches=0" in error and "Traceback" not in error
