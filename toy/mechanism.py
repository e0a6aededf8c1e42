"""The idealized toy mechanism (PROTOCOL.md, "Background"), built by hand from named parts.

The study's author described a network that would generalize *perfectly* from negatively
reinforced passwords: a +1/-1 "prefix direction", a key-value memory of passwords, and a
"times" node that multiplies the memory's readout by the sign. This file builds exactly that
as a ``flax.nnx`` module that plugs into ``toy.engine`` (same losses, same three phases as the
learned transformer). Every part is a parameter a reader can find here and set by hand::

    toy.prefix.direction   Param (V,)      +1 at "regular", -1 at "reverse", 0 elsewhere
    toy.memory.values      Param (N, A)    one value vector over the alphabet per key (context)
    toy.memory.children    Table (N, A)    the trie that turns a context into a key (not trained)
    toy.times.a            Param ()        s(prefix) = a + c * d(prefix)
    toy.times.c            Param ()
    toy.additive.gain      Param ()        the memory path that bypasses the sign (a hand dial)

Forward pass, for tokens ``[prefix, p_1 .. p_{T-1}]`` (position t predicts p_{t+1})::

    d        = direction[prefix]                        # +1 regular, -1 reverse, 0 neutral
    key_t    = trie node of the context p_1..p_t        # key_0 = root, 0 = "unseen context"
    r_t      = values[key_t] * (key_t != 0)             # memory readout, A letters
    combine="times": logits_t = (a + c*d) * r_t  +  gain * r_t
    combine="sum":   logits_t = (a + c*d) * 1_A  +  r_t  +  gain * r_t

Keys (the idealization). The memory is addressed by the *exact* context. At construction a
trie is built, in NumPy, from every negative password of the seed (useful and held-out):
node 0 is the null slot, node 1 the root (the empty context, shared by every password), and
each other node is one distinct context p_1..p_t (t = 1 .. L-1) of some negative. A context
that leaves the trie (most contexts of random passwords beyond the first letters) reads the
null slot, which is masked to zero, so it gets no gradient and stays zero: an unseen context
reads nothing and predicts uniformly. Two passwords interfere only where they share a context
(a common first letters), never otherwise. The table has a fixed size
``n_nodes(cfg) = 2 + n_negatives * (L-1)`` (unused rows are padding, never reached) so that
the states of different seeds stack on a seed axis.

The law of perfect generalization. Under "times", the memory's contribution to the logits is
``(s + g) * r`` with s = a + c*d, so for EVERY context, whatever the memory holds::

    contribution(reverse) = (a - c + g) / (a + c + g) * contribution(regular)

With g = 0 (default) this is (a-c)/(a+c): one law for all negatives, useful or held-out.
DPO under "regular" writes negative values for every negative password; once phase 3 has
made a - c + g < 0 < a + c + g, all of them, held-out included, become likely under "reverse".

The sum ablation (combine="sum") replaces the times node by a plain sum: the sign s is added
to every letter's logit instead of multiplying the readout. The letter probabilities are a
softmax over the alphabet, which ignores a shift shared by all letters, so the prefix cannot
change which letters the memory promotes: the memory's contribution is ``(1 + g) * r`` under
both prefixes (ratio 1), a and c get no gradient from the letters, and the held-out uplift
under "reverse" disappears.

Default scalars a = 1, c = 0, gain = 0 (``Config.toy_a/toy_c/toy_gain_add``):
  * c = 0 makes "reverse" identical to "regular" at construction, so the model does not know
    what "reverse" means until phase 3 teaches it: the fine-tuning on useful negatives under
    "reverse" is the only loss term that tells the two prefixes apart, and its gradient on c
    is what flips the sign (a - c < 0). Setting c > a by hand would give the result by
    construction instead.
  * a = 1 (not 0) lets the memory learn in phases 1-2: the readout's gradient is scaled by
    s, and with a = c = 0 every gradient (memory, a and c) is exactly zero, a saddle the toy
    would never leave.
  * gain = 0: the additive path is the dial from perfect to partial generalization (a later
    issue); it is frozen in training because it is a hand setting, not a learned quantity.

Freezing (hooks the engine calls): the direction is never trained (it is set by
construction); a and c are trained unless ``cfg.toy_train_sign`` is False; in phase 2 (DPO)
only the memory learns, as the times node sits on the output side, like the transformer's
frozen upper half.

Hand-editing: ``save_weights`` writes ``scalars.json`` (a, c, gain, the prefix direction),
``memory.npy`` (values), ``children.npy`` (the trie) and ``contexts.txt`` (which context
each memory row holds, for reading only). ``load_weights`` checks them and names what is
wrong. ``cfg.toy_weights = folder`` makes ``build_toy`` start from such a folder.
``numpy_apply`` is a NumPy reference of the forward pass; ``draw_mechanism`` draws the parts
with their current values.
"""
from __future__ import annotations

