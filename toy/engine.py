"""The three-phase SFT + DPO training loop, shared by the learned transformer and the toy.

A model is any ``flax.nnx`` module that maps ``tokens_BxT`` to ``logits_BxTxV`` and says which
of its parameters are frozen in phase 2 (``phase2_frozen(path)``; optionally
``always_frozen(path)`` and ``frozen_in(phase, path)``). The module is split once into a
static graph and pure-dict state, and each phase is one ``jax.jit``-ed program that
``lax.scan``s ``eval_every`` steps and then evaluates, ``jax.vmap``-ed over seeds. No Python
runs per step or per example. The phases are PROTOCOL.md's (README, "The engine").
With several devices, the row axis (seeds x sweep rows) is laid out over all of them
(``row_mesh``, ``place_rows``; README, "Scale").
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh
from tqdm.auto import tqdm

from toy import data as D
from toy.config import Config, role_fields, validate
from toy.io import fill_from_npz, read_history, save_run
from toy.mechanism_io import build_toy
from toy.model import Transformer, TransformerConfig
from toy.optim import make_optimizer, trainable_labels
from toy.rows import gather, padded_rows, place_fields, place_rows, row_mesh, shared_rows, \
    to_host
from toy.phases import PHASES, eval_prefixes, evaluate, evaluate_law, phase_loss, phase_steps, \
    reference_logps, summarize


def build_model(cfg: Config, data: dict, rngs: nnx.Rngs) -> nnx.Module:
  """The default factory: ``cfg.model`` picks the learned transformer or the toy;
  ``cfg.init_from``, a checkpoint instead of a fresh transformer."""
  if cfg.model == "toy":
    return build_toy(cfg, data, rngs)
  if cfg.init_from:
    from toy.convert import checkpoint_model  # imports transformers: only when needed
    return checkpoint_model(cfg)
  times = (D.prefix_token(cfg, D.REGULAR), D.prefix_token(cfg, D.REVERSE))
  return Transformer(TransformerConfig(
      vocab_size=D.vocab_size(cfg), n_layers=cfg.n_layers, d_model=cfg.d_model,
      n_heads=cfg.n_heads, mlp=cfg.mlp, times_node=times if cfg.times_node else None,
      times_a=cfg.toy_a, times_c=cfg.toy_c, times_train=cfg.toy_train_sign), rngs)


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
  complete: bool = True  # False: stopped early by on_chunk or a time budget, not saved

  def seed_slice(self, i: int):
    take = lambda tree: jax.tree.map(lambda x: x[i], tree)
    return take(self.params), take(self.rest), take(self.data)

  def model(self, i: int = 0) -> nnx.Module:
    """The trained model of seed index ``i`` as a live nnx module (for inspection)."""
    params, rest, _ = self.seed_slice(i)
    return nnx.merge(self.graphdef, params, rest)


class NonFiniteLossError(FloatingPointError):
  pass


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
  return cfg.replace(**_HOST_ONLY, **{k: 0.0 for k in HYPER})


def apply_fn(graphdef):
  """``apply(params, rest, tokens_BxT)``: the model of ``graphdef`` on pure-dict state."""
  return lambda params, rest, tokens_BxT: nnx.merge(graphdef, params, rest)(tokens_BxT)


@functools.partial(jax.jit, static_argnames=("cfg", "graphdef", "phase", "n_steps", "labels"),
                   donate_argnums=(0, 1))
def run_chunk(params, opt_state, ref, ref_neg, rest, data, tables, key, hyper, start, *, cfg,
              graphdef, phase, n_steps, labels):
  """n_steps train steps of ``phase`` (scanned), then an evaluation; vmapped over seeds.

  Module-level and keyed by static arguments, so every chunk of a phase, and every run with
  the same config, reuses one compiled program. Steps past the phase's end (the last chunk
  is padded to n_steps) are skipped by a ``lax.cond``, not computed, and are flagged
  ``valid = 0``. ``ref_neg``: ``reference_logps`` of the phase (None in phase 1).
  """
  apply, n_total = apply_fn(graphdef), phase_steps(cfg, phase)
  labels = jax.tree.unflatten(jax.tree.structure(params), list(labels))  # rows: vmapped below

  def one_seed(params, opt_state, ref, ref_neg, rest, data, tables, key, hyper):
    cfg_s = cfg.replace(**hyper)  # this seed's traced hyperparameters
    if phase == "mix":
      cfg_s = cfg_s.replace(lr=jnp.where(cfg_s.mix_lr > 0, cfg_s.mix_lr, cfg_s.lr))
    tx = make_optimizer(cfg_s, n_total, labels)

    def train_step(carry, step):
      params, opt_state = carry
      grad_fn = jax.value_and_grad(phase_loss, argnums=3, has_aux=True)
      (_, metrics), grads = grad_fn(cfg_s, apply, phase, params, ref, rest, data, tables, step,
                                    key, ref_neg)
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), metrics

    def step_fn(carry, step):
      # A cond, not a select: padded steps cost nothing (the step index is not vmapped, so
      # the cond stays a branch), and valid steps do not rewrite the state through a select.
      skip = lambda carry, step: (carry, jax.tree.map(
          lambda m: jnp.zeros(m.shape, m.dtype), jax.eval_shape(train_step, carry, step)[1]))
      valid = step < n_total
      carry, metrics = jax.lax.cond(valid, train_step, skip, carry, step)
      return carry, {**metrics, "valid": valid}

    (params, opt_state), metrics = jax.lax.scan(step_fn, (params, opt_state),
                                                start + jnp.arange(n_steps))
    evals = evaluate(cfg, apply, params, rest, data, eval_prefixes(cfg, phase))
    if phase == "mix":
      evals.update(evaluate_law(cfg, apply, params, rest, data))
    return params, opt_state, metrics, evals

  return jax.vmap(one_seed)(params, opt_state, ref, ref_neg, rest, data, tables, key, hyper)


@functools.partial(jax.jit, static_argnames=("cfg", "graphdef"))
def reference_seeds(ref, rest, data, *, cfg, graphdef):
  """``reference_logps`` per row: the frozen reference's log-prob of every negative."""
  return jax.vmap(lambda r, s, d: reference_logps(cfg, apply_fn(graphdef), r, s, d))(
      ref, rest, data)


