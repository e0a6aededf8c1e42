"""Where the flip lives: activation caches, direct logit attribution, the law component by
component, the prefix direction, activation patching and grafting, for the learned transformer
(and a Pythia checkpoint wrapped by ``toy.convert.PythiaTask``) and for the hand-built toy.

On one live model: ``run_with_cache`` (every hook, by the names in ``HOOKS``), ``attribute``
(direct logit attribution), ``attribution_components`` and ``patch_components``. On a
seed-stacked run (``toy.io.RunResult``, or a run folder read back by ``load_run``, also
importable from here): ``attribution``, ``component_law``, ``prefix_direction``, ``patching``,
``graft`` with ``upper_half``, ``episode_data`` and ``evaluate_run``. Each function's docstring
says what it measures and how; README, "Where the flip lives", says what it showed.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from toy import data as data_lib
from toy.config import Config
from toy.engine import evaluate_seeds
from toy.io import RunResult
from toy.io import load_run  # noqa: F401 (toy.inspect.load_run: scripts read runs from here)
from toy.model import path_names
from toy.losses import token_logps
from toy.measure import LAW_SETS
from toy.phases import PREFIXES, centred_at
from toy.setup import compile_key
from toy.stats import slope_through_origin

SETS = ("useful", "heldout", "control")
DIRECTIONS = (("regular", "reverse"), ("reverse", "regular"))  # (source, target) of a patch

# Every name a forward pass records into ``hooks`` (``run_with_cache``): name -> (shape, what
# it holds); ``{i}`` is a block index. The one table of them: toy.model, toy.mechanism and the
# README point here, and tests/test_inspect.py checks it against what the models record.
HOOKS = {
    # toy.model.Transformer and toy.convert.PythiaTask, TransformerLens-style
    "transformer": {
        "hook_embed": ("B x T x D", "input embedding (start of the residual stream)"),
        "blocks.{i}.hook_resid_pre": ("B x T x D", "residual stream entering block i"),
        "blocks.{i}.attn.hook_pattern": ("B x H x T x T",
                                         "attention probabilities (query, key)"),
        "blocks.{i}.hook_attn_out": ("B x T x D", "attention's write to the residual stream"),
        "blocks.{i}.mlp.hook_post": ("B x T x F", "MLP hidden activations (after GELU, or the "
                                                  "gated product)"),
        "blocks.{i}.hook_mlp_out": ("B x T x D", "the MLP's write to the residual stream"),
        "blocks.{i}.hook_resid_post": ("B x T x D", "residual stream leaving block i"),
        "ln_final.hook_scale": ("B x T x 1", "final LayerNorm divisor sqrt(var + eps)"),
        "times.hook_s": ("B", "the times node's sign s = a + c * d (times_node models only)"),
    },
    # toy.mechanism.ToyMechanism (its ``parts``)
    "toy": {
        "prefix.hook_sign": ("B", 'd: +1 "regular", -1 "reverse", 0 otherwise'),
        "times.hook_s": ("B or B x T", "s = a + c * d: one shared times node (B), or the sign "
                                       "of each position's memory row (B x T: per row, gates)"),
        "times.hook_gates": ("B x T x k", "the gates each position's row mixes (gates only)"),
        "memory.hook_keys": ("B x T", "the trie node (exact context) each position reads"),
        "memory.hook_readout": ("B x T x A", "the memory row r it reads (0 for unseen "
                                             "contexts)"),
        "times.hook_out": ("B x T x A", 'the times node\'s output s * r ("sum": s on every '
                                        'letter)'),
        "memory.hook_out": ("B x T x A", 'the readout added directly ("sum" ablation only)'),
        "additive.hook_out": ("B x T x A", "the additive path gain * r"),
    },
}


# ----------------------------------------------------------------------------- one live model

def is_toy(model) -> bool:
  return hasattr(model, "paths")


def _net(model):
  """The Transformer inside (a PythiaTask wraps one as ``net``)."""
  return getattr(model, "net", model)


def run_with_cache(model, tokens_BxT, ablate=None):
  """(logits, cache): one forward pass that records every hook (names: ``HOOKS``)."""
  cache: dict = {}
  logits = model(jnp.asarray(tokens_BxT), hooks=cache, ablate=ablate)
  return logits, cache


def patch_components(model) -> dict[str, str]:
  """Component name (an ``ablate`` key of the forward pass) -> the hook that records its
  output: the transformer's residual writers (``embed``, ``blocks.{i}.attn``,
  ``blocks.{i}.mlp``); the toy's ``prefix`` (d), ``memory`` (the readout) and paths."""
  if is_toy(model):
    return {"prefix": "prefix.hook_sign", "memory": "memory.hook_readout",
            **{p: model.PATH_HOOKS[p] for p in model.paths() if p != "memory"}}
  out = {"embed": "hook_embed"}
  for i in range(len(_net(model).blocks)):
    out[f"blocks.{i}.attn"] = f"blocks.{i}.hook_attn_out"
    out[f"blocks.{i}.mlp"] = f"blocks.{i}.hook_mlp_out"
  return out