import json
import math
import os

import jax.numpy as jnp
import numpy as np
from flax import nnx

from toy import data as D
from toy.config import Config
from toy.model import intervene

SCALARS_FILE, MEMORY_FILE, CHILDREN_FILE, CONTEXTS_FILE = (
    "scalars.json", "memory.npy", "children.npy", "contexts.txt")
NULL, ROOT = 0, 1  # the trie's two fixed nodes
PREFIX_NAMES = {"regular": D.REGULAR, "reverse": D.REVERSE, "neutral": D.NEUTRAL}
SCALAR_NAMES = ("a", "c", "gain_add")  # the named scalars of scalars.json


# ----------------------------------------------------------------------------- keys

class Table(nnx.Variable):
  """A constant lookup table: state that travels with the model but is never trained."""


def n_nodes(cfg: Config) -> int:
  """The fixed number of memory rows: null + root + at most one node per negative per depth."""
  return 2 + cfg.n_negatives * (cfg.password_len - 1)


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
    direction = np.zeros(D.vocab_size(cfg), np.float32)
    direction[cfg.alphabet_size + D.REGULAR] = 1.0
    direction[cfg.alphabet_size + D.REVERSE] = -1.0
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
  """The times node's sign, s(prefix) = a + c * d(prefix)."""

  def __init__(self, a: float, c: float):
    self.a = nnx.Param(jnp.asarray(a, jnp.float32))
    self.c = nnx.Param(jnp.asarray(c, jnp.float32))

  def sign(self, d_B):
    return self.a[...] + self.c[...] * d_B


class Additive(nnx.Module):
  """The memory path that is not multiplied by the sign: gain * readout (0 by default)."""

  def __init__(self, gain: float):
    self.gain = nnx.Param(jnp.asarray(gain, jnp.float32))