@functools.partial(jax.jit, static_argnames=("cfg", "graphdef"))
def evaluate_seeds(params, rest, data, *, cfg, graphdef):
  return jax.vmap(lambda p, r, d: evaluate(cfg, apply_fn(graphdef), p, r, d))(params, rest, data)


def place_phase(ph: "Phase", mesh: Mesh | None) -> "Phase":
  """``ph``'s row arrays laid out over ``mesh`` (in place); ``ph`` unchanged without one."""
  return place_fields(ph, ("params", "opt_state", "ref", "ref_neg", "rest", "data", "tables",
                           "key", "hyper"), mesh)


def _check_finite(metrics: dict, phase: str, start: int, seeds: list[int]):
  loss_SxN = np.asarray(metrics["loss"])
  bad = ~np.isfinite(loss_SxN) & np.asarray(metrics["valid"])
  if bad.any():
    s, n = np.argwhere(bad)[0]
    raise NonFiniteLossError(
        f"non-finite loss ({loss_SxN[s, n]}) in phase '{phase}' at step {start + n} "
        f"(seed {seeds[s]}); the run was stopped and no run folder was written")


def train(cfg: Config, make_model: Callable = build_model, *, progress: bool = True,
          save: bool = True, on_phase_end: Callable | None = None,
          on_chunk: Callable | None = None, time_budget_s: float | None = None) -> RunResult:
  """Runs the three phases for seeds cfg.seed .. cfg.seed + n_seeds - 1, vmapped together
  (``train_many`` of one config; its arguments)."""
  return train_many([cfg], make_model, progress=progress, save=save, on_phase_end=on_phase_end,
                    on_chunk=on_chunk, time_budget_s=time_budget_s)[0]