def attribution_components(model) -> list[str]:
  """The components whose logit contributions sum to the logits. Transformer: ``embed``,
  ``blocks.{i}.attn``, ``blocks.{i}.mlp`` (each one's write to the residual stream, biases
  included) and ``bias`` (the final LayerNorm's bias through the unembedding). Toy: its paths
  ``times``, ``additive`` (and ``memory`` under "sum")."""
  if is_toy(model):
    return list(model.paths())
  return list(patch_components(model)) + ["bias"]


def component_logits(model, cache: dict, alphabet_size: int) -> dict:
  """{component: B x T x A}, each component's contribution to the letters' logits; they sum
  to the model's letter logits. For the toy the paths are already logits.

  Transformer, with the final LayerNorm's scale frozen: the final residual stream is
  x = embed + sum_i (attn_i + mlp_i), and LN(x) = (x - mean(x)) / sigma * gamma + beta with
  sigma = ``ln_final.hook_scale`` from the full stream. Freezing sigma, LN is affine in x and
  mean-centering is linear, so component c contributes ((c - mean(c)) / sigma * gamma) @ W_U
  and ``bias`` contributes beta @ W_U; they sum to the logits exactly (up to float rounding).
  """
  if is_toy(model):
    return {p: cache[model.PATH_HOOKS[p]] for p in model.paths()}
  net = _net(model)
  W_DxA = model.unembedding()[:, :alphabet_size]
  gamma, beta = net.final_ln.scale[...], net.final_ln.bias[...]
  sigma_BxTx1 = cache["ln_final.hook_scale"]
  out = {}
  for name, hook in patch_components(model).items():
    c_BxTxD = cache[hook]
    out[name] = ((c_BxTxD - c_BxTxD.mean(-1, keepdims=True)) / sigma_BxTx1 * gamma) @ W_DxA
  out["bias"] = jnp.broadcast_to(beta @ W_DxA, sigma_BxTx1.shape[:-1] + (alphabet_size,))
  return out


def attribute(model, tokens_BxT, targets_BxT, alphabet_size: int) -> dict:
  """Direct logit attribution of the centred target logit, per sequence and position:
  {component: B x T} plus ``total``, the model's own centred target logit (the sum of the
  components up to float rounding; tested within 1e-4). Each contribution
  (``component_logits``) is centred over the alphabet and read at the true next letter, as
  ``toy.phases.centred_target_logits`` does for the whole model."""
  logits, cache = run_with_cache(model, tokens_BxT)
  targets_BxT = jnp.asarray(targets_BxT)
  out = {name: centred_at(part, targets_BxT)
         for name, part in component_logits(model, cache, alphabet_size).items()}
  out["total"] = centred_at(logits[..., :alphabet_size], targets_BxT)
  return out


# ----------------------------------------------------------------------------- seed-stacked runs

def n_seeds(result) -> int:
  return jax.tree.leaves(result.params)[0].shape[0]


def _seed_data(result, i: int) -> dict:
  return {k: np.asarray(v[i]) for k, v in result.data.items()}


def _batch(cfg: Config, data: dict, sets, prefix: str):
  """Inputs and targets of ``sets`` (concatenated, in order) under ``prefix``, with the slice
  of each set."""
  pws = [jnp.asarray(data[s]) for s in sets]
  tokens = jnp.concatenate([data_lib.model_inputs(cfg, pw, PREFIXES[prefix]) for pw in pws])
  ends = np.cumsum([0] + [pw.shape[0] for pw in pws])
  return tokens, jnp.concatenate(pws), {s: slice(a, b) for s, a, b in zip(sets, ends, ends[1:])}


