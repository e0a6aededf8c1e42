"""The idealized toy mechanism (PROTOCOL.md, "Background"), built by hand from named parts.

A ``flax.nnx`` module that plugs into ``toy.engine`` (same losses, same three phases as the
learned transformer). Its parts, each a parameter a reader can find and set by hand::

    toy.prefix.direction   Param (V,)      +1 at "regular", -1 at "reverse", 0 elsewhere
    toy.memory.values      Param (N, A)    one value vector over the alphabet per key (context)
    toy.memory.children    Table (N, A)    the trie that turns a context into a key (not trained)
    toy.times.a, times.c   Param ()        the sign s(prefix) = a + c * d(prefix)
                           or (m,)         one a, c per gate (per row: m = N)
    toy.times.gates        Table (N, k)    the gates each memory row mixes ("gated" only)
    toy.times.gate_weights Table (N, k)    their weights, 1/k each ("gated" only)
    toy.additive.gain      Param ()        the memory path that bypasses the sign (a hand dial)

Forward pass, for tokens ``[prefix, p_1 .. p_{T-1}]`` (position t predicts p_{t+1})::

    d        = direction[prefix]                        # +1 regular, -1 reverse, 0 neutral
    key_t    = trie node of the context p_1..p_t        # key_0 = root, 0 = "unseen context"
    r_t      = values[key_t] * (key_t != 0)             # memory readout, A letters
    combine="times": logits_t = (a + c*d) * r_t  +  gain * r_t
    combine="sum":   logits_t = (a + c*d) * 1_A  +  r_t  +  gain * r_t

So under "times" the memory's contribution obeys one law for every context, useful or
held-out: contribution(reverse) = (a-c+g)/(a+c+g) * contribution(regular) (``law_ratio``).
With ``toy_sign="per_row"`` (a rung of README's ladder) a and c are one per memory row, and
each row obeys its own law, (a[k]-c[k]+g)/(a[k]+c[k]+g). With ``toy_gates`` (the study
author's "leakage", PROTOCOL) the times node is m gates and row k's sign is a fixed mix of
k of them: s_k = sum_j gate_weights[k, j] * (a[g] + c[g] * d), g = gates[k, j].
Why the keys, the defaults (a = 1, c = 0, gain = 0), the freezing and the sum ablation are
what they are: README.md, "The idealized toy mechanism". Weight files: ``toy.mechanism_io``;
the diagram: ``toy.plots.draw_mechanism``; ``numpy_apply`` is a NumPy reference.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from toy import data as data_lib
from toy.config import Config
from toy.model import intervene

NULL, ROOT = 0, 1  # the trie's two fixed nodes
SIGN_FIELDS = ("toy_sign", "toy_gates", "toy_gate_mix")  # the Config fields that shape Times
PREFIX_NAMES = {"regular": data_lib.REGULAR, "reverse": data_lib.REVERSE,
                "neutral": data_lib.NEUTRAL}


# ----------------------------------------------------------------------------- keys

class Table(nnx.Variable):
  """A constant lookup table: state that travels with the model but is never trained."""


def n_nodes(cfg: Config) -> int:
  """The fixed number of memory rows: null + root + at most one node per negative per depth,
  the negatives of every episode (prior ones included) counted."""
  return 2 + cfg.n_negatives * (cfg.prior_episodes + 1) * (cfg.password_len - 1)


def build_trie(passwords_NxL: np.ndarray, alphabet_size: int, size: int):
  """The key table: ``children[node, letter]`` = the node of context + letter, or 0 (null).

  Contexts p_1..p_t with t <= L-1 get nodes (the model never reads a whole password), in
  order of first appearance. Returns (children, contexts), ``contexts[node]`` a letter tuple.
  """
  passwords_NxL = np.asarray(passwords_NxL)
  children = np.zeros((size, alphabet_size), np.int32)
  contexts: list[tuple] = [None, ()]  # null, root
  for password in passwords_NxL:
    node = ROOT
    for letter in password[:-1]:
      letter = int(letter)
      if not 0 <= letter < alphabet_size:
        raise ValueError(f"password letter {letter} outside the alphabet 0..{alphabet_size - 1}")
      if children[node, letter] == NULL:
        if len(contexts) >= size:
          raise ValueError(f"the trie needs more than {size} nodes")
        children[node, letter] = len(contexts)
        contexts.append(contexts[node] + (letter,))
      node = children[node, letter]
  return children, contexts


def trie_contexts(children: np.ndarray) -> dict[int, tuple]:
  """Node id -> context (letters), read back from a children table (root = ())."""
  children = np.asarray(children)
  out, stack = {ROOT: ()}, [ROOT]
  while stack:
    node = stack.pop()
    for letter in np.nonzero(children[node])[0]:
      child = int(children[node, letter])
      out[child] = out[node] + (int(letter),)
      stack.append(child)
  return out


def walk_keys(children, tokens_BxT, alphabet_size: int):
  """The key (trie node) of each position's context, B x T; works on NumPy and JAX arrays.

  Position 0 reads the prefix only: its context is empty (root). Position t adds letter
  tokens[:, t]. A non-letter token, or a context that leaves the trie, lands in the null
  node 0, and node 0 only leads to itself. A Python loop over T (small and static).
  """
  xp = np if isinstance(tokens_BxT, np.ndarray) and isinstance(children, np.ndarray) else jnp
  B, T = tokens_BxT.shape
  node_B = xp.full((B,), ROOT, dtype=np.int32)
  keys = [node_B]
  for t in range(1, T):
    letter_B = tokens_BxT[:, t]
    is_letter_B = (letter_B >= 0) & (letter_B < alphabet_size)
    child_B = children[node_B, xp.where(is_letter_B, letter_B, 0)]
    node_B = xp.where(is_letter_B, child_B, NULL).astype(np.int32)
    keys.append(node_B)
  return xp.stack(keys, axis=1)


# ----------------------------------------------------------------------------- the parts

class PrefixDirection(nnx.Module):
  """A coordinate of the prefix embedding: +1 "regular", -1 "reverse", 0 every other token."""

  def __init__(self, cfg: Config):
    direction = np.zeros(data_lib.vocab_size(cfg), np.float32)
    direction[cfg.alphabet_size + data_lib.REGULAR] = 1.0
    direction[cfg.alphabet_size + data_lib.REVERSE] = -1.0
    self.direction = nnx.Param(jnp.asarray(direction))

  def __call__(self, first_token_B):
    return self.direction[...][first_token_B]


class Memory(nnx.Module):
  """Key-value memory: key = exact context (a trie node), value = a vector over the alphabet."""

  def __init__(self, cfg: Config, children: np.ndarray):
    self.alphabet_size = cfg.alphabet_size
    self.children = Table(jnp.asarray(children, jnp.int32))
    self.values = nnx.Param(jnp.zeros(children.shape, jnp.float32))  # written by training

  def keys(self, tokens_BxT):
    return walk_keys(self.children[...], tokens_BxT, self.alphabet_size)

  def __call__(self, tokens_BxT):
    key_BxT = self.keys(tokens_BxT)
    seen_BxTx1 = (key_BxT != NULL)[..., None].astype(jnp.float32)  # null reads 0, no gradient
    return self.values[...][key_BxT] * seen_BxTx1


class Times(nnx.Module):
  """The times node's sign, s(prefix) = a + c * d(prefix).

  Shared (the toy): a and c are scalars, one sign for every memory row. Per row
  (``shape=(n_rows,)``, ``toy_sign="per_row"``): row k's readout is multiplied by
  a[k] + c[k] * d, and phase 3 can only learn the signs of rows the useful negatives visit.
  Gated (``code``, ``toy_gates``): a and c are one per gate, and row k's sign is the mix
  sum_j w[k, j] * (a[g] + c[g] * d), g = gates[k, j], w = gate_weights. Rows that share a
  gate share what phase 3 learns for it; that is how a flip reaches held-out rows.

  The code is sparse, k gate indices and weights per row, not an (n_rows, m) matrix: at the
  cpu preset with m = 16384 gates a dense code would be 4482 x 16384 floats (290 MB) per
  seed. Both are Tables: never trained, stored in the weights folder, editable by hand.
  """

  def __init__(self, a, c, shape: tuple = (), code: tuple | None = None):
    self.a = nnx.Param(jnp.broadcast_to(jnp.asarray(a, jnp.float32), shape))
    self.c = nnx.Param(jnp.broadcast_to(jnp.asarray(c, jnp.float32), shape))
    self.gated = code is not None
    if self.gated:
      gates_NxK, weights_NxK = code
      self.gates = Table(jnp.asarray(gates_NxK, jnp.int32))
      self.gate_weights = Table(jnp.asarray(weights_NxK, jnp.float32))

  def sign(self, d_B, key_BxT, hooks=None):
    """B (shared) or B x T (per row or gated, at each position's key)."""
    a, c = self.a[...], self.c[...]
    if a.ndim == 0:
      return a + c * d_B
    if not self.gated:
      return a[key_BxT] + c[key_BxT] * d_B[:, None]
    gate_BxTxK = self.gates[...][key_BxT]
    if hooks is not None:
      hooks["times.hook_gates"] = gate_BxTxK
    gate_s_BxTxK = a[gate_BxTxK] + c[gate_BxTxK] * d_B[:, None, None]
    return (self.gate_weights[...][key_BxT] * gate_s_BxTxK).sum(-1)


def sign_shape(cfg: Config) -> tuple:
  """The shape of the times node's a and c: () shared, (n_rows,) per row, (m,) gated."""
  if cfg.toy_sign == "per_row":
    return (n_nodes(cfg),)
  if is_gated(cfg):
    return (n_gates(cfg),)
  return ()


def is_gated(cfg: Config) -> bool:
  """Whether the times node is gates with a code (toy_gates, toy_gate_mix) != (1, 1); the
  default keeps the toy's scalar path, so that its runs stay bitwise what they were."""
  return (cfg.toy_gates, cfg.toy_gate_mix) != (1, 1)


def n_gates(cfg: Config) -> int:
  """m: toy_gates, or one per memory row when it is 0."""
  return cfg.toy_gates or n_nodes(cfg)


def gate_code(cfg: Config, n_rows: int, rngs: nnx.Rngs) -> tuple[np.ndarray, np.ndarray]:
  """(gates, gate_weights), each n_rows x k: row i mixes k distinct gates drawn uniformly at
  random (from ``rngs.params()``), weight 1/k each, so that every row's sign starts at the
  toy's a + c*d. toy_gates=0: row i has gate i alone (one gate per row)."""
  k = cfg.toy_gate_mix
  if cfg.toy_gates == 0:
    return np.arange(n_rows, dtype=np.int32)[:, None], np.ones((n_rows, 1), np.float32)
  m = cfg.toy_gates
  # NumPy, seeded from the key: choosing k of m without replacement row by row is a few
  # microseconds a row, where JAX's choice would permute all m gates for every row.
  rng = np.random.default_rng(np.asarray(jax.random.bits(rngs.params(), (4,), jnp.uint32)))
  if k == 1:
    gates = rng.integers(0, m, (n_rows, 1))
  else:
    gates = np.stack([rng.choice(m, k, replace=False) for _ in range(n_rows)])
  return gates.astype(np.int32), np.full((n_rows, k), 1.0 / k, np.float32)


def shared_gate_code(n_rows: int, w: float) -> tuple[np.ndarray, np.ndarray]:
  """(gates, gate_weights), each n_rows x 2: row i mixes gate 0, which every row shares, with
  weight w and its own gate i + 1 with weight 1 - w (n_rows + 1 gates). One shared times node
  of strength w beside per-row memorization: w = 0 is one gate per row, w = 1 the toy."""
  if not (math.isfinite(w) and 0 <= w <= 1):
    raise ValueError(f"invalid shared gate weight w={w!r}: allowed a number in [0, 1]")
  gates = np.stack([np.zeros(n_rows, np.int64), np.arange(1, n_rows + 1)], axis=1)
  weights = np.tile(np.asarray([w, 1.0 - w], np.float32), (n_rows, 1))
  return gates.astype(np.int32), weights


def shared_gate_toy(w: float):
  """A model factory (``toy.engine.train``'s ``make_model``): the toy whose row i's sign is
  w * (a[0] + c[0]*d) + (1 - w) * (a[i+1] + c[i+1]*d) (``shared_gate_code``).

  Its config must be one gate per row (``toy_gates=0``: the per-row part); w is not a Config
  field (toy/config.py is unchanged), so a sweep over w keeps each w's points in its own
  folder and records w beside the config. Every gate starts at the config's a, c, so every
  row's sign starts at the toy's. A weights folder is refused: it holds its own code.
  """
  shared_gate_code(1, w)  # validates w before any training

  def build(cfg: Config, data: dict, rngs: nnx.Rngs | None = None) -> ToyMechanism:
    if cfg.model != "toy" or cfg.toy_gates != 0 or cfg.toy_weights:
      raise ValueError(f"shared_gate_toy: needs model='toy', toy_gates=0 (one gate per row) "
                       f"and no toy_weights; got model={cfg.model!r}, "
                       f"toy_gates={cfg.toy_gates}, toy_weights={cfg.toy_weights!r}")
    children = np.asarray(build_toy(cfg, data, rngs).memory.children[...])
    n = children.shape[0]
    model = ToyMechanism(cfg, children, np.full(n + 1, cfg.toy_a, np.float32),
                         np.full(n + 1, cfg.toy_c, np.float32), cfg.toy_gain_add,
                         code=shared_gate_code(n, w))
    model.sign_kind = model.sign_kind + (("toy_gate_shared", float(w)),)
    return model

  return build


class Additive(nnx.Module):
  """The memory path that is not multiplied by the sign: gain * readout (0 by default)."""

  def __init__(self, gain: float):
    self.gain = nnx.Param(jnp.asarray(gain, jnp.float32))


class ToyMechanism(nnx.Module):
  """prefix direction -> times node x memory readout (+ additive path) -> logits.

  Implements toy.setup.TrainableModel and its OptionalMembers ``frozen_in`` and
  ``always_frozen``."""

  def __init__(self, cfg: Config, children: np.ndarray, a, c, gain_add: float,
               code: tuple | None = None):
    """a, c: numbers, or arrays of ``sign_shape(cfg)``; ``code``: (gates, gate_weights) of
    a gated times node (``gate_code``), whose a and c then have one entry per gate."""
    self.alphabet_size, self.vocab_size = cfg.alphabet_size, data_lib.vocab_size(cfg)
    self.combine, self.train_sign = cfg.toy_combine, cfg.toy_train_sign
    # what the weights folder records, so that it is loaded only into the same times node
    self.sign_kind = tuple((field, getattr(cfg, field)) for field in SIGN_FIELDS)
    self.prefix = PrefixDirection(cfg)
    self.memory = Memory(cfg, children)
    shape = np.shape(a) if code is not None else sign_shape(cfg)
    self.times = Times(a, c, shape, code)
    self.additive = Additive(gain_add)

  # The paths whose sum is the letters' logits, and the hook that records each one's output.
  PATH_HOOKS = {"times": "times.hook_out", "memory": "memory.hook_out",
                "additive": "additive.hook_out"}

  def paths(self) -> tuple[str, ...]:
    """The paths into the letters' logits: the direct memory path exists under "sum" only."""
    return ("times", "memory", "additive") if self.combine == "sum" else ("times", "additive")

  def parts(self, tokens_BxT, hooks=None, ablate=None) -> dict:
    """The intermediate values by name: d (B), s (B), keys (BxT), readout (BxTxA), and each
    path's contribution to the letters' logits (BxTxA; they sum to them): ``times`` (s times
    the readout; under "sum", s on every letter), ``memory`` (the readout itself, "sum" only)
    and ``additive`` (gain times the readout).

    ``hooks`` (a dict) receives them under stable names (``toy.inspect.HOOKS["toy"]``; s is
    B x T with one sign per row or gates). ``ablate`` intervenes as in
    ``toy.model.intervene`` on "prefix" (d), "memory" (the readout, before the paths read it;
    under "sum" that is also the memory path's output), "times" and "additive" (those paths'
    outputs); the hooks record the values after the intervention.
    """
    ablate = ablate or {}
    d_B = intervene(self.prefix(tokens_BxT[:, 0]), ablate.get("prefix"))
    keys = self.memory.keys(tokens_BxT)
    p = {"d": d_B, "s": self.times.sign(d_B, keys, hooks), "keys": keys,
         "readout": intervene(self.memory(tokens_BxT), ablate.get("memory"))}
    s_Bx1x1 = p["s"][:, None, None] if p["s"].ndim == 1 else p["s"][..., None]  # or B x T x 1
    r_BxTxA, g = p["readout"], self.additive.gain[...]
    if self.combine == "times":
      p["times"] = intervene(s_Bx1x1 * r_BxTxA, ablate.get("times"))
    else:  # "sum": the sign is added to every letter, so it cannot flip the memory
      p["times"] = intervene(jnp.broadcast_to(s_Bx1x1, r_BxTxA.shape), ablate.get("times"))
      p["memory"] = r_BxTxA
    p["additive"] = intervene(g * r_BxTxA, ablate.get("additive"))
    if hooks is not None:
      hooks.update({"prefix.hook_sign": p["d"], "times.hook_s": p["s"],
                    "memory.hook_keys": p["keys"], "memory.hook_readout": p["readout"]})
      hooks.update({self.PATH_HOOKS[k]: p[k] for k in self.paths()})
    return p

  def __call__(self, tokens_BxT, hooks=None, ablate=None):
    p = self.parts(tokens_BxT, hooks, ablate)
    letters_BxTxA = p["times"]
    for path in self.paths()[1:]:
      letters_BxTxA = letters_BxTxA + p[path]
    # The prefix tokens are never a target (losses read the first A logits): they get 0.
    pad_BxTx3 = jnp.zeros(letters_BxTxA.shape[:-1] + (self.vocab_size - self.alphabet_size,),
                          letters_BxTxA.dtype)
    return jnp.concatenate([letters_BxTxA, pad_BxTx3], axis=-1)

  # --- freezing hooks (toy.optim.trainable_labels) ---
  def phase2_frozen(self, path: tuple) -> bool:
    """Phase 2 (DPO): only the memory learns; the times node is on the output side."""
    return path[0] != "memory"

  def frozen_in(self, phase: str, path: tuple) -> bool:
    """Phase 1 (pretrain): the times node is frozen; it learns in phase 3 only.

    Phase 1 shows one prefix and nothing to memorize, so for the times node it is only a
    scale s(regular) = a + c on a memory that fits sampling noise. Measured (cpu preset,
    lr 0.03-0.3): Adam, which moves a parameter by ~lr per step whatever its gradient's size,
    drove a + c from 1 to about 0 +- 0.4 in 64 steps, with a random sign per seed. Where it
    ended below 0, phase 2 wrote every negative with the opposite sign and "reverse"
    promoted negatives before phase 3 had run: an accident of phase-1 noise, not learning.
    """
    return phase == "pretrain" and path[0] == "times"

  def always_frozen(self, path: tuple) -> bool:
    """The direction is set by construction and the additive gain is a hand dial.

    a and c are frozen when ``cfg.toy_train_sign`` is False, and in the sum ablation: there
    they only shift every letter's logit alike, so their exact gradient is 0, but float
    rounding leaves ~1e-8 that Adam (which divides by the gradient's size) would turn into
    lr-sized random steps.
    """
    if path[0] in ("prefix", "additive"):
      return True
    return path[0] == "times" and (not self.train_sign or self.combine == "sum")

  def scalars(self) -> dict:
    """The named scalars as Python floats (what scalars.json holds)."""
    if self.times.a[...].ndim:
      what = "gate" if self.times.gated else "memory row (toy_sign='per_row')"
      raise ValueError(f"a and c are one per {what}, not the scalars that scalars.json "
                       "holds; read model.times.a / model.times.c (or other_scalars())")
    return {"a": float(self.times.a[...]), "c": float(self.times.c[...]),
            **self.other_scalars()}

  def other_scalars(self) -> dict:
    """The scalars other than a and c (gain_add, the direction): what scalars.json holds
    when a and c are vectors (per row or gated)."""
    direction = np.asarray(self.prefix.direction[...])
    return {"gain_add": float(self.additive.gain[...]),
            "direction": {name: float(direction[self.alphabet_size + off])
                          for name, off in PREFIX_NAMES.items()}}


def build_toy(cfg: Config, data: dict, rngs: nnx.Rngs | None = None) -> ToyMechanism:
  """The engine's factory for ``cfg.model == "toy"``: one seed's toy, from its negatives.

  A weights folder (``cfg.toy_weights``) is loaded by ``toy.mechanism_io.build_toy``; a named
  scalar given in the config with a value other than Config's default (toy_a=1, toy_c=0,
  toy_gain_add=0) then overrides the file's (every entry of a vector a or c), so
  ``--toy_c 2.0`` works with or without a file. Only a gated times node is random (its
  code, ``gate_code``, from ``rngs``; None: the key the engine gives seed ``cfg.seed``); a
  weights folder supplies its own code.
  """
  # Prior episodes' negatives first: one memory holds every episode's, and the times node
  # that phase 3 of a prior episode learned is the one the measured episode starts from.
  negatives = np.concatenate([np.asarray(data.get("prior_negatives", data["useful"][:0])),
                              np.asarray(data["useful"]), np.asarray(data["heldout"])])
  children, _ = build_trie(negatives, cfg.alphabet_size, n_nodes(cfg))
  shape = sign_shape(cfg)
  scalars = {"a": np.full(shape, cfg.toy_a, np.float32) if shape else cfg.toy_a,
             "c": np.full(shape, cfg.toy_c, np.float32) if shape else cfg.toy_c,
             "gain_add": cfg.toy_gain_add}
  if not cfg.toy_weights:
    code = None
    if is_gated(cfg):
      rngs = nnx.Rngs(data_lib.seed_keys([cfg.seed])[1][0]) if rngs is None else rngs
      code = gate_code(cfg, children.shape[0], rngs)
    return ToyMechanism(cfg, children, **scalars, code=code)
  raise ValueError(f"toy_weights={cfg.toy_weights!r}: a weights folder is loaded by "
                   "toy.mechanism_io.build_toy (the engine's factory), not toy.mechanism's")


# ----------------------------------------------------------------------------- NumPy reference

def numpy_apply(scalars: dict, memory: np.ndarray, children: np.ndarray, tokens_BxT,
                combine: str = "times", code: tuple | None = None) -> np.ndarray:
  """The toy's forward pass in plain NumPy (float64), for checking the JAX one.

  ``scalars``: a, c, gain_add and "direction" (a dict regular/reverse/neutral -> value, as
  in scalars.json); a and c may be vectors, one per memory row (per row) or, with ``code``
  = (gates, gate_weights), one per gate. Returns logits B x T x (A + 3), the prefix tokens'
  logits 0.
  """
  memory, children = np.asarray(memory, np.float64), np.asarray(children)
  tokens_BxT = np.asarray(tokens_BxT)
  A = memory.shape[1]
  direction = np.zeros(A + 3)
  for name, off in PREFIX_NAMES.items():
    direction[A + off] = scalars["direction"][name]
  d_B = direction[tokens_BxT[:, 0]]
  keys_BxT = np.ones(tokens_BxT.shape, np.int64)  # position 0: root
  for b in range(tokens_BxT.shape[0]):
    node = ROOT
    for t in range(1, tokens_BxT.shape[1]):
      letter = tokens_BxT[b, t]
      node = children[node, letter] if 0 <= letter < A else NULL
      keys_BxT[b, t] = node
  a, c = np.asarray(scalars["a"], np.float64), np.asarray(scalars["c"], np.float64)
  s_BxT = np.zeros(tokens_BxT.shape)
  for b in range(tokens_BxT.shape[0]):
    for t in range(tokens_BxT.shape[1]):
      row = keys_BxT[b, t]
      if a.ndim == 0:
        s_BxT[b, t] = a + c * d_B[b]
      elif code is None:
        s_BxT[b, t] = a[row] + c[row] * d_B[b]
      else:
        gates, weights = code
        s_BxT[b, t] = sum(float(w) * (a[g] + c[g] * d_B[b])
                          for g, w in zip(gates[row], weights[row]))
  r_BxTxA = memory[keys_BxT] * (keys_BxT != NULL)[..., None]
  g = scalars["gain_add"]
  if combine == "times":
    letters = s_BxT[..., None] * r_BxTxA + g * r_BxTxA
  elif combine == "sum":
    letters = s_BxT[..., None] + r_BxTxA + g * r_BxTxA
  else:
    raise ValueError(f"invalid combine={combine!r}: allowed one of ['times', 'sum']")
  return np.concatenate([letters, np.zeros(letters.shape[:-1] + (3,))], axis=-1)


def law_ratio(a: float, c: float, gain_add: float, combine: str = "times") -> float:
  """contribution(reverse) / contribution(regular) of the memory, the same for every context."""
  if combine == "sum":
    return 1.0
  regular = a + c + gain_add
  return (a - c + gain_add) / regular if regular else math.nan  # nan: regular reads nothing
