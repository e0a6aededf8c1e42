"""The scripts' command line: flags -> a config, its ``init_from`` checkpoint checked before any
work (``toy.convert.resolve_init_from``), a bad value answered with one line naming the field.

The flags themselves are declared in ``toy.config`` (``add_config_args``).
"""
from __future__ import annotations

import argparse
import dataclasses

from toy.config import Config, add_config_args, make_config
from toy.convert import resolve_init_from


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None,
                     **defaults) -> Config:
  """The config the flags give, ``defaults`` standing in for flags not given; with
  ``init_from``, the checkpoint folder is checked and its network shape replaces the preset's.

  A bad value raises ValueError naming the field, or, with ``parser``, exits through
  ``parser.error`` with that one line (no traceback).
  """
  given = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config)
           if getattr(args, f.name, None) is not None}
  given = {**defaults, **given}
  try:
    cfg = make_config(given.pop("preset", "cpu"), given.pop("model", "transformer"), **given)
    return resolve_init_from(cfg, given=set(given)) if cfg.init_from else cfg
  except ValueError as e:
    if parser is None:
      raise
    parser.error(str(e))


def parse_config(parser: argparse.ArgumentParser, argv=None,
                 **defaults) -> tuple[Config, argparse.Namespace]:
  """Every Config field as a flag on ``parser``, ``argv`` parsed: (the config, all args).

  ``defaults`` stand in for flags not given (e.g. ``n_seeds=5``); a bad value exits with a
  one-line error naming the field and its allowed range.
  """
  add_config_args(parser)
  args = parser.parse_args(argv)
  return config_from_args(args, parser, **defaults), args
