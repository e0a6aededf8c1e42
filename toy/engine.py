"""The three-phase SFT + DPO engine, shared by the learned transformer and the toy mechanism.

A model is any ``flax.nnx`` module that maps ``tokens_BxT`` to ``logits_BxTxV`` and says which
of its parameters are frozen in phase 2 (``phase2_frozen(path)``; optionally
``always_frozen(path)`` and ``frozen_in(phase, path)``). The module is split once into a
static graph and pure-dict state, and each phase is one ``jax.jit``-ed program that
``lax.scan``s ``eval_every`` steps and then evaluates, ``jax.vmap``-ed over seeds. No Python runs per step or per example.

Phases (PROTOCOL.md):
  pretrain: next-token loss on fresh random passwords, regular prefix.
  dpo:      random (chosen) vs negative (rejected), regular prefix, against the frozen phase-1
            model; the unembedding side is frozen.
  mix:      dpo + ft_weight * next-token(useful negatives, reverse) +
            random_weight * next-token(fresh random, regular).
"""
from __future__ import annotations

import csv
import dataclasses
import functools
import json
import os
import shutil
import tempfile
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from toy import data as D
from toy.config import Config, validate
from toy.losses import dpo_loss, token_logps

PHASES = ("pretrain", "dpo", "mix")
EVAL_SETS = ("control", "useful", "heldout")
PREFIXES = {"regular": D.REGULAR, "reverse": D.REVERSE}
# PROTOCOL.md reads phases 1-2 under "regular" and phase 3 under "reverse".
PROTOCOL_PREFIX = {"pretrain": "regular", "dpo": "regular", "mix": "reverse"}


def eval_prefixes(cfg: Config, phase: str) -> tuple[str, ...]:
  """The prefixes evaluated after a chunk of ``phase`` (both at initialisation)."""
  if cfg.eval_prefixes == "both" or phase not in PROTOCOL_PREFIX:
    return tuple(PREFIXES)
  return (PROTOCOL_PREFIX[phase],)


# ----------------------------------------------------------------------------- models

def build_model(cfg: Config, data: dict, rngs: nnx.Rngs) -> nnx.Module:
  """The default factory: ``cfg.model`` picks the learned transformer or the toy."""
  if cfg.model == "toy":
    from toy.mechanism import build_toy  # the toy imports this module's helpers
    return build_toy(cfg, data, rngs)
  from toy.model import Transformer, TransformerConfig
  return Transformer(TransformerConfig(vocab_size=D.vocab_size(cfg), n_layers=cfg.n_layers,
                                       d_model=cfg.d_model, n_heads=cfg.n_heads), rngs)


def _path_names(path) -> tuple:
  return tuple(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))) for k in path)


def trainable_labels(model: nnx.Module, params: dict, phase: str, cfg: Config,
                     lower_group: bool = False) -> dict:
  """'train', 'frozen' or 'lower' for each leaf of ``params`` in ``phase``.

  'lower' (phase 3 only, when ``lower_group``): a leaf that phase 2 trains, i.e. where the
  negatives are stored; it learns at ``mix_lower_lr_scale`` times the phase's rate.
  """
  always = getattr(model, "always_frozen", lambda path: False)
  in_phase = getattr(model, "frozen_in", lambda phase, path: False)  # optional, per phase

  def label(path, _):
    names = _path_names(path)
    frozen = (always(names) or in_phase(phase, names)
              or (phase == "dpo" and cfg.freeze_phase2 and model.phase2_frozen(names)))
    if frozen:
      return "frozen"
    lower = (phase == "mix" and lower_group and not model.phase2_frozen(names)
             and (cfg.mix_lower_embed or names[0] != "embed"))
    return "lower" if lower else "train"

  return jax.tree_util.tree_map_with_path(label, params)


