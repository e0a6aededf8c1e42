"""The three-phase SFT + DPO training loop, shared by the learned transformer and the toy.

A model is any ``flax.nnx`` module that maps ``tokens_BxT`` to ``logits_BxTxV`` and says which
of its parameters are frozen in phase 2 (``toy.setup.TrainableModel``; optionally more,
``toy.setup.OptionalMembers``), built per seed by a ``toy.setup.ModelFactory``. The module is
split once into a static graph and pure-dict state (``toy.setup``), and each phase is one
``jax.jit``-ed program that ``lax.scan``s ``eval_every`` steps and then evaluates,
``jax.vmap``-ed over seeds. No Python runs per step or per example. The phases are
PROTOCOL.md's (README, "The engine"). With several devices, the row axis (seeds x sweep rows)
is laid out over all of them (``toy.rows``; README, "Scale"). A run's results and folder:
``toy.io``.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh
from tqdm.auto import tqdm

from toy.config import Config, validate
from toy.io import RunResult, history_rows, save_run
from toy.optim import make_optimizer, trainable_labels
from toy.phases import PHASES, PREFIXES, eval_prefixes, evaluate, evaluate_law, phase_loss, \
    phase_steps, reference_logps, summarize
from toy.rows import gather, padded_rows, place_fields, place_rows, row_mesh, shared_rows, \
    to_host
from toy.setup import HYPER, PHASE3_ONLY, ModelFactory, Setup, apply_fn, batchable, \
    build_model, compile_key, setup


class NonFiniteLossError(FloatingPointError):
  pass


@functools.partial(jax.jit, static_argnames=("cfg", "graphdef", "phase", "n_steps", "labels"),
                   donate_argnums=(0, 1))
def run_chunk(params, opt_state, ref, ref_neg, state, data, tables, key, hyperparams, start, *,
              cfg, graphdef, phase, n_steps, labels):
  """n_steps train steps of ``phase`` (scanned), then an evaluation; vmapped over seeds.

  Module-level and keyed by static arguments, so every chunk of a phase, and every run with
  the same config, reuses one compiled program. Steps past the phase's end (the last chunk
  is padded to n_steps) are skipped by a ``lax.cond``, not computed, and are flagged
  ``valid = 0``. ``ref_neg``: ``reference_logps`` of the phase (None in phase 1).
  """
  apply, n_total = apply_fn(graphdef), phase_steps(cfg, phase)
  labels = jax.tree.unflatten(jax.tree.structure(params), list(labels))  # rows: vmapped below

  def one_seed(params, opt_state, ref, ref_neg, state, data, tables, key, hyperparams):
    cfg_s = cfg.replace(**hyperparams)  # this seed's traced hyperparameters
    if phase == "mix":
      cfg_s = cfg_s.replace(lr=jnp.where(cfg_s.mix_lr > 0, cfg_s.mix_lr, cfg_s.lr))
    tx = make_optimizer(cfg_s, n_total, labels)

    metric_shapes = []  # train_step's metrics, as the cond traced them

    def train_step(carry, step):
      params, opt_state = carry
      grad_fn = jax.value_and_grad(phase_loss, argnums=3, has_aux=True)
      (_, metrics), grads = grad_fn(cfg_s, apply, phase, params, ref, state, data, tables, step,
                                    key, ref_neg)
      updates, opt_state = tx.update(grads, opt_state, params)
      metric_shapes[:] = [jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype),
                                       metrics)]
      return (optax.apply_updates(params, updates), opt_state), metrics

    def skip(carry, step):
      # The cond traced train_step first: reuse its metrics' shapes, not trace the step again.
      shapes = metric_shapes[0] if metric_shapes else jax.eval_shape(train_step, carry, step)[1]
      return carry, jax.tree.map(lambda m: jnp.zeros(m.shape, m.dtype), shapes)

    def step_fn(carry, step):
      # A cond, not a select: padded steps cost nothing (the step index is not vmapped, so
      # the cond stays a branch), and valid steps do not rewrite the state through a select.
      valid = step < n_total
      carry, metrics = jax.lax.cond(valid, train_step, skip, carry, step)
      return carry, {**metrics, "valid": valid}

    (params, opt_state), metrics = jax.lax.scan(step_fn, (params, opt_state),
                                                start + jnp.arange(n_steps))
    evals = evaluate(cfg, apply, params, state, data, eval_prefixes(cfg, phase))
    if phase == "mix":
      evals.update(evaluate_law(cfg, apply, params, state, data))
    return params, opt_state, metrics, evals

  return jax.vmap(one_seed)(params, opt_state, ref, ref_neg, state, data, tables, key, hyperparams)


@functools.partial(jax.jit, static_argnames=("cfg", "graphdef"))
def reference_seeds(ref, state, data, *, cfg, graphdef):
  """``reference_logps`` per row: the frozen reference's log-prob of every negative."""
  return jax.vmap(lambda r, s, d: reference_logps(cfg, apply_fn(graphdef), r, s, d))(
      ref, state, data)


