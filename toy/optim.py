"""What trains in each phase, and how: freezing labels and the optimizer.

Frozen leaves get an exact zero update; the rest AdamW with global-norm clipping on a linear
warmup then cosine decay, re-created each phase. In phase 3 the leaves phase 2 trained can
form a "lower" group that learns at ``mix_lower_lr_scale`` times the phase's rate.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from toy.config import Config
from toy.model import path_names
from toy.setup import OPTIONAL_DEFAULTS, TrainableModel


def trainable_labels(model: TrainableModel, params: dict, phase: str, cfg: Config,
                     lower_group: bool = False) -> dict:
  """'train', 'frozen' or 'lower' for each leaf of ``params`` in ``phase``.

  'lower' (phase 3 only, when ``lower_group``): a leaf that phase 2 trains, i.e. where the
  negatives are stored; it learns at ``mix_lower_lr_scale`` times the phase's rate.
  'own' : a leaf the model trains with its own optimizer (``own_rate``: the transformer's
  times node, at ``cfg.times_lr``).
  """
  # toy.setup.OptionalMembers: a model may leave any of them out
  always = getattr(model, "always_frozen", OPTIONAL_DEFAULTS["always_frozen"])
  in_phase = getattr(model, "frozen_in", OPTIONAL_DEFAULTS["frozen_in"])
  own = getattr(model, "own_rate", OPTIONAL_DEFAULTS["own_rate"])

  def label(path, _):
    names = path_names(path)
    frozen = (always(names) or in_phase(phase, names)
              or (phase == "dpo" and cfg.freeze_phase2 and model.phase2_frozen(names)))
    if frozen:
      return "frozen"
    if own(names):
      return "own"
    lower = (phase == "mix" and lower_group and not model.phase2_frozen(names)
             and (cfg.mix_lower_embed or names[0] != "embed"))
    return "lower" if lower else "train"

  return jax.tree_util.tree_map_with_path(label, params)


def lr_schedule(cfg: Config, total_steps: int) -> optax.Schedule:
  """Linear warmup, then cosine decay to 0 at the phase's last step (Hugging Face's shape).

  Unlike optax.warmup_cosine_decay_schedule it stays defined when the phase is shorter than
  the warmup, as the paper's 64-step phase 1 with 100 warmup steps is.
  """
  warmup = cfg.warmup_steps

  def schedule(step):
    step = jnp.asarray(step, jnp.float32)
    warm = step / max(warmup, 1)
    progress = (step - warmup) / max(total_steps - warmup, 1)
    cosine = 0.5 * (1 + jnp.cos(jnp.pi * jnp.clip(progress, 0.0, 1.0)))
    return cfg.lr * jnp.where(step < warmup, warm, cosine)

  return schedule


def make_optimizer(cfg: Config, total_steps: int, labels: dict) -> optax.GradientTransformation:
  """AdamW + global-norm clipping on trainable leaves; frozen leaves get an exact zero update.

  multi_transform + set_to_zero, not optax.masked: masked passes raw gradients through for
  unmasked leaves, and apply_updates would then *add* them (PROTOCOL.md, pitfalls).
  """
  train = optax.chain(optax.clip_by_global_norm(cfg.clip_norm),
                      optax.adamw(lr_schedule(cfg, total_steps), b1=0.9, b2=0.999,
                                  weight_decay=cfg.weight_decay))
  groups = {"train": train, "frozen": optax.set_to_zero()}
  if "own" in jax.tree.leaves(labels):
    # The times node's two scalars: the toy's optimizer (its own clip, no decay toward the
    # saddle a = c = 0; config.TOY_OVERRIDES), so the rest's clip does not see them.
    groups["own"] = optax.chain(
        optax.clip_by_global_norm(cfg.clip_norm),
        optax.adamw(lr_schedule(cfg.replace(lr=cfg.times_lr), total_steps), b1=0.9, b2=0.999,
                    weight_decay=0.0))
  if "lower" not in jax.tree.leaves(labels):
    return optax.multi_transform(groups, labels)
  # The lower group shares the clip and AdamW with the rest; its Adam step is then scaled by
  # s (Adam is invariant to gradient scale, so the step, not the gradient, carries the
  # rate). At s = 0 its gradient is also zeroed before the clip, so the clip sees exactly
  # what it sees when those leaves are frozen, and their update is an exact 0.
  s = jnp.asarray(cfg.mix_lower_lr_scale, jnp.float32)
  is_lower = jax.tree.map(lambda label: label == "lower", labels)
  train_or_frozen = jax.tree.map(lambda label: "train" if label == "lower" else label, labels)

  def scale_lower(factor):
    return optax.stateless(lambda updates, params=None: jax.tree.map(
        lambda u, low: u * factor.astype(u.dtype) if low else u, updates, is_lower))

  return optax.chain(
      scale_lower((s > 0).astype(jnp.float32)),
      optax.multi_transform(groups, train_or_frozen),
      scale_lower(s))