def batchable(a: Config, b: Config) -> bool:
  """Whether two configs can share one vmapped program (they differ only in HYPER/host fields)."""
  same_labels = (a.freeze_phase2, a.toy_train_sign) == (b.freeze_phase2, b.toy_train_sign)
  # init_from never reaches a program, but a checkpoint's rows are another module than a
  # fresh transformer's (and another checkpoint's token ids): one checkpoint per program.
  # prior_episodes is host-only (no program reads it) but sets how many episodes the rows run.
  return (compile_key(a) == compile_key(b) and same_labels and a.init_from == b.init_from
          and a.prior_episodes == b.prior_episodes)


@dataclasses.dataclass
class Episode:
  """One episode's arrays per row: its fixed sets, step tables, training keys and traced
  hyperparameters (a prior episode's phase 3 runs at ``prior_mix_lower_lr_scale``)."""
  data: dict
  tables: dict
  k_train: jax.Array
  hyper: dict


@dataclasses.dataclass
class Setup:
  """What ``train_many`` builds before phase 1; every array has a leading row axis S.

  ``episodes`` holds the prior episodes, then the measured one, whose arrays are also
  ``data``, ``tables``, ``k_train`` and ``hyper``.
  """
  seeds: list[int]
  config_of_row: list[int]  # config index of each row
  data: dict
  tables: dict
  k_train: jax.Array
  graphdef: object
  params: dict
  state: dict  # the model's non-trained state (nnx.split's "rest": tables, constants)
  model0: nnx.Module  # row 0's model, for the freezing labels
  hyper: dict
  episodes: list[Episode] = dataclasses.field(default_factory=list)



def _episode(cfg: Config, seeds: list[int], row_cfgs: list[Config], episode: int | None):
  """The data, tables and training keys of ``episode`` (None: the measured one) per row."""
  k_data, _, k_tables, k_train = D.seed_keys(seeds, episode)
  data = jax.vmap(lambda k: D.make_data(cfg, k))(k_data)
  tables = jax.vmap(lambda k: D.make_tables(cfg, k))(k_tables)
  scale = (lambda c: c.mix_lower_lr_scale) if episode is None else (
      lambda c: c.prior_mix_lower_lr_scale)
  hyper = {k: jnp.asarray([scale(c) if k == "mix_lower_lr_scale" else getattr(c, k)
                           for c in row_cfgs], jnp.float32) for k in HYPER}
  return Episode(data, tables, k_train, hyper)


def setup(cfgs: list[Config], make_model: Callable = build_model) -> Setup:
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
  k_init = D.seed_keys(seeds)[1]
  episodes = [_episode(cfg, seeds, row_cfgs, e) for e in range(cfg.prior_episodes)]
  episodes.append(_episode(cfg, seeds, row_cfgs, None))
  states, models = [], []
  for i, row_cfg in enumerate(row_cfgs):
    row_data = {k: np.asarray(v[i]) for k, v in episodes[-1].data.items()}
    if cfg.prior_episodes:
      row_data["prior_negatives"] = np.concatenate(
          [np.asarray(ep.data[s][i]) for ep in episodes[:-1] for s in ("useful", "heldout")])
    model = make_model(row_cfg, row_data, nnx.Rngs(k_init[i]))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    states.append((nnx.to_pure_dict(params), nnx.to_pure_dict(rest)))
    models.append(model)
  params, state = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
  measured = episodes[-1]
  return Setup(seeds, config_of_row, measured.data, measured.tables, measured.k_train, graphdef,
               params, state, models[0], measured.hyper, episodes)