@functools.partial(jax.jit, static_argnames=("cfg", "graphdef", "prefixes"))
def evaluate_seeds(params, state, data, *, cfg, graphdef, prefixes=tuple(PREFIXES)):
  return jax.vmap(lambda p, s, d: evaluate(cfg, apply_fn(graphdef), p, s, d, prefixes))(
      params, state, data)


def _check_finite(metrics: dict, phase: str, start: int, seeds: list[int]):
  loss_SxN = np.asarray(metrics["loss"])
  bad = ~np.isfinite(loss_SxN) & np.asarray(metrics["valid"])
  if bad.any():
    s, n = np.argwhere(bad)[0]
    raise NonFiniteLossError(
        f"non-finite loss ({loss_SxN[s, n]}) in phase '{phase}' at step {start + n} "
        f"(seed {seeds[s]}); the run was stopped and no run folder was written")


@dataclasses.dataclass
class Phase:
  """One phase's state, as ``run_chunk`` takes it; every array has a leading row axis."""
  name: str
  params: dict
  opt_state: object
  ref: dict | None  # the frozen phase-1 model; None in phase 1, which has no DPO term
  ref_neg: jax.Array | None  # its log-prob of every negative (reference_logps), per row
  state: dict  # the model's state that is not a parameter (Setup.state)
  data: dict
  tables: dict
  key: jax.Array  # the phase's training key per row
  hyperparams: dict  # the HYPER fields' values per row, traced (Setup.hyperparams)
  labels: tuple  # the freezing labels' leaves, hashable: run_chunk is compiled per labels
  n_total: int
  cfg: Config  # compile_key(config): run_chunk's static config
  graphdef: object
  seeds: list[int]  # the seed of each row, for error messages
  # Prefixes evaluated beyond PROTOCOL's (eval_prefixes="both"), by a program of their own:
  # the training program, and so its results, is then the PROTOCOL run's to the bit.
  extra_prefixes: tuple[str, ...] = ()

  def run(self, start: int, n_steps: int) -> tuple[dict, dict]:
    """Steps start .. start + n_steps - 1, then an evaluation: (metrics, evals); donates."""
    self.params, self.opt_state, metrics, evals = run_chunk(
        self.params, self.opt_state, self.ref, self.ref_neg, self.state, self.data, self.tables,
        self.key, self.hyperparams, jnp.int32(start), cfg=self.cfg, graphdef=self.graphdef,
        phase=self.name, n_steps=n_steps, labels=self.labels)
    if self.extra_prefixes:
      evals = {**evals, **evaluate_seeds(self.params, self.state, self.data, cfg=self.cfg,
                                         graphdef=self.graphdef, prefixes=self.extra_prefixes)}
    return metrics, evals

  def chunks(self, every: int):
    """Runs the phase ``every`` steps at a time, each chunk then evaluated; yields (start,
    valid steps, wall seconds, metrics, evals) with host copies. A non-finite loss raises."""
    n = min(every, self.n_total)
    for start in range(0, self.n_total, n):
      t_chunk = time.perf_counter()
      metrics, evals = to_host(self.run(start, n))
      _check_finite(metrics, self.name, start, self.seeds)
      yield start, min(n, self.n_total - start), time.perf_counter() - t_chunk, metrics, evals