# ----------------------------------------------------------------------------- optimizer

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
  if "lower" not in jax.tree.leaves(labels):
    return optax.multi_transform({"train": train, "frozen": optax.set_to_zero()}, labels)
  # The lower group shares the clip and AdamW with the rest; its Adam step is then scaled by
  # s (Adam is invariant to gradient scale, so the step, not the gradient, carries the
  # rate). At s = 0 its gradient is also zeroed before the clip, so the clip sees exactly
  # what it sees when those leaves are frozen, and their update is an exact 0.
  s = jnp.asarray(cfg.mix_lower_lr_scale, jnp.float32)
  is_lower = jax.tree.map(lambda label: label == "lower", labels)
  train_or_frozen = jax.tree.map(lambda label: "frozen" if label == "frozen" else "train", labels)

  def scale_lower(factor):
    return optax.stateless(lambda updates, params=None: jax.tree.map(
        lambda u, low: u * factor.astype(u.dtype) if low else u, updates, is_lower))

  return optax.chain(
      scale_lower((s > 0).astype(jnp.float32)),
      optax.multi_transform({"train": train, "frozen": optax.set_to_zero()}, train_or_frozen),
      scale_lower(s))


# ----------------------------------------------------------------------------- losses per phase

def phase_steps(cfg: Config, phase: str) -> int:
  steps = {"pretrain": cfg.pretrain_steps, "dpo": cfg.dpo_steps, "mix": cfg.mix_steps_resolved}
  return steps[phase]


def make_tables(cfg: Config, key) -> dict:
  """Which negatives each DPO step rejects and which useful negatives each mix step imitates."""
  k2, k3, k3u = jax.random.split(key, 3)
  B = cfg.batch_size
  return {
      "dpo/neg": D.epoch_indices(k2, cfg.n_negatives, max(cfg.dpo_steps, 1), B),
      "mix/neg": D.epoch_indices(k3, cfg.n_negatives, max(cfg.mix_steps_resolved, 1), B),
      "mix/useful": D.epoch_indices(k3u, cfg.n_useful, max(cfg.mix_steps_resolved, 1), B),
  }


def _negatives(data):
  return jnp.concatenate([data["useful"], data["heldout"]], axis=0)


def phase_loss(cfg: Config, apply: Callable, phase: str, params, ref, rest, data, tables,
               step, key):
  """The loss of one step of ``phase`` and its metrics. Batches are built here, in-graph."""
  B, A = cfg.batch_size, cfg.alphabet_size
  k_chosen, k_random = jax.random.split(jax.random.fold_in(key, step))
  chosen = D.random_passwords(cfg, k_chosen, B)

  def tok_logps(p, pws, prefixes):
    inputs = jnp.concatenate([D.model_inputs(cfg, pw, w) for pw, w in zip(pws, prefixes)])
    return token_logps(apply(p, rest, inputs), jnp.concatenate(pws), A)

  if phase == "pretrain":
    loss = -tok_logps(params, [chosen], [D.REGULAR]).mean()
    return loss, {"loss": loss, "sft/random": loss}

  rejected = _negatives(data)[tables[f"{phase}/neg"][step]]
  pairs, prefixes = [chosen, rejected], [D.REGULAR, D.REGULAR]
  if phase == "mix":  # one forward pass over all four batches
    useful = data["useful"][tables["mix/useful"][step]]
    pairs += [useful, D.random_passwords(cfg, k_random, B)]
    prefixes += [D.REVERSE, D.REGULAR]
  logp_NxL = tok_logps(params, pairs, prefixes)
  ref_2BxL = jax.lax.stop_gradient(tok_logps(ref, pairs[:2], prefixes[:2]))
  seq_N, ref_2B = logp_NxL.sum(-1), ref_2BxL.sum(-1)
  dpo, metrics = dpo_loss(seq_N[:B], seq_N[B:2 * B], ref_2B[:B], ref_2B[B:],
                          beta=cfg.beta, kind=cfg.dpo_loss, label_smoothing=cfg.label_smoothing)
  metrics["dpo"] = dpo
  loss = cfg.dpo_weight * dpo
  if phase == "mix":
    sft_useful, sft_random = -logp_NxL[2 * B:3 * B].mean(), -logp_NxL[3 * B:].mean()
    loss = loss + cfg.ft_weight * sft_useful + cfg.random_weight * sft_random
    metrics.update({"sft/useful_reverse": sft_useful, "sft/random": sft_random})
  metrics["loss"] = loss
  return loss, metrics