@dataclasses.dataclass
class Phase:
  """One phase's state, as ``run_chunk`` takes it; every array has a leading row axis."""
  name: str
  params: dict
  opt_state: object
  ref: dict | None  # the frozen phase-1 model; None in phase 1, which has no DPO term
  ref_neg: jax.Array | None  # its log-prob of every negative (reference_logps), per row
  rest: dict
  data: dict
  tables: dict
  key: jax.Array  # the phase's training key per row
  hyper: dict
  labels: tuple  # the freezing labels' leaves, hashable: run_chunk is compiled per labels
  n_total: int
  cfg: Config  # compile_key(config): run_chunk's static config
  graphdef: object

  def run(self, start: int, n_steps: int) -> tuple[dict, dict]:
    """Steps start .. start + n_steps - 1, then an evaluation: (metrics, evals). The state
    moves on; its previous buffers are donated to the program."""
    self.params, self.opt_state, metrics, evals = run_chunk(
        self.params, self.opt_state, self.ref, self.ref_neg, self.rest, self.data, self.tables,
        self.key, self.hyper, jnp.int32(start), cfg=self.cfg, graphdef=self.graphdef,
        phase=self.name, n_steps=n_steps, labels=self.labels)
    return metrics, evals


def start_phase(st: Setup, cfg: Config, phase: str, params, ref=None, rows=None,
                lower_group: bool = False, episode: int | None = None) -> Phase:
  """``phase`` of ``episode`` (index into ``st.episodes``; None: the measured one) from
  ``params``: a fresh optimizer, the phase's keys and the episode's arrays of ``rows``
  (indices; None: every row). ``lower_group``: see ``trainable_labels``."""
  ep = st.episodes[-1 if episode is None else episode]
  take = lambda tree: gather(tree, rows)
  # Shapes only: labels depend on paths, and train_many donates the arrays themselves.
  one_row = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), st.params)
  labels = trainable_labels(st.model0, one_row, phase, cfg, lower_group)
  n_total = phase_steps(cfg, phase)
  opt_state = jax.vmap(make_optimizer(cfg, n_total, labels).init)(params)
  key = jax.vmap(lambda k: jax.random.fold_in(k, PHASES.index(phase)))(take(ep.k_train))
  state, data = take(st.state), take(ep.data)
  # Computed once here rather than in every step: the reference and the negatives are fixed.
  ref_neg = None if ref is None else reference_seeds(ref, state, data, cfg=compile_key(cfg),
                                                     graphdef=st.graphdef)
  return Phase(phase, params, opt_state, ref, ref_neg, state, data, take(ep.tables), key,
               take(ep.hyper), tuple(jax.tree.leaves(labels)), n_total, compile_key(cfg),
               st.graphdef)


def phase_state(cfg: Config, phase: str, make_model: Callable = build_model,
                reference: Callable | None = None) -> Phase:
  """``phase``'s state at its step 0 for ``cfg``'s seeds, built from their initial models as
  ``train_many`` builds a phase (``setup``, then ``start_phase``; on the default device, no
  row mesh), for timing or lowering chunks of one phase alone: the phases before it are not
  trained. Phases 2-3 compare against ``reference(params)`` (default: a copy of the initial
  parameters)."""
  st = setup([cfg], make_model)
  ref = None if phase == "pretrain" else (
      reference or (lambda p: jax.tree.map(jnp.copy, p)))(st.params)
  return start_phase(st, cfg, phase, st.params, ref)


@dataclasses.dataclass
class Chunk:
  """What ``train_many``'s ``on_chunk`` sees after each compiled chunk.

  ``metrics`` (per row and step) and ``evals`` (per row) are host copies over the phase's
  rows (padding and shared rows included, as they ran); ``state`` is the live phase, whose
  arrays are the next chunk's inputs, laid out as they enter it. ``on_chunk`` may return
  "end_phase" (the phase stops here and the next one starts) or "stop" (no more training:
  the results are then marked incomplete and not saved).
  """
  episode: int
  phase: str
  start: int
  steps: int  # valid steps this chunk ran
  n_total: int  # the phase's steps
  wall_s: float  # the chunk's wall time, host copies included
  metrics: dict
  evals: dict
  state: Phase