def start_phase(st: Setup, cfg: Config, phase: str, params, ref=None, rows=None,
                lower_group: bool = False, episode: int | None = None,
                mesh: Mesh | None = None) -> Phase:
  """``phase`` of ``episode`` (index into ``st.episodes``; None: the measured one) from
  ``params``: a fresh optimizer, the phase's keys and the episode's arrays of ``rows``
  (indices; None: every row), laid out over ``mesh`` where there is one. ``lower_group``:
  see ``trainable_labels``."""
  ep = st.episodes[-1 if episode is None else episode]
  take = lambda tree: gather(tree, rows)
  # Shapes only: labels depend on paths, and train_many donates the arrays themselves.
  one_row = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), st.params)
  labels = trainable_labels(st.model0, one_row, phase, cfg, lower_group)
  n_total = phase_steps(cfg, phase)
  opt_state = jax.vmap(make_optimizer(cfg, n_total, labels).init)(params)
  key = jax.vmap(lambda k: jax.random.fold_in(k, PHASES.index(phase)))(take(ep.k_train))
  state, data = take(st.state), take(ep.data)
  program = compile_key(cfg)  # evaluates PROTOCOL's prefixes (eval_prefixes is host-only)
  # Computed once here rather than in every step: the reference and the negatives are fixed.
  ref_neg = None if ref is None else reference_seeds(ref, state, data, cfg=program,
                                                     graphdef=st.graphdef)
  extra = tuple(p for p in eval_prefixes(cfg, phase) if p not in eval_prefixes(program, phase))
  ph = Phase(phase, params, opt_state, ref, ref_neg, state, data, take(ep.tables), key,
             take(ep.hyperparams), tuple(jax.tree.leaves(labels)), n_total, program,
             st.graphdef, st.seeds if rows is None else [st.seeds[i] for i in rows], extra)
  return place_fields(ph, ("params", "opt_state", "ref", "ref_neg", "state", "data", "tables",
                           "key", "hyperparams"), mesh)


def phase_state(cfg: Config, phase: str, make_model: ModelFactory = build_model,
                reference: Callable | None = None) -> Phase:
  """``phase``'s state at step 0 from ``cfg``'s initial models, built as ``train_many`` builds
  it but with no phase before it trained and no row mesh (to time or lower one phase alone).
  Phases 2-3 compare against ``reference(params)`` (default: a copy of the initial params)."""
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


def train(cfg: Config, make_model: ModelFactory = build_model, *, progress: bool = True,
          save: bool = True, on_phase_end: Callable | None = None,
          on_chunk: Callable | None = None, time_budget_s: float | None = None) -> RunResult:
  """``train_many`` of one config: seeds cfg.seed .. cfg.seed + n_seeds - 1, vmapped."""
  return train_many([cfg], make_model, progress=progress, save=save, on_phase_end=on_phase_end,
                    on_chunk=on_chunk, time_budget_s=time_budget_s)[0]