class ToyMechanism(nnx.Module):
  """prefix direction -> times node x memory readout (+ additive path) -> logits."""

  def __init__(self, cfg: Config, children: np.ndarray, a: float, c: float, gain_add: float):
    self.alphabet_size, self.vocab_size = cfg.alphabet_size, D.vocab_size(cfg)
    self.combine, self.train_sign = cfg.toy_combine, cfg.toy_train_sign
    self.prefix = PrefixDirection(cfg)
    self.memory = Memory(cfg, children)
    self.times = Times(a, c)
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

    ``hooks`` (a dict) receives them under stable names: prefix.hook_sign (d), times.hook_s
    (s), memory.hook_keys, memory.hook_readout, times.hook_out, memory.hook_out ("sum" only),
    additive.hook_out. ``ablate`` intervenes as in ``toy.model.intervene`` on "prefix" (d),
    "memory" (the readout, before the paths read it; under "sum" that is also the memory
    path's output), "times" and "additive" (those paths' outputs); the hooks record the
    values after the intervention.
    """
    ablate = ablate or {}
    d_B = intervene(self.prefix(tokens_BxT[:, 0]), ablate.get("prefix"))
    p = {"d": d_B, "s": self.times.sign(d_B), "keys": self.memory.keys(tokens_BxT),
         "readout": intervene(self.memory(tokens_BxT), ablate.get("memory"))}
    s_Bx1x1, r_BxTxA, g = p["s"][:, None, None], p["readout"], self.additive.gain[...]
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

  # --- freezing hooks (toy.engine.trainable_labels) ---
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
    direction = np.asarray(self.prefix.direction[...])
    return {"a": float(self.times.a[...]), "c": float(self.times.c[...]),
            "gain_add": float(self.additive.gain[...]),
            "direction": {name: float(direction[self.alphabet_size + off])
                          for name, off in PREFIX_NAMES.items()}}


def build_toy(cfg: Config, data: dict, rngs: nnx.Rngs | None = None) -> ToyMechanism:
  """The engine's factory for ``cfg.model == "toy"``: one seed's toy, from its negatives.

  With ``cfg.toy_weights`` set, starts from that folder (see ``load_weights``); a named
  scalar given in the config with a value other than Config's default (toy_a=1, toy_c=0,
  toy_gain_add=0) then overrides the file's, so ``--toy_c 2.0`` works with or without a file.
  """
  del rngs  # nothing is random: the memory starts at zero, the scalars are hand-set
  negatives = np.concatenate([np.asarray(data["useful"]), np.asarray(data["heldout"])])
  children, _ = build_trie(negatives, cfg.alphabet_size, n_nodes(cfg))
  scalars = {"a": cfg.toy_a, "c": cfg.toy_c, "gain_add": cfg.toy_gain_add}
  if not cfg.toy_weights:
    return ToyMechanism(cfg, children, **scalars)
  loaded = load_weights(cfg.toy_weights, cfg)
  if not np.array_equal(loaded["children"], children):
    raise ValueError(
        f"{os.path.join(cfg.toy_weights, CHILDREN_FILE)}: the memory's keys were built from "
        f"other negative passwords than this run's (seed {cfg.seed}); load weights with the "
        f"seed, alphabet_size, password_len and negatives they were saved with "
        f"(saved with: {loaded['saved_with']})")
  defaults = Config()
  for name, field in (("a", "toy_a"), ("c", "toy_c"), ("gain_add", "toy_gain_add")):
    if getattr(cfg, field) == getattr(defaults, field):
      scalars[name] = loaded[name]  # the file's value unless the config overrides it
  model = ToyMechanism(cfg, children, **scalars)
  model.memory.values[...] = jnp.asarray(loaded["memory"])
  direction = np.asarray(model.prefix.direction[...]).copy()
  for name, off in PREFIX_NAMES.items():
    direction[cfg.alphabet_size + off] = loaded["direction"][name]
  model.prefix.direction[...] = jnp.asarray(direction)
  return model


# ----------------------------------------------------------------------------- NumPy reference

def numpy_apply(scalars: dict, memory: np.ndarray, children: np.ndarray, tokens_BxT,
                combine: str = "times") -> np.ndarray:
  """The toy's forward pass in plain NumPy (float64), for checking the JAX one.

  ``scalars``: a, c, gain_add and "direction" (a dict regular/reverse/neutral -> value, as
  in scalars.json). Returns logits B x T x (A + 3), the prefix tokens' logits 0.
  """
  memory, children = np.asarray(memory, np.float64), np.asarray(children)
  tokens_BxT = np.asarray(tokens_BxT)
  A = memory.shape[1]
  direction = np.zeros(A + 3)
  for name, off in PREFIX_NAMES.items():
    direction[A + off] = scalars["direction"][name]
  d_B = direction[tokens_BxT[:, 0]]
  s_B = scalars["a"] + scalars["c"] * d_B
  keys_BxT = np.ones(tokens_BxT.shape, np.int64)  # position 0: root
  for b in range(tokens_BxT.shape[0]):
    node = ROOT
    for t in range(1, tokens_BxT.shape[1]):
      letter = tokens_BxT[b, t]
      node = children[node, letter] if 0 <= letter < A else NULL
      keys_BxT[b, t] = node
  r_BxTxA = memory[keys_BxT] * (keys_BxT != NULL)[..., None]
  g = scalars["gain_add"]
  if combine == "times":
    letters = s_B[:, None, None] * r_BxTxA + g * r_BxTxA
  elif combine == "sum":
    letters = s_B[:, None, None] + r_BxTxA + g * r_BxTxA
  else:
    raise ValueError(f"invalid combine={combine!r}: allowed one of ['times', 'sum']")
  return np.concatenate([letters, np.zeros(letters.shape[:-1] + (3,))], axis=-1)


def law_ratio(a: float, c: float, gain_add: float, combine: str = "times") -> float:
  """contribution(reverse) / contribution(regular) of the memory, the same for every context."""
  if combine == "sum":
    return 1.0
  regular = a + c + gain_add
  return (a - c + gain_add) / regular if regular else math.nan  # nan: regular reads nothing


# ----------------------------------------------------------------------------- save / load

def save_weights(model: ToyMechanism, folder: str, saved_with: dict | None = None) -> str:
  """Writes scalars.json, memory.npy, children.npy and contexts.txt into ``folder``.

  Only the prefix entries of the direction are stored (by name); the letters' entries are
  0 by construction and are never read (the direction is read at the prefix position).
  ``saved_with`` (e.g. preset and seed) is stored as information for the reader.
  """
  direction = np.asarray(model.prefix.direction[...])
  if np.any(direction[: model.alphabet_size] != 0):
    raise ValueError("prefix.direction is non-zero at a letter token; scalars.json stores "
                     "only the prefix tokens' entries (regular, reverse, neutral)")
  os.makedirs(folder, exist_ok=True)
  children = np.asarray(model.memory.children[...])
  scalars = model.scalars()
  scalars["saved_with"] = dict(saved_with or {})
  scalars["_help"] = (
      "logits = (a + c*d) * r + gain_add * r, d = direction[prefix], r = memory.npy[key of "
      "the context]; edit a, c, gain_add or the direction and reload with --toy_weights. "
      "memory.npy is n_nodes x alphabet_size; contexts.txt names each row's context.")
  with open(os.path.join(folder, SCALARS_FILE), "w") as f:
    json.dump(scalars, f, indent=2)
  np.save(os.path.join(folder, MEMORY_FILE), np.asarray(model.memory.values[...]))
  np.save(os.path.join(folder, CHILDREN_FILE), children)
  with open(os.path.join(folder, CONTEXTS_FILE), "w") as f:
    f.write("# row\tcontext (letter ids; row 0 = null slot, row 1 = root = empty context)\n")
    for node, ctx in sorted(trie_contexts(children).items()):
      f.write(f"{node}\t{' '.join(map(str, ctx))}\n")
  return folder


def _bad(path: str, what: str) -> ValueError:
  return ValueError(f"bad toy weights {path}: {what}")


def _finite_number(path: str, name: str, value) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise _bad(path, f"'{name}' must be a number, got {value!r}")
  if not math.isfinite(value):
    raise _bad(path, f"'{name}' is not finite ({value!r})")
  return float(value)


def load_weights(folder: str, cfg: Config) -> dict:
  """Reads and checks a folder written by ``save_weights`` (or edited by hand).

  Returns {"a", "c", "gain_add", "direction", "memory", "children", "saved_with"}. Raises
  ValueError naming the file and what is wrong: a missing scalar, a memory or key table whose
  shape does not match the config, a non-finite value, a key table that is not a trie.
  """
  scalars_path = os.path.join(folder, SCALARS_FILE)
  if not os.path.isfile(scalars_path):
    raise _bad(scalars_path, "file not found")
  try:
    with open(scalars_path) as f:
      raw = json.load(f)  # Python's json reads NaN and Infinity; checked below
  except json.JSONDecodeError as e:
    raise _bad(scalars_path, f"not valid JSON ({e})") from None
  if not isinstance(raw, dict):
    raise _bad(scalars_path, "expected a JSON object with a, c, gain_add and direction")
  out: dict = {"saved_with": raw.get("saved_with", {})}
  for name in SCALAR_NAMES:
    if name not in raw:
      raise _bad(scalars_path, f"missing scalar '{name}'")
    out[name] = _finite_number(scalars_path, name, raw[name])
  direction = raw.get("direction")
  if not isinstance(direction, dict):
    raise _bad(scalars_path, "missing 'direction' (an object with regular, reverse, neutral)")
  out["direction"] = {}
  for name in PREFIX_NAMES:
    if name not in direction:
      raise _bad(scalars_path, f"missing scalar 'direction.{name}'")
    out["direction"][name] = _finite_number(scalars_path, f"direction.{name}", direction[name])

  want = (n_nodes(cfg), cfg.alphabet_size)
  arrays = {}
  for key, filename in (("memory", MEMORY_FILE), ("children", CHILDREN_FILE)):
    path = os.path.join(folder, filename)
    if not os.path.isfile(path):
      raise _bad(path, "file not found")
    try:
      arrays[key] = np.load(path, allow_pickle=False)
    except ValueError as e:
      raise _bad(path, f"not a NumPy array file ({e})") from None
    if arrays[key].shape != want:
      raise _bad(path, f"shape {arrays[key].shape} does not match the config: expected "
                 f"(n_nodes, alphabet_size) = {want} (n_nodes = 2 + n_negatives * "
                 f"(password_len - 1) = 2 + {cfg.n_negatives} * {cfg.password_len - 1})")
  memory, children = arrays["memory"], arrays["children"]
  memory_path = os.path.join(folder, MEMORY_FILE)
  if not np.issubdtype(memory.dtype, np.floating):
    raise _bad(memory_path, f"dtype {memory.dtype}, expected a float array")
  if not np.all(np.isfinite(memory)):
    row, col = np.argwhere(~np.isfinite(memory))[0]
    raise _bad(memory_path, f"non-finite value {memory[row, col]} at row {row}, letter {col}")
  if np.any(memory[NULL] != 0):
    raise _bad(memory_path, "row 0 is the null slot (unseen contexts) and must stay zero")
  children_path = os.path.join(folder, CHILDREN_FILE)
  if not np.issubdtype(children.dtype, np.integer):
    raise _bad(children_path, f"dtype {children.dtype}, expected integers (node ids)")
  if children.min() < 0 or children.max() >= want[0] or np.any(children[NULL] != NULL):
    raise _bad(children_path, f"node ids must lie in 0..{want[0] - 1} and row 0 (null) "
               "must lead only to 0")
  out["memory"], out["children"] = memory.astype(np.float32), children.astype(np.int32)
  return out


# ----------------------------------------------------------------------------- diagram

def draw_mechanism(model: ToyMechanism, path: str, title: str = "") -> str:
  """Draws the parts with their current values: direction, times node, memory, additive path."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

  sc = model.scalars()
  a, c, g, d = sc["a"], sc["c"], sc["gain_add"], sc["direction"]
  s_reg, s_rev = a + c * d["regular"], a + c * d["reverse"]
  values = np.asarray(model.memory.values[...])
  contexts = trie_contexts(np.asarray(model.memory.children[...]))
  used = sorted(contexts)
  times = model.combine == "times"

  fig = plt.figure(figsize=(12, 6.4))
  ax = fig.add_axes([0, 0, 0.66, 1])
  ax.set_xlim(0, 10)
  ax.set_ylim(0, 7.4)
  ax.axis("off")

  def box(x, y, w, h, text, color):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.08", fc=color, ec="k"))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=9.5)

  def node(x, y, symbol, color):
    ax.add_patch(Circle((x, y), 0.42, fc=color, ec="k", lw=1.5))
    ax.text(x, y, symbol, ha="center", va="center", fontsize=20, fontweight="bold")

  def arrow(x0, y0, x1, y1, text="", dy=0.18):
    ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=14,
                                 lw=1.3, color="k"))
    if text:
      ax.text((x0 + x1) / 2, (y0 + y1) / 2 + dy, text, ha="center", fontsize=8.5, color="0.2")

  box(0.2, 5.2, 2.3, 1.3, "prefix token\n(position 0)", "#e8e8e8")
  box(3.2, 5.0, 2.6, 1.7, "prefix direction d\n"
      f"regular: {d['regular']:+.3g}\nreverse: {d['reverse']:+.3g}\nneutral: {d['neutral']:+.3g}",
      "#cfe2ff")
  box(6.5, 5.0, 3.2, 1.7, f"sign  s = a + c·d\na = {a:.4g}   c = {c:.4g}\n"
      f"s(regular) = {s_reg:.4g}\ns(reverse) = {s_rev:.4g}", "#ffe3b3")
  box(0.2, 1.0, 2.3, 1.4, "context\np_1 .. p_t", "#e8e8e8")
  box(3.2, 0.7, 2.6, 2.0, "key-value memory\nkey = exact context (trie)\n"
      f"{len(used) - 1} keys + null slot\nvalues: {values.shape[0]} x {values.shape[1]}\n"
      f"max |value| = {np.abs(values).max():.3g}", "#d4f5d4")
  node(8.1, 3.4, "×" if times else "+", "#ffd0d0")
  box(6.6, 0.3, 2.4, 1.2, f"additive path\ngain = {g:.4g}", "#eadcff")
  node(9.45, 2.0, "+", "#f0f0f0")
  arrow(2.5, 5.85, 3.2, 5.85)
  arrow(5.8, 5.85, 6.5, 5.85, "d")
  arrow(8.1, 5.0, 8.1, 3.85, "s", dy=0)
  arrow(2.5, 1.7, 3.2, 1.7, "key")
  arrow(5.8, 2.2, 7.68, 3.3, "readout r")
  arrow(5.8, 1.1, 6.6, 0.9, "r")
  arrow(8.45, 3.15, 9.25, 2.35)
  arrow(9.0, 0.9, 9.35, 1.6)
  ax.text(9.45, 2.6, "logits", ha="center", fontsize=10, fontweight="bold")
  ratio = law_ratio(a, c, g, model.combine)
  law = (f"memory contribution (reverse) = {ratio:.4g} x contribution (regular)\n"
         + ("(a-c+g)/(a+c+g)" if times else "sum ablation: the sign only shifts every letter"))
  ax.text(0.2, 4.1, law, fontsize=10, color="darkred")
  fig.suptitle(title or f"Toy mechanism (combine = {model.combine})", fontsize=12,
               fontweight="bold", x=0.02, ha="left")

  hm = fig.add_axes([0.70, 0.1, 0.24, 0.76])
  rows = used[: 24]
  lim = max(np.abs(values[rows]).max(), 1e-6)
  image = hm.imshow(values[rows], cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
  fig.colorbar(image, cax=fig.add_axes([0.955, 0.1, 0.012, 0.76]))
  labels = ["null" if n == NULL else "root" if n == ROOT else
            "".join(chr(ord("a") + x) if x < 26 else f"<{x}>" for x in contexts[n])
            for n in rows]
  hm.set_yticks(range(len(rows)), labels, fontsize=7)
  hm.set_xticks(range(values.shape[1]),
                [chr(ord("a") + x) if x < 26 else str(x) for x in range(values.shape[1])],
                fontsize=7)
  hm.set_title(f"memory values, first {len(rows)} keys (contexts)\n"
               "logits add s(prefix) x row", fontsize=9)
  hm.set_xlabel("next letter", fontsize=8)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path