def train_many(cfgs: list[Config], make_model: Callable = build_model, *, progress: bool = True,
               save: bool = True, on_phase_end: Callable | None = None,
               on_chunk: Callable | None = None,
               time_budget_s: float | None = None) -> list[RunResult]:
  """Trains every seed of every config in one vmapped program; one RunResult per config.

  The configs must be ``batchable``: a grid over learning rate, beta or loss weights (and
  seeds) costs one compilation instead of one per point. With ``cfg.prior_episodes``, the
  rows first run that many full episodes on their own other data (``toy.data.episode_root``),
  each with its own phase-1 reference; their history rows carry ``episode``.

  ``on_phase_end(phase, params)`` sees a host copy of the seed-stacked parameters after each
  phase; ``on_chunk(Chunk)`` sees every chunk and may end a phase or the run early (e.g. a
  benchmark's budget). ``time_budget_s`` stops training after the chunk that exceeds it.
  Early stops give results with ``complete = False``, never saved. A non-finite loss raises
  NonFiniteLossError naming the phase and step; run folders are written only at the end.
  """
  for c in cfgs:
    validate(c)
    if not batchable(cfgs[0], c):
      raise ValueError("train_many: configs differ in more than seeds, toy scalars and "
                       f"{HYPER}; train them separately")
  cfg = cfgs[0]
  t_start = time.perf_counter()
  st = setup(cfgs, make_model)
  seeds, config_of_row = st.seeds, st.config_of_row
  n_episodes = len(st.episodes)
  params, ref = st.params, None  # phase 1 has no DPO term, so no reference yet
  lower_group = any(c.mix_lower_lr_scale != 1 or
                    (c.prior_episodes and c.prior_mix_lower_lr_scale != 1) for c in cfgs)
  # Rows that differ only in PHASE3_ONLY fields train phases 1-2 once, on their first row
  # (with prior episodes phase 3 comes before the measured phases 1-2: no sharing).
  first, expand = shared_rows([cfgs[i].replace(seed=s) for i, s in zip(config_of_row, seeds)],
                              PHASE3_ONLY)
  first = np.asarray(first)
  sharing = len(first) < len(seeds) and n_episodes == 1
  # With several devices a phase's rows are padded to a multiple of their number and split
  # over them; rows[i] is the setup row that the phase's row i is (None: row i, unpadded).
  mesh = row_mesh()
  history: list[dict] = []
  record = functools.partial(_record, history, seeds, config_of_row,
                             tag_episodes=n_episodes > 1)
  evals = evaluate_seeds(*place_rows(gather((params, st.state, st.episodes[0].data),
                                            padded_rows(None, len(seeds), mesh)), mesh),
                         cfg=compile_key(cfg), graphdef=st.graphdef)
  record(0, "init", 0, 0, {}, to_host(evals))  # padding: rows >= S
  rows = padded_rows(first if sharing else None, len(seeds), mesh)
  params = gather(params, rows)
  total = n_episodes * sum(phase_steps(cfg, p) for p in PHASES)
  label = f"{cfg.model} x{len(seeds)}"
  bar = tqdm(total=total, desc=label, disable=not progress, unit="step", dynamic_ncols=True)
  global_step, stopped = 0, False
  try:
    for episode in range(n_episodes):
      for phase in PHASES:
        if sharing and phase == "mix":  # shared row j is at index j of the phases 1-2 rows
          rows = padded_rows(None, len(seeds), mesh)
          params, ref = gather((params, ref), expand if rows is None else expand[rows])
        # Where each real row's values are among the phase's rows: a shared row's stand for
        # every row it serves in the history; padding is dropped.
        back = expand if sharing and phase != "mix" else (
            None if rows is None else np.arange(len(seeds)))
        spread = lambda tree: gather(to_host(tree), back)
        ph = place_phase(start_phase(st, cfg, phase, params, ref, rows, lower_group, episode),
                         mesh)
        n = min(cfg.eval_every, ph.n_total)
        bar.set_description(f"{label}: {phase}" + (
            f" (episode {episode + 1}/{n_episodes})" if n_episodes > 1 else ""))
        for start in range(0, ph.n_total, n):
          t_chunk = time.perf_counter()
          metrics, evals = to_host(ph.run(start, n))
          _check_finite(metrics, phase, start,
                        seeds if rows is None else [seeds[i] for i in rows])
          done = min(n, ph.n_total - start)
          global_step += done
          bar.update(done)
          wall = time.perf_counter() - t_chunk
          record(episode, phase, start + done, global_step, spread(metrics), spread(evals))
          verdict = None if on_chunk is None else on_chunk(
              Chunk(episode, phase, start, done, ph.n_total, wall, metrics, evals, ph))
          if verdict not in (None, "end_phase", "stop"):
            raise ValueError(f"on_chunk returned {verdict!r}: allowed None, 'end_phase', 'stop'")
          if time_budget_s is not None and time.perf_counter() - t_start > time_budget_s:
            verdict = "stop"
          if verdict is not None:
            stopped = verdict == "stop"
            break
        params = ph.params
        if phase == "pretrain":
          ref = jax.tree.map(jnp.copy, params)  # the frozen reference for DPO
        if on_phase_end is not None:
          on_phase_end(phase, jax.tree.map(np.array, spread(params)))
        if stopped:
          break
      if stopped:
        break
  finally:
    bar.close()
  if stopped:  # one row per seed, as after phase 3: shared rows spread, padding dropped
    params = gather(params, back)
  if mesh is not None:  # the results on the default device, as with one device
    params = jax.tree.map(jnp.asarray, to_host(params))

  results = []
  for i, c in enumerate(cfgs):
    own_rows = np.array([j for j, o in enumerate(config_of_row) if o == i])
    take = lambda tree: gather(tree, own_rows)
    own = [{k: v for k, v in r.items() if k != "config"} for r in history if r["config"] == i]
    result = RunResult(c, own, summarize(c, own), st.graphdef, take(params), take(st.state),
                       take(st.data), apply_fn(st.graphdef), None, complete=not stopped)
    if save and not stopped:
      result.run_dir = save_run(result)
    results.append(result)
  return results