def train_many(cfgs: list[Config], make_model: ModelFactory = build_model, *,
               progress: bool = True, save: bool = True,
               on_phase_end: Callable | None = None, on_chunk: Callable | None = None,
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
  cfg, t_start = cfgs[0], time.perf_counter()
  st = setup(cfgs, make_model)
  seeds, n_episodes, mesh = st.seeds, len(st.episodes), row_mesh()
  lower_group = any(c.mix_lower_lr_scale != 1 or
                    (c.prior_episodes and c.prior_mix_lower_lr_scale != 1) for c in cfgs)
  # With prior episodes phase 3 comes before the measured phases 1-2: no sharing.
  share = _shared_groups(cfgs, st) if n_episodes == 1 else None
  log = functools.partial(history_rows, seeds, st.config_of_row, tag_episodes=n_episodes > 1)
  history = log(0, "init", 0, 0, {}, _evaluate_init(st, cfg, mesh))
  rows, back = _phase_rows("pretrain", share, len(seeds), mesh)
  params, ref = gather(st.params, rows), None  # phase 1 has no DPO term, so no reference yet
  label = f"{cfg.model} x{len(seeds)}"
  bar = tqdm(total=n_episodes * sum(phase_steps(cfg, p) for p in PHASES), desc=label,
             disable=not progress, unit="step", dynamic_ncols=True)
  global_step, stopped = 0, False
  try:
    for episode, phase in itertools.product(range(n_episodes), PHASES):
      if share is not None and phase == "mix":  # phase 3 runs every row on its own
        rows, back = _phase_rows(phase, share, len(seeds), mesh)
        expand = share[1]  # shared row j is at index j of the phases 1-2 rows
        params, ref = gather((params, ref), expand if rows is None else expand[rows])
      ph = start_phase(st, cfg, phase, params, ref, rows, lower_group, episode, mesh)
      bar.set_description(f"{label}: {phase}" + (
          f" (episode {episode + 1}/{n_episodes})" if n_episodes > 1 else ""))
      for start, steps, wall, metrics, evals in ph.chunks(cfg.eval_every):
        global_step += steps
        bar.update(steps)
        history += log(episode, phase, start + steps, global_step, gather(metrics, back),
                       gather(evals, back))
        verdict = None if on_chunk is None else on_chunk(
            Chunk(episode, phase, start, steps, ph.n_total, wall, metrics, evals, ph))
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
        on_phase_end(phase, jax.tree.map(np.array, gather(to_host(params), back)))
      if stopped:
        break
  finally:
    bar.close()
  params = gather(params, back)  # one row per seed: shared rows spread, padding dropped
  if mesh is not None:  # the results on the default device, as with one device
    params = jax.tree.map(jnp.asarray, to_host(params))
  return _results(cfgs, st, history, params, complete=not stopped, save=save)


def _shared_groups(cfgs: list[Config], st: Setup):
  """Rows that differ only in PHASE3_ONLY fields train phases 1-2 once, on their group's
  first row: (each group's first row, each row's group) of ``shared_rows``; None when every
  row is a group of its own."""
  first, expand = shared_rows([cfgs[i].replace(seed=s)
                               for i, s in zip(st.config_of_row, st.seeds)], PHASE3_ONLY)
  return (np.asarray(first), expand) if len(first) < len(st.seeds) else None


def _phase_rows(phase: str, share, n_rows: int, mesh: Mesh | None):
  """(rows, back) of ``phase``: the setup row each of its rows is (padded to the mesh; None:
  row i, unpadded), and where each setup row's values are among them (None: at its own index;
  a shared row's stand for every row of its group, padding is dropped). ``share``: see
  ``_shared_groups``."""
  if share is not None and phase != "mix":
    first, expand = share
    return padded_rows(first, n_rows, mesh), expand
  rows = padded_rows(None, n_rows, mesh)
  return rows, None if rows is None else np.arange(n_rows)


def _evaluate_init(st: Setup, cfg: Config, mesh: Mesh | None) -> dict:
  """The evaluation of every row's initial model (on the first episode's data), on the host;
  with a mesh, padding rows past S included."""
  rows = padded_rows(None, len(st.seeds), mesh)
  evals = evaluate_seeds(*place_rows(gather((st.params, st.state, st.episodes[0].data), rows),
                                     mesh), cfg=compile_key(cfg), graphdef=st.graphdef)
  return to_host(evals)


def _results(cfgs: list[Config], st: Setup, history: list[dict], params, *, complete: bool,
             save: bool) -> list[RunResult]:
  """One RunResult per config, from its own rows (saved where ``save`` and ``complete``)."""
  results = []
  for i, c in enumerate(cfgs):
    own_rows = np.array([j for j, o in enumerate(st.config_of_row) if o == i])
    take = functools.partial(gather, idx=own_rows)
    own = [{k: v for k, v in r.items() if k != "config"} for r in history if r["config"] == i]
    result = RunResult(c, own, summarize(c, own), st.graphdef, take(params), take(st.state),
                       take(st.data), apply_fn(st.graphdef), None, complete=complete)
    if save and complete:
      result.run_dir = save_run(result)
    results.append(result)
  return results