def attribution(result, sets=LAW_SETS) -> dict:
  """{(set, prefix): {component or "total": S x N}}: each password's centred target logit
  (mean over its tokens), split by component, for every seed."""
  cfg, out = result.cfg, {}
  for i in range(n_seeds(result)):
    model, data = result.model(i), _seed_data(result, i)
    for prefix in PREFIXES:
      tokens, targets, where = _batch(cfg, data, sets, prefix)
      per_pw = {k: np.asarray(v.mean(-1)) for k, v in
                attribute(model, tokens, targets, cfg.alphabet_size).items()}
      for s in sets:
        row = out.setdefault((s, prefix), {})
        for k, v in per_pw.items():
          row.setdefault(k, []).append(v[where[s]])
  return {key: {k: np.stack(v) for k, v in parts.items()} for key, parts in out.items()}


def component_law(result, attr: dict | None = None) -> dict:
  """{component or "total": {"slope/useful", "slope/heldout", "G", "share/useful",
  "share/heldout"}}, each an array over seeds. "total" reproduces ``toy.measure.law_slopes``.

  For each component and set (useful, held-out negatives): its per-password contribution
  under "reverse" regressed through the origin on the same under "regular" (``slope``; G =
  slope held-out / slope useful, as ``toy.measure``), and its ``share``: its contribution
  under "reverse" regressed through the origin on the *whole* model's centred target logit
  under "regular". Shares add up over components to the model's law slope, so they say which
  components carry the law; own slopes say whether a component flips what it itself wrote.
  A component that contributes 0 to every password under "regular" has no own slope (nan).
  """
  attr = attribution(result) if attr is None else attr
  out = {}
  for comp in attr[("useful", "regular")]:
    row = {}
    for s in LAW_SETS:
      x, y = attr[(s, "regular")][comp], attr[(s, "reverse")][comp]
      row[f"slope/{s}"] = slope_through_origin(x, y)
      row[f"share/{s}"] = slope_through_origin(attr[(s, "regular")]["total"], y)
    with np.errstate(invalid="ignore", divide="ignore"):
      row["G"] = row["slope/heldout"] / row["slope/useful"]
    out[comp] = row
  return out


def streams(model, cache: dict) -> dict:
  """{layer: B x T x D} the representations the prefix direction is read from."""
  if is_toy(model):
    B, T = cache["memory.hook_keys"].shape
    per_position = lambda v: v[..., None] if v.ndim == 2 else v[:, None, None]  # B or B x T
    return {name: jnp.broadcast_to(per_position(cache[hook]), (B, T, 1))
            for name, hook in (("prefix", "prefix.hook_sign"), ("times", "times.hook_s"))}
  n = len(_net(model).blocks)
  return {"embed": cache["hook_embed"],
          **{f"blocks.{i}": cache[f"blocks.{i}.hook_resid_post"] for i in range(n)}}


def mlp_read_vectors(model, block: int) -> np.ndarray:
  """D x F: what each MLP neuron of ``block`` reads from the residual stream. Neuron n's
  pre-activation is (P (gamma2 * W_up[:, n])) . x / sigma + const, where P removes the mean
  over D and gamma2 is the block's ``ln2`` scale, so its read vector is P (gamma2 * W_up[:, n])."""
  blk = _net(model).blocks[block]
  read = np.asarray(blk.ln2.scale[...])[:, None] * np.asarray(blk.mlp.up.kernel[...])
  return read - read.mean(0, keepdims=True)


def upper_blocks(model) -> list[int]:
  """The blocks that phase 2 freezes (toy: none)."""
  if is_toy(model):
    return []
  n = len(_net(model).blocks)
  return [i for i in range(n) if _net(model).phase2_frozen(("blocks", i))]


def _abs_cos(u_TxD, read_DxF):
  u = u_TxD / np.maximum(np.linalg.norm(u_TxD, axis=-1, keepdims=True), 1e-30)
  r = read_DxF / np.maximum(np.linalg.norm(read_DxF, axis=0, keepdims=True), 1e-30)
  return np.abs(u @ r)  # T x F


def ridge_probe_accuracy(x_train, y_train, x_test, y_test, ridge: float = 1e-3) -> float:
  """A least-squares linear probe (labels +-1, intercept, ridge = ``ridge`` x mean feature
  variance), scored by sign on the test set (a score of 0 counts as +1, so features that do
  not differ between the labels score 0.5 on a balanced test set)."""
  x_train, x_test = np.asarray(x_train, np.float64), np.asarray(x_test, np.float64)
  mu = x_train.mean(0)
  xc = x_train - mu
  lam = ridge * max(float((xc * xc).mean()), 1e-12) * len(xc)
  w = np.linalg.solve(xc.T @ xc + lam * np.eye(xc.shape[1]), xc.T @ (y_train - y_train.mean()))
  pred = (x_test - mu) @ w + y_train.mean()
  return float((np.where(pred >= 0, 1.0, -1.0) == y_test).mean())