def evaluate(cfg: Config, apply: Callable, params, rest, data,
             prefixes: tuple[str, ...] = tuple(PREFIXES)) -> dict:
  """Mean per-token log-likelihood of each eval set under each prefix (one forward pass)."""
  E = cfg.eval_size
  sets = {"control": data["control"], "useful": data["useful"][:E], "heldout": data["heldout"][:E]}
  names = [(p, s) for p in prefixes for s in EVAL_SETS]
  inputs = jnp.concatenate([D.model_inputs(cfg, sets[s], PREFIXES[p]) for p, s in names])
  targets = jnp.concatenate([sets[s] for _, s in names])
  per_set = token_logps(apply(params, rest, inputs), targets, cfg.alphabet_size).reshape(
      len(names), -1)
  return {f"eval/{p}/{s}": v for (p, s), v in zip(names, per_set.mean(-1))}


def centred_target_logits(cfg: Config, apply: Callable, params, rest, pws: list, prefixes: list):
  """Per password (one seed), the logit of each true next letter minus the alphabet's mean
  logit, averaged over the password's tokens: the quantity the toy's law is about (its
  centred logits are s(prefix) times a memory row). One forward pass for all sets."""
  inputs = jnp.concatenate([D.model_inputs(cfg, pw, w) for pw, w in zip(pws, prefixes)])
  logits = apply(params, rest, inputs)[..., :cfg.alphabet_size]
  per_pw = centred_at(logits, jnp.concatenate(pws))
  return jnp.split(per_pw.mean(-1), np.cumsum([pw.shape[0] for pw in pws])[:-1])


def centred_at(logits_BxTxA, targets_BxT):
  """The true next letter's logit minus the mean logit over the alphabet, B x T."""
  centred = logits_BxTxA - logits_BxTxA.mean(-1, keepdims=True)
  return jnp.take_along_axis(centred, targets_BxT[..., None], axis=-1)[..., 0]


def slope_through_origin(x, y):
  return (x * y).sum(-1) / (x * x).sum(-1)


def evaluate_law(cfg: Config, apply: Callable, params, rest, data) -> dict:
  """Law slopes (reverse on regular centred target logit) of the first eval_size useful and
  held-out negatives, so that G can be followed over phase 3. A separate forward pass: the
  log-likelihood evaluation stays the computation it was."""
  E = cfg.eval_size
  sets = [data["useful"][:E], data["heldout"][:E]]
  u_reg, h_reg, u_rev, h_rev = centred_target_logits(
      cfg, apply, params, rest, sets * 2, [D.REGULAR] * 2 + [D.REVERSE] * 2)
  return {"eval/law/useful": slope_through_origin(u_reg, u_rev),
          "eval/law/heldout": slope_through_origin(h_reg, h_rev)}


# ----------------------------------------------------------------------------- the run

@dataclasses.dataclass
class RunResult:
  """Everything a run produced. Arrays carry a leading seed axis S."""
  cfg: Config
  history: list[dict]  # one row per seed per evaluation
  summary: list[dict]  # one dict per seed
  graphdef: object
  params: dict
  rest: dict
  data: dict
  apply: Callable
  run_dir: str | None

  def seed_slice(self, i: int):
    take = lambda tree: jax.tree.map(lambda x: x[i], tree)
    return take(self.params), take(self.rest), take(self.data)

  def model(self, i: int = 0) -> nnx.Module:
    """The trained model of seed index ``i`` as a live nnx module (for inspection)."""
    params, rest, _ = self.seed_slice(i)
    return nnx.merge(self.graphdef, params, rest)


class NonFiniteLossError(FloatingPointError):
  pass


def init_state(row_cfgs: list[Config], make_model: Callable, keys, data):
  """Builds one model per seed and stacks their states on a leading seed axis.

  A plain loop, not a vmap: a factory sees concrete NumPy data (the toy builds its memory's
  address table from the negatives) and runs once per seed, which costs little.
  Returns (graphdef, params, rest, model of the first seed).
  """
  states, models = [], []
  for i in range(len(keys)):
    seed_data = {k: np.asarray(v[i]) for k, v in data.items()}
    model = make_model(row_cfgs[i], seed_data, nnx.Rngs(keys[i]))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    states.append((nnx.to_pure_dict(params), nnx.to_pure_dict(rest)))
    models.append(model)
  params, rest = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
  return graphdef, params, rest, models[0]


