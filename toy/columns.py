"""The columns of experiments/toy_vs_learned.py: the toy, the learned transformer with the
config's phase-3 lever, when that lever departs from PROTOCOL the same transformer under
PROTOCOL's phase 3, and the acquired transformer (one prior episode at scale 0, then
PROTOCOL's phase 3; experiments/acquired.py). Here so that experiments/inspect_flip.py, which takes those runs apart,
builds and trains the same columns without importing the script.
"""
from __future__ import annotations

import argparse

from toy.cli import config_from_args
from toy.config import Config
from toy.engine import train, train_many
from toy.setup import batch_groups
from toy.io import default_run_name

DEFAULTS = dict(n_seeds=2, preset="partial")  # flags not given
TOY = "toy (hand-built)"
PROTOCOL_COLUMN = "learned, PROTOCOL phase 3"
ACQUIRED_COLUMN = "learned, acquired (1 prior episode at scale 0), PROTOCOL phase 3"


def add_args(parser: argparse.ArgumentParser) -> None:
  """The columns' own flag, beside the Config fields that ``add_config_args`` adds."""
  parser.add_argument("--toy_lr", type=float, default=None, help="the toy's own learning rate")
  parser.add_argument("--no_acquired", action="store_true",
                      help="leave out the acquired column (a second, two-episode program)")


# The toy's own times-node shape: flags for the toy column only (the transformer has none).
TOY_ONLY = ("toy_gates", "toy_gate_mix", "toy_sign")


def learned_args(args: argparse.Namespace) -> argparse.Namespace:
  """The flags as the learned columns read them: the toy's times-node shape (``TOY_ONLY``)
  left out, so that ``--toy_gates M --toy_gate_mix K`` set the toy column alone."""
  return argparse.Namespace(**{**vars(args), **{f: None for f in TOY_ONLY}})


def toy_label(cfg: Config) -> str:
  """The toy column's name: TOY for the toy's one times node, else its gates."""
  if (cfg.toy_gates, cfg.toy_gate_mix, cfg.toy_sign) == (1, 1, "shared"):
    return TOY
  if cfg.toy_gates == 0 or cfg.toy_sign == "per_row":
    return "toy, one gate per memory row"
  return f"toy, {cfg.toy_gates} gates, {cfg.toy_gate_mix} per row"


def column_configs(learned_cfg: Config, args: argparse.Namespace,
                   parser: argparse.ArgumentParser | None = None) -> dict[str, Config]:
  """The columns' configs by name: the toy, the learned transformer (``learned_cfg``, from
  ``config_from_args(learned_args(args), ..., model="transformer", **DEFAULTS)``) with the
  config's phase-3 lever, when that lever is below 1 the same transformer under PROTOCOL's
  phase 3, and (unless ``args.no_acquired``, from scratch only) the acquired one. A bad value exits through ``parser.error`` (raises ValueError without
  ``parser``)."""
  args = argparse.Namespace(**vars(args))  # the caller's namespace stays as it was
  toy_lr = {} if args.toy_lr is None else {"lr": args.toy_lr}
  if args.lr is not None:  # a --lr meant for the learned model must not reach the toy
    args.lr = None
  # The toy runs PROTOCOL's phases: its flip lives in the times node, whatever the lever.
  args.mix_lower_lr_scale = None
  # A checkpoint is the learned columns' start; the toy is built by hand, over the alphabet.
  args.init_from, args.normalize = None, None
  toy_cfg = config_from_args(args, parser, model="toy", mix_lower_lr_scale=1.0, **DEFAULTS,
                             **toy_lr)
  scale = learned_cfg.mix_lower_lr_scale
  toy_name = toy_label(toy_cfg)
  if scale >= 1:
    cols = {toy_name: toy_cfg, "learned transformer (PROTOCOL)": learned_cfg}
  else:
    protocol_cfg = learned_cfg.replace(mix_lower_lr_scale=1.0,
                                       run_name=default_run_name(learned_cfg) + "_protocol")
    cols = {toy_name: toy_cfg, f"learned, phase 3 lower half ×{scale:g}": learned_cfg,
            PROTOCOL_COLUMN: protocol_cfg}
  # A checkpoint or a run that already has prior episodes has no from-scratch twin to acquire.
  if not getattr(args, "no_acquired", False) and not learned_cfg.prior_episodes \
      and not learned_cfg.init_from:
    cols[ACQUIRED_COLUMN] = learned_cfg.replace(
        mix_lower_lr_scale=1.0, prior_episodes=1, prior_mix_lower_lr_scale=0.0,
        run_name=default_run_name(learned_cfg) + "_acquired")
  return cols


def train_columns(cfgs: dict[str, Config], save: bool = True) -> dict:
  """Trains the columns, each toy alone and the learned ones in as few programs as
  ``batchable`` allows (phases 1-2 trained once for columns that differ only in phase-3
  fields; the acquired column runs two episodes, so it is a program of its own);
  {name: RunResult}."""
  results = {name: train(c, save=save) for name, c in cfgs.items() if c.model == "toy"}
  learned = [n for n, c in cfgs.items() if c.model != "toy"]
  for group in batch_groups([cfgs[n] for n in learned]):
    names = [learned[i] for i in group]
    results.update(zip(names, train_many([cfgs[n] for n in names], save=save)))
  return {name: results[name] for name in cfgs}