def prefix_direction(result, n_random: int = 64) -> dict:
  """The prefix direction at each layer and position, for every seed.

  At each layer (the residual stream after the embedding, ``embed``, and after each block,
  ``blocks.{i}``) and position: the difference of means of the stream under "regular" minus
  under "reverse" over the same passwords (useful, held-out negatives and control), its norm
  (also relative to the stream's mean norm), and the held-out accuracy of a linear probe
  (``ridge_probe_accuracy`` on labels +-1, trained on the useful negatives and the control
  under both prefixes, tested on the held-out negatives under both). Position 0 holds only the
  prefix token, so there the probe is trivially exact. For every upper-half block j (the half
  phase 2 freezes): the |cosine| between the direction entering it (the stream after block
  j-1) and what each of its MLP neurons reads (``mlp_read_vectors``), max and mean over
  neurons, beside the same for random directions (a baseline: about sqrt(2 / (pi D)) for the
  mean). The toy's streams are its scalars d (``prefix``) and s (``times``; per position
  where each row has its own sign); it has no MLP.

  Returns {"layers": names, "norm": S x layers x T, "relative_norm": S x layers x T,
  "probe_accuracy": S x layers x T, "upper_blocks": [j], "cos_max"/"cos_mean": S x upper x T,
  "random_cos_max"/"random_cos_mean": S x upper (the same for random directions)}.
  """
  cfg = result.cfg
  out: dict = {k: [] for k in ("norm", "relative_norm", "probe_accuracy", "cos_max",
                               "cos_mean", "random_cos_max", "random_cos_mean")}
  rng = np.random.default_rng(0)
  for i in range(n_seeds(result)):
    model, data = result.model(i), _seed_data(result, i)
    per_prefix = {}
    for prefix in PREFIXES:
      tokens, _, where = _batch(cfg, data, SETS, prefix)
      _, cache = run_with_cache(model, tokens)
      per_prefix[prefix] = {k: np.asarray(v, np.float64) for k, v in streams(model, cache).items()}
    layers = list(per_prefix["regular"])
    train = np.r_[np.arange(where["useful"].start, where["useful"].stop),
                  np.arange(where["control"].start, where["control"].stop)]
    test = np.arange(where["heldout"].start, where["heldout"].stop)
    y = lambda idx: np.r_[np.ones(len(idx)), -np.ones(len(idx))]  # regular rows, then reverse
    norm, rel, acc, deltas = [], [], [], {}
    for layer in layers:
      reg, rev = per_prefix["regular"][layer], per_prefix["reverse"][layer]  # N x T x D
      delta_TxD = reg.mean(0) - rev.mean(0)
      deltas[layer] = delta_TxD
      norm.append(np.linalg.norm(delta_TxD, axis=-1))
      typical = 0.5 * (np.linalg.norm(reg, axis=-1).mean(0) + np.linalg.norm(rev, axis=-1).mean(0))
      rel.append(norm[-1] / np.maximum(typical, 1e-30))
      acc.append([ridge_probe_accuracy(np.r_[reg[train, t], rev[train, t]], y(train),
                                       np.r_[reg[test, t], rev[test, t]], y(test))
                  for t in range(reg.shape[1])])
    cmax, cmean, rmax, rmean = [], [], [], []
    for j in upper_blocks(model):
      read = mlp_read_vectors(model, j)
      cos = _abs_cos(deltas[layers[j]], read)  # the stream entering block j: after block j-1
      cmax.append(cos.max(-1))
      cmean.append(cos.mean(-1))
      rand = _abs_cos(rng.normal(size=(n_random, read.shape[0])), read)
      rmax.append(rand.max(-1).mean())
      rmean.append(rand.mean())
    for k, v in zip(out, (norm, rel, acc, cmax, cmean, rmax, rmean)):
      out[k].append(np.asarray(v, np.float64))
  out = {k: np.stack(v) for k, v in out.items()}
  out.update(layers=layers, upper_blocks=upper_blocks(result.model(0)))
  return out


def _loglik(logits, targets, where: dict, alphabet_size: int) -> dict:
  per_pw = np.asarray(token_logps(logits, targets, alphabet_size).mean(-1))
  return {s: float(per_pw[w].mean()) for s, w in where.items()}