# Fields that never reach a compiled program; blanking them lets runs that differ only in
# these (another seed, output folder or hand-set toy scalar) share compiled programs.
_HOST_ONLY = dict(preset="", seed=0, n_seeds=1, out_dir="", run_name="", toy_a=0.0, toy_c=0.0,
                  toy_gain_add=0.0, toy_weights="", toy_train_sign=True, freeze_phase2=True)
# Scalars that enter the compiled program as traced per-seed values, not constants: one
# program then trains a grid of learning rates or loss weights side by side under vmap.
HYPER = ("lr", "weight_decay", "clip_norm", "beta", "label_smoothing", "dpo_weight",
         "ft_weight", "random_weight", "mix_lower_lr_scale", "mix_lr")
# Fields that only phase 3 reads: rows that differ only in these (and are the same seed)
# are identical through phases 1-2, which train_many then runs once for all of them.
PHASE3_ONLY = ("ft_weight", "random_weight", "mix_lower_lr_scale", "mix_lr", "mix_lower_embed")


def compile_key(cfg: Config) -> Config:
  return cfg.replace(**_HOST_ONLY, **{k: 0.0 for k in HYPER})


def _apply_fn(graphdef):
  return lambda params, rest, tokens_BxT: nnx.merge(graphdef, params, rest)(tokens_BxT)


@functools.partial(jax.jit, static_argnames=("cfg", "graphdef", "phase", "n_steps", "labels"),
                   donate_argnums=(0, 1))
def run_chunk(params, opt_state, ref, rest, data, tables, key, hyper, start, *, cfg, graphdef,
              phase, n_steps, labels):
  """n_steps train steps of ``phase`` (scanned), then an evaluation; vmapped over seeds.

  Module-level and keyed by static arguments, so every chunk of a phase, and every run with
  the same config, reuses one compiled program. Steps past the phase's end (the last chunk
  is padded to n_steps) leave the state untouched and are flagged ``valid = 0``.
  """
  apply, n_total = _apply_fn(graphdef), phase_steps(cfg, phase)
  labels = _unflatten_labels(params, labels)

  def one_seed(params, opt_state, ref, rest, data, tables, key, hyper):
    cfg_s = cfg.replace(**hyper)  # this seed's traced hyperparameters
    if phase == "mix":
      cfg_s = cfg_s.replace(lr=jnp.where(cfg_s.mix_lr > 0, cfg_s.mix_lr, cfg_s.lr))
    tx = make_optimizer(cfg_s, n_total, labels)

    def step_fn(carry, step):
      params, opt_state = carry
      grad_fn = jax.value_and_grad(phase_loss, argnums=3, has_aux=True)
      (_, metrics), grads = grad_fn(cfg_s, apply, phase, params, ref, rest, data, tables, step,
                                    key)
      updates, new_opt_state = tx.update(grads, opt_state, params)
      valid = step < n_total
      keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(valid, a, b), new, old)
      carry = keep((optax.apply_updates(params, updates), new_opt_state), (params, opt_state))
      return carry, {**metrics, "valid": valid}

    (params, opt_state), metrics = jax.lax.scan(step_fn, (params, opt_state),
                                                start + jnp.arange(n_steps))
    evals = evaluate(cfg, apply, params, rest, data, eval_prefixes(cfg, phase))
    if phase == "mix":
      evals.update(evaluate_law(cfg, apply, params, rest, data))
    return params, opt_state, metrics, evals

  return jax.vmap(one_seed)(params, opt_state, ref, rest, data, tables, key, hyper)


def _unflatten_labels(params, labels: tuple) -> dict:
  """Rebuilds the (vmapped) params' label tree from the hashable tuple of its leaves."""
  return jax.tree.unflatten(jax.tree.structure(params), list(labels))


@functools.partial(jax.jit, static_argnames=("cfg", "graphdef"))
def evaluate_seeds(params, rest, data, *, cfg, graphdef):
  return jax.vmap(lambda p, r, d: evaluate(cfg, _apply_fn(graphdef), p, r, d))(params, rest, data)