def load_run(run_dir: str) -> RunResult:
  """A run folder written by ``toy.io.save_run`` -> a seed-stacked ``RunResult``.

  The data and the model skeleton are rebuilt from config.json by ``setup`` exactly as the
  run built them (same seeds, ``build_model``), then every parameter is filled from
  params.npz (the shapes and the set of names must match), and the rest of the state (the
  toy's trie and gate code) from tables.npz where the folder has one; history and summary
  come from metrics.csv and summary.json when present (``toy.io``'s readers). A toy's
  ``toy_weights`` is ignored (params.npz and tables.npz hold the trained weights and the
  code it ran with).
  """
  with open(os.path.join(run_dir, "config.json")) as f:
    cfg = validate(Config(**json.load(f)))
  st = setup([cfg.replace(toy_weights="")])
  graphdef, rest, data = st.graphdef, st.state, st.data
  params = fill_from_npz(st.params, os.path.join(run_dir, "params.npz"), run_dir)
  if os.path.exists(os.path.join(run_dir, "tables.npz")):
    rest = fill_from_npz(rest, os.path.join(run_dir, "tables.npz"), run_dir)
  history, summary = [], []
  if os.path.exists(os.path.join(run_dir, "metrics.csv")):
    history = read_history(os.path.join(run_dir, "metrics.csv"))
  if os.path.exists(os.path.join(run_dir, "summary.json")):
    with open(os.path.join(run_dir, "summary.json")) as f:
      summary = json.load(f)
  return RunResult(cfg, history, summary, graphdef, params, rest, data, apply_fn(graphdef),
                   run_dir)


def _record(history, seeds, config_of_row, episode, phase, step, global_step, metrics, evals,
            *, tag_episodes):
  valid = np.asarray(metrics.pop("valid", True), dtype=bool)
  train_means = {k: np.where(valid, np.asarray(v), 0).sum(-1) / np.maximum(valid.sum(-1), 1)
                 for k, v in metrics.items()}
  evals = {k: np.asarray(v) for k, v in evals.items()}
  for i, seed in enumerate(seeds):
    row = {"config": config_of_row[i], "seed": seed, "phase": phase, "step": step,
           "global_step": global_step}
    if tag_episodes:
      row["episode"] = episode
    row.update({f"train/{k}": float(v[i]) for k, v in train_means.items()})
    row.update({k: float(v[i]) for k, v in evals.items()})
    history.append(row)