def patching(result, components=None, directions=DIRECTIONS) -> dict:
  """{(component, "source->target"): {"heldout_minus_control", "useful_minus_control",
  "useful", "heldout", "control"}: the change, patched minus clean target run, of each mean
  per-token log-likelihood (difference), per seed (S)}; also ("clean", prefix) with the clean
  runs' values themselves. ``components`` defaults to every patchable one; ``directions``
  are (source, target) prefix pairs.

  For each component and direction: run the source prefix, record the component's output,
  and run the target prefix with that output substituted (``ablate={component: array}``), on
  the useful and held-out negatives and the control. Patching a component with its own
  output changes nothing (tested)."""
  cfg, raw = result.cfg, {}
  for i in range(n_seeds(result)):
    model, data = result.model(i), _seed_data(result, i)
    hooks = patch_components(model)
    runs = {}
    for prefix in PREFIXES:
      tokens, targets, where = _batch(cfg, data, SETS, prefix)
      logits, cache = run_with_cache(model, tokens)
      clean = _loglik(logits, targets, where, cfg.alphabet_size)
      runs[prefix] = (tokens, targets, where, cache, clean)
      raw.setdefault(("clean", prefix), []).append(clean)
    for source, target in directions:
      tokens, targets, where, _, clean = runs[target]
      for comp in components or hooks:
        replacement = runs[source][3][hooks[comp]]
        patched = _loglik(model(tokens, ablate={comp: replacement}), targets, where,
                          cfg.alphabet_size)
        raw.setdefault((comp, f"{source}->{target}"), []).append(
            {s: patched[s] - clean[s] for s in SETS})
  out = {}
  for key, rows in raw.items():
    col = lambda s: np.array([r[s] for r in rows])
    out[key] = {"heldout_minus_control": col("heldout") - col("control"),
                "useful_minus_control": col("useful") - col("control"),
                **{s: col(s) for s in SETS}}
  return out


# ----------------------------------------------------------------------------- grafting

def upper_half(result) -> list[tuple]:
  """Path prefixes of the transformer's upper half, what PROTOCOL's phase 2 freezes: the
  blocks n_layers // 2 .. n_layers - 1, the final LayerNorm and the unembedding."""
  n = result.cfg.n_layers
  return [("blocks", i) for i in range(n // 2, n)] + [("final_ln",), ("unembed",)]


def graft(a, b, prefix_paths) -> RunResult:
  """``a`` with every parameter under one of ``prefix_paths`` (tuples of names, e.g.
  ``("blocks", 2)`` or ``("unembed",)``) taken from ``b``, seed by seed; everything else
  (config, data, the other parameters) is a's. The two must hold the same model (same tree,
  same shapes, same number of seeds), and every prefix must name at least one parameter.
  The result has no history, summary or run folder of its own. ``graft(a, b, upper_half(a))``
  is a's embedding and lower half under b's upper half."""
  if jax.tree.structure(a.params) != jax.tree.structure(b.params):
    raise ValueError("graft: the two runs hold different models (parameter trees differ)")
  prefixes = [tuple(map(str, p)) for p in prefix_paths]
  used = set()

  def pick(path, x, y):
    names = tuple(map(str, path_names(path)))
    if np.shape(x) != np.shape(y):
      raise ValueError(f"graft: {'/'.join(names)} has shape {np.shape(x)} in a, "
                       f"{np.shape(y)} in b")
    hits = [p for p in prefixes if names[:len(p)] == p]
    used.update(hits)
    return y if hits else x

  params = jax.tree_util.tree_map_with_path(pick, a.params, b.params)
  unused = [p for p in prefixes if p not in used]
  if unused:
    raise ValueError(f"graft: no parameter under {['/'.join(p) for p in unused]}")
  return dataclasses.replace(a, params=params, history=[], summary=[], run_dir=None)


def episode_data(cfg: Config, episode: int | None = None) -> dict:
  """The fixed sets of every seed of ``cfg`` in prior episode ``episode`` (None: the measured
  one), as jnp arrays with a leading seed axis, like ``RunResult.data``."""
  per_seed = [data_lib.seed_data(cfg, s, episode) for s in cfg.seeds]
  return {k: jnp.stack([jnp.asarray(d[k]) for d in per_seed]) for k in per_seed[0]}


def evaluate_run(result) -> dict:
  """{"eval/{prefix}/{set}": S}: ``toy.phases.evaluate`` of every seed on ``result.data``,
  mean per-token log-likelihood under both prefixes."""
  out = evaluate_seeds(result.params, result.state, result.data, cfg=compile_key(result.cfg),
                       graphdef=result.graphdef)
  return {k: np.asarray(v) for k, v in out.items()}