def _check_finite(metrics: dict, phase: str, start: int, seeds: list[int]):
  loss_SxN = np.asarray(metrics["loss"])
  bad = ~np.isfinite(loss_SxN) & np.asarray(metrics["valid"])
  if bad.any():
    s, n = np.argwhere(bad)[0]
    raise NonFiniteLossError(
        f"non-finite loss ({loss_SxN[s, n]}) in phase '{phase}' at step {start + n} "
        f"(seed {seeds[s]}); the run was stopped and no run folder was written")


def train(cfg: Config, make_model: Callable = build_model, *, progress: bool = True,
          save: bool = True, on_phase_end: Callable | None = None) -> RunResult:
  """Runs the three phases for seeds cfg.seed .. cfg.seed + n_seeds - 1, vmapped together.

  ``on_phase_end(phase, params)`` sees a host copy of the seed-stacked parameters after each
  phase (for snapshots and tests). A non-finite loss raises NonFiniteLossError naming the
  phase and step; the run folder is written only after all phases succeed.
  """
  return train_many([cfg], make_model, progress=progress, save=save,
                    on_phase_end=on_phase_end)[0]


def batchable(a: Config, b: Config) -> bool:
  """Whether two configs can share one vmapped program (they differ only in HYPER/host fields)."""
  same_labels = (a.freeze_phase2, a.toy_train_sign) == (b.freeze_phase2, b.toy_train_sign)
  return compile_key(a) == compile_key(b) and same_labels


@dataclasses.dataclass
class Setup:
  """What ``train_many`` builds before phase 1; every array has a leading row axis S."""
  seeds: list[int]
  owner: list[int]  # config index of each row
  data: dict
  tables: dict
  k_train: jax.Array
  graphdef: object
  params: dict
  rest: dict
  model0: nnx.Module  # row 0's model, for the freezing labels
  hyper: dict

  def phase_labels(self, cfg: Config, phase: str,
                   lower_group: bool = False) -> tuple[dict, tuple]:
    """The optimizer's label tree for ``phase`` and the hashable tuple run_chunk takes."""
    # Shapes only: labels depend on paths, and train_many donates the arrays themselves.
    one_row = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), self.params)
    labels = trainable_labels(self.model0, one_row, phase, cfg, lower_group)
    return labels, tuple(jax.tree.leaves(labels))


def seed_keys(seeds: list[int]):
  """(data, init, tables, train) keys per seed: the one place a seed becomes randomness."""
  keys = jnp.stack([jax.random.key_data(jax.random.key(s)) for s in seeds])
  keys = jax.vmap(lambda k: jax.random.split(jax.random.wrap_key_data(k), 4))(keys)
  return tuple(keys[:, i] for i in range(4))


def seed_data(cfg: Config, seed: int) -> dict:
  """The fixed sets of one seed as NumPy arrays, exactly as a run with that seed sees them."""
  k_data = seed_keys([seed])[0]
  return {k: np.asarray(v[0]) for k, v in jax.vmap(lambda k: D.make_data(cfg, k))(k_data).items()}


def setup(cfgs: list[Config], make_model: Callable = build_model) -> Setup:
  """Data, step tables, models and traced hyperparameters for every seed of every config."""
  cfg = cfgs[0]
  seeds = [s for c in cfgs for s in c.seeds]
  owner = [i for i, c in enumerate(cfgs) for _ in c.seeds]
  k_data, k_init, k_tables, k_train = seed_keys(seeds)
  data = jax.vmap(lambda k: D.make_data(cfg, k))(k_data)
  tables = jax.vmap(lambda k: make_tables(cfg, k))(k_tables)
  row_cfgs = [cfgs[i] for i in owner]
  graphdef, params, rest, model0 = init_state(row_cfgs, make_model, k_init, data)
  hyper = {k: jnp.asarray([getattr(c, k) for c in row_cfgs], jnp.float32) for k in HYPER}
  return Setup(seeds, owner, data, tables, k_train, graphdef, params, rest, model0, hyper)


