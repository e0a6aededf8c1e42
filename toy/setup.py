"""What a run starts from, per row (seeds x configs): every episode's data, step tables,
training keys and traced hyperparameters, and the initial models (``setup``); and which
configs can share one compiled program (``batchable``, ``compile_key``, the field lists).
What the engine asks of a model and of a model factory is written down here, once
(``TrainableModel``, ``OptionalMembers``, ``ModelFactory``).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Protocol

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from toy import data as data_lib
from toy.config import Config, role_fields
from toy.mechanism_io import build_toy
from toy.model import Transformer, TransformerConfig

# Fields that never reach a compiled program; blanking them lets runs that differ only in
# these (another seed, output folder or hand-set toy scalar) share compiled programs.
_HOST_ONLY = role_fields("host")
# Scalars that enter the compiled program as traced per-seed values, not constants: one
# program then trains a grid of learning rates or loss weights side by side under vmap.
HYPER = ("lr", "weight_decay", "clip_norm", "beta", "label_smoothing", "dpo_weight",
         "ft_weight", "random_weight", "mix_lower_lr_scale", "mix_lr")
# Fields that only phase 3 reads: rows that differ only in these (and are the same seed)
# are identical through phases 1-2, which train_many then runs once for all of them.
PHASE3_ONLY = ("ft_weight", "random_weight", "mix_lower_lr_scale", "mix_lr", "mix_lower_embed")
assert set(HYPER + PHASE3_ONLY) <= {f.name for f in dataclasses.fields(Config)}


def compile_key(cfg: Config) -> Config:
  """The config as a compiled program sees it: host-only fields and HYPER blanked."""
  return cfg.replace(**_HOST_ONLY, **{k: 0.0 for k in HYPER})


def batchable(a: Config, b: Config) -> bool:
  """Whether two configs can share one vmapped program (they differ only in HYPER/host fields)."""
  same_labels = (a.freeze_phase2, a.toy_train_sign) == (b.freeze_phase2, b.toy_train_sign)
  # init_from never reaches a program, but a checkpoint's rows are another module than a
  # fresh transformer's (and another checkpoint's token ids): one checkpoint per program.
  # prior_episodes is host-only (no program reads it) but sets how many episodes the rows run.
  return (compile_key(a) == compile_key(b) and same_labels and a.init_from == b.init_from
          and a.prior_episodes == b.prior_episodes)


def batch_groups(cfgs) -> list[list[int]]:
  """Indices of ``cfgs`` grouped so that each group can train as one ``train_many`` program:
  each config joins the first group whose first config it is ``batchable`` with."""
  groups: list[list[int]] = []
  for i, cfg in enumerate(cfgs):
    group = next((g for g in groups if batchable(cfgs[g[0]], cfg)), None)
    if group is None:
      groups.append([i])
    else:
      group.append(i)
  return groups


# ----------------------------------------------------------------------------- the model interface
# Besides these members a model must be an nnx.Module: setup splits it into a static graph,
# its nnx.Param leaves (what the phases train) and the rest of its state (never trained), and
# every program merges them back. ``path`` below is a leaf's names (toy.model.path_names),
# e.g. ('blocks', 0, 'attn', 'qkv', 'kernel').

class TrainableModel(Protocol):
  """The members the engine calls on every model (Transformer, ToyMechanism, PythiaTask)."""

  def __call__(self, tokens_BxT: jax.Array) -> jax.Array:
    """Logits B x T x V (letters first), read by every loss and evaluation via ``apply_fn``;
    the engine passes the tokens alone (``hooks`` and ``ablate`` are toy.inspect's)."""

  def phase2_frozen(self, path: tuple) -> bool:
    """An exact zero update in phase 2 under ``freeze_phase2``; a leaf it leaves trainable is
    in phase 3's lower group, at ``mix_lower_lr_scale`` (``toy.optim.trainable_labels``)."""


class OptionalMembers(Protocol):
  """Members a TrainableModel may add; ``toy.optim.trainable_labels`` reads a missing one as
  its entry in OPTIONAL_DEFAULTS."""

  def always_frozen(self, path: tuple) -> bool:
    """An exact zero update in every phase."""

  def frozen_in(self, phase: str, path: tuple) -> bool:
    """An exact zero update in ``phase`` (a ``toy.phases.PHASES`` name)."""

  def own_rate(self, path: tuple) -> bool:
    """Its own AdamW at ``Config.times_lr``, without weight decay (``toy.optim.make_optimizer``)."""


# A model without an optional member: no leaf frozen beyond phase2_frozen, one learning rate.
OPTIONAL_DEFAULTS = {
    "always_frozen": lambda path: False,
    "frozen_in": lambda phase, path: False,
    "own_rate": lambda path: False,
}


class ModelFactory(Protocol):
  """``make_model`` of ``setup``, ``toy.engine.train`` and the rest (default ``build_model``)."""

  def __call__(self, cfg: Config, data: dict, rngs: nnx.Rngs) -> TrainableModel:
    """One row's initial model, from its config, its NumPy data (see ``setup``) and its own
    init key; called once per row."""


def build_model(cfg: Config, data: dict, rngs: nnx.Rngs) -> TrainableModel:
  """The default factory: ``cfg.model`` picks the learned transformer or the toy;
  ``cfg.init_from``, a checkpoint instead of a fresh transformer."""
  if cfg.model == "toy":
    return build_toy(cfg, data, rngs)
  if cfg.init_from:
    from toy.convert import checkpoint_model  # imports transformers: only when needed
    return checkpoint_model(cfg)
  times = (data_lib.prefix_token(cfg, data_lib.REGULAR),
           data_lib.prefix_token(cfg, data_lib.REVERSE))
  return Transformer(TransformerConfig(
      vocab_size=data_lib.vocab_size(cfg), n_layers=cfg.n_layers, d_model=cfg.d_model,
      n_heads=cfg.n_heads, mlp=cfg.mlp, times_node=times if cfg.times_node else None,
      times_a=cfg.toy_a, times_c=cfg.toy_c, times_train=cfg.toy_train_sign), rngs)


@functools.lru_cache(maxsize=64)
def apply_fn(graphdef):
  """``apply(params, state, tokens_BxT)``: the model of ``graphdef`` on pure-dict state."""
  return jax.jit(lambda params, state, tokens_BxT: nnx.merge(graphdef, params, state)(tokens_BxT))


@dataclasses.dataclass
class Episode:
  """One episode's arrays per row: its fixed sets, step tables, training keys and traced
  hyperparameters (a prior episode's phase 3 runs at ``prior_mix_lower_lr_scale``)."""
  data: dict
  tables: dict
  k_train: jax.Array
  hyperparams: dict


@dataclasses.dataclass
class Setup:
  """What ``train_many`` builds before phase 1; every array has a leading row axis S.

  ``episodes`` holds the prior episodes, then the measured one, whose arrays are also
  ``data``, ``tables``, ``k_train`` and ``hyperparams``.
  """
  seeds: list[int]
  config_of_row: list[int]  # config index of each row
  data: dict
  tables: dict
  k_train: jax.Array
  graphdef: object
  params: dict
  # the model's state that is not a parameter (nnx.split's remainder: the toy's trie and
  # gate code, a checkpoint's token ids); no phase trains it
  state: dict
  model0: TrainableModel  # row 0's model, for the freezing labels
  hyperparams: dict  # {HYPER field: its value per row}, entering the programs traced
  episodes: list[Episode] = dataclasses.field(default_factory=list)


def _episode(cfg: Config, seeds: list[int], row_cfgs: list[Config], episode: int | None):
  """The data, tables and training keys of ``episode`` (None: the measured one) per row."""
  k_data, _, k_tables, k_train = data_lib.seed_keys(seeds, episode)
  data = jax.vmap(lambda k: data_lib.make_data(cfg, k))(k_data)
  tables = jax.vmap(lambda k: data_lib.make_tables(cfg, k))(k_tables)
  scale = (lambda c: c.mix_lower_lr_scale) if episode is None else (
      lambda c: c.prior_mix_lower_lr_scale)
  hyperparams = {k: jnp.asarray([scale(c) if k == "mix_lower_lr_scale" else getattr(c, k)
                                 for c in row_cfgs], jnp.float32) for k in HYPER}
  return Episode(data, tables, k_train, hyperparams)


def setup(cfgs: list[Config], make_model: ModelFactory = build_model) -> Setup:
  """Data, step tables, models and traced hyperparameters for every seed of every config, for
  every episode (``cfg.prior_episodes`` prior ones, then the measured one).

  Models are built in a plain loop, not a vmap: a factory sees concrete NumPy data (the toy
  builds its memory's address table from the negatives; with prior episodes it also gets
  theirs, as ``prior_negatives``) and runs once per seed, from the seed's own init key.
  """
  cfg = cfgs[0]
  seeds = [s for c in cfgs for s in c.seeds]
  config_of_row = [i for i, c in enumerate(cfgs) for _ in c.seeds]
  row_cfgs = [cfgs[i] for i in config_of_row]
  k_init = data_lib.seed_keys(seeds)[1]
  episodes = [_episode(cfg, seeds, row_cfgs, e) for e in range(cfg.prior_episodes)]
  episodes.append(_episode(cfg, seeds, row_cfgs, None))
  per_row, models = [], []
  for i, row_cfg in enumerate(row_cfgs):
    row_data = {k: np.asarray(v[i]) for k, v in episodes[-1].data.items()}
    if cfg.prior_episodes:
      row_data["prior_negatives"] = np.concatenate(
          [np.asarray(ep.data[s][i]) for ep in episodes[:-1] for s in ("useful", "heldout")])
    model = make_model(row_cfg, row_data, nnx.Rngs(k_init[i]))
    graphdef, params, state = nnx.split(model, nnx.Param, ...)
    per_row.append((nnx.to_pure_dict(params), nnx.to_pure_dict(state)))
    models.append(model)
  params, state = jax.tree.map(lambda *xs: jnp.stack(xs), *per_row)
  measured = episodes[-1]
  return Setup(seeds, config_of_row, measured.data, measured.tables, measured.k_train, graphdef,
               params, state, models[0], measured.hyperparams, episodes)