def shared_rows(row_cfgs: list[Config]) -> tuple[list[int], np.ndarray]:
  """Rows identical through phases 1-2: (the first row of each group, each row's group).

  Two rows are identical there when their configs (each for its own seed) differ only in
  PHASE3_ONLY fields: the same data, initialisation, tables and training keys.
  """
  blank = {f.name: f.default for f in dataclasses.fields(Config) if f.name in PHASE3_ONLY}
  keys = [c.replace(n_seeds=1, out_dir="", run_name="", **blank) for c in row_cfgs]
  first: list[int] = []
  expand = []
  for i, k in enumerate(keys):
    j = next((g for g, f in enumerate(first) if keys[f] == k), None)
    if j is None:
      first.append(i)
      j = len(first) - 1
    expand.append(j)
  return first, np.asarray(expand)


def train_many(cfgs: list[Config], make_model: Callable = build_model, *, progress: bool = True,
               save: bool = True, on_phase_end: Callable | None = None) -> list[RunResult]:
  """Trains every seed of every config in one vmapped program; one RunResult per config.

  The configs must be ``batchable``: a grid over learning rate, beta or loss weights (and
  seeds) costs one compilation instead of one per point.
  """
  for c in cfgs:
    validate(c)
    if not batchable(cfgs[0], c):
      raise ValueError("train_many: configs differ in more than seeds, toy scalars and "
                       f"{HYPER}; train them separately")
  cfg = cfgs[0]
  st = setup(cfgs, make_model)
  seeds, owner, graphdef = st.seeds, st.owner, st.graphdef
  params, ref = st.params, None  # phase 1 has no DPO term, so no reference yet
  lower_group = any(c.mix_lower_lr_scale != 1 for c in cfgs)
  # Rows that differ only in PHASE3_ONLY fields train phases 1-2 once, on their first row.
  first, expand = shared_rows([cfgs[i].replace(seed=s) for i, s in zip(owner, seeds)])
  first = np.asarray(first)
  history: list[dict] = []
  static_cfg = compile_key(cfg)
  evals = evaluate_seeds(params, st.rest, st.data, cfg=static_cfg, graphdef=graphdef)
  _record(history, seeds, owner, "init", 0, 0, {}, evals)
  sharing = len(first) < len(seeds)
  if sharing:
    params = jax.tree.map(lambda x: x[first], params)
  total = sum(phase_steps(cfg, p) for p in PHASES)
  label = f"{cfg.model} x{len(seeds)}"
  bar = tqdm(total=total, desc=label, disable=not progress, unit="step", dynamic_ncols=True)
  global_step = 0
  try:
    for phase_i, phase in enumerate(PHASES):
      active = first if sharing and phase != "mix" else None  # None: every row
      if sharing and phase == "mix":
        params, ref = (jax.tree.map(lambda x: x[expand], t) for t in (params, ref))
      rows = lambda tree: tree if active is None else jax.tree.map(lambda x: x[active], tree)
      # Each shared row's values stand for every row it serves in the history.
      spread = (lambda tree: tree) if active is None else (
          lambda tree: jax.tree.map(lambda x: np.asarray(x)[expand], tree))
      rest, data, tables, hyper = rows(st.rest), rows(st.data), rows(st.tables), rows(st.hyper)
      n_total = phase_steps(cfg, phase)
      labels, label_tuple = st.phase_labels(cfg, phase, lower_group)
      opt_state = jax.vmap(make_optimizer(cfg, n_total, labels).init)(params)
      phase_key = jax.vmap(lambda k: jax.random.fold_in(k, phase_i))(rows(st.k_train))
      n = min(cfg.eval_every, n_total)
      bar.set_description(f"{label}: {phase}")
      for start in range(0, n_total, n):
        params, opt_state, metrics, evals = run_chunk(
            params, opt_state, ref, rest, data, tables, phase_key, hyper, jnp.int32(start),
            cfg=static_cfg, graphdef=graphdef, phase=phase, n_steps=n, labels=label_tuple)
        _check_finite(metrics, phase, start,
                      seeds if active is None else [seeds[i] for i in active])
        done = min(n, n_total - start)
        global_step += done
        _record(history, seeds, owner, phase, start + done, global_step, spread(metrics),
                spread(evals))
        bar.update(done)
      if phase == "pretrain":
        ref = jax.tree.map(jnp.copy, params)  # the frozen reference for DPO
      if on_phase_end is not None:
        on_phase_end(phase, spread(jax.tree.map(np.array, params)))
  finally:
    bar.close()
  rest, data = st.rest, st.data

  results = []
  for i, c in enumerate(cfgs):
    rows = np.array([j for j, o in enumerate(owner) if o == i])
    take = lambda tree: jax.tree.map(lambda x: x[rows], tree)
    own = [{k: v for k, v in r.items() if k != "config"} for r in history if r["config"] == i]
    result = RunResult(c, own, summarize(c, own), graphdef, take(params), take(rest),
                       take(data), _apply_fn(graphdef), None)
    if save:
      result.run_dir = save_run(result)
    results.append(result)
  return results


def _record(history, seeds, owner, phase, step, global_step, metrics, evals):
  valid = np.asarray(metrics.pop("valid", True), dtype=bool)
  train_means = {k: np.where(valid, np.asarray(v), 0).sum(-1) / np.maximum(valid.sum(-1), 1)
                 for k, v in metrics.items()}
  evals = {k: np.asarray(v) for k, v in evals.items()}
  for i, seed in enumerate(seeds):
    row = {"config": owner[i], "seed": seed, "phase": phase, "step": step,
           "global_step": global_step}
    row.update({f"train/{k}": float(v[i]) for k, v in train_means.items()})
    row.update({k: float(v[i]) for k, v in evals.items()})
    history.append(row)


def summarize(cfg: Config, history: list[dict]) -> list[dict]:
  """Per seed: PROTOCOL's headline (max over phase-3 evals) beside the final value.

  Phases 1-2 are read under the regular prefix and phase 3 under the reverse prefix; every
  value is relative to chance (-log A). ``heldout_minus_control`` is the held-out uplift
  measured against the random-password control.
  """
  out = []
  for seed in sorted({r["seed"] for r in history}):
    rows = [r for r in history if r["seed"] == seed]
    mix = [r for r in rows if r["phase"] == "mix"] or rows[-1:]
    dpo = [r for r in rows if r["phase"] == "dpo"] or rows[-1:]
    s = {"seed": seed, "chance": cfg.chance}
    for name in EVAL_SETS:
      series = np.array([r[f"eval/reverse/{name}"] for r in mix]) - cfg.chance
      s[f"reverse/{name}/final"], s[f"reverse/{name}/max"] = float(series[-1]), float(series.max())
      s[f"dpo_end/regular/{name}"] = dpo[-1][f"eval/regular/{name}"] - cfg.chance
    diff = np.array([r["eval/reverse/heldout"] - r["eval/reverse/control"] for r in mix])
    s["reverse/heldout_minus_control/final"] = float(diff[-1])
    s["reverse/heldout_minus_control/max"] = float(diff.max())
    out.append(s)
  return out


def default_run_name(cfg: Config) -> str:
  return cfg.run_name or f"{cfg.model}_{cfg.preset}_seed{cfg.seed}x{cfg.n_seeds}"


def save_run(result: RunResult) -> str:
  """Writes config.json, metrics.csv, summary.json, params.npz; all-or-nothing via rename."""
  cfg = result.cfg
  final = os.path.join(cfg.out_dir, default_run_name(cfg))
  os.makedirs(cfg.out_dir, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=".partial-", dir=cfg.out_dir)
  try:
    with open(os.path.join(tmp, "config.json"), "w") as f:
      f.write(cfg.to_json())
    write_csv(os.path.join(tmp, "metrics.csv"), result.history)
    with open(os.path.join(tmp, "summary.json"), "w") as f:
      json.dump(result.summary, f, indent=2)
    flat = {param_key(p): np.asarray(v)
            for p, v in jax.tree_util.tree_flatten_with_path(result.params)[0]}
    np.savez(os.path.join(tmp, "params.npz"), **flat)
    if os.path.exists(final):
      shutil.rmtree(final)
    os.replace(tmp, final)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return final


def param_key(path) -> str:
  """A parameter's name in params.npz, e.g. 'blocks/0/attn/qkv/kernel'."""
  return "/".join(map(str, _path_names(path)))


def write_csv(path: str, rows: list[dict]):
  fields = list(dict.fromkeys(k for r in rows for k in r))
  with open(path, "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)

