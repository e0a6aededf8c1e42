"""The toy's weights as files a person can read and edit, and their checked loading.

``save_weights`` writes ``scalars.json`` (a, c, gain_add, the prefix direction, and which
times node it is: toy_sign, toy_gates, toy_gate_mix), ``memory.npy`` (values),
``children.npy`` (the trie) and ``contexts.txt`` (which context each memory row holds, for
reading only). Where a and c are vectors (one per memory row, or one per gate) they are
``times_a.npy`` and ``times_c.npy`` instead of entries of scalars.json, and a gated times
node adds its code: ``gates.npy`` and ``gate_weights.npy`` (n_nodes x k: the gates each
memory row mixes, and their weights). ``load_weights`` checks them and names what is wrong;
``build_toy`` (the engine's factory for ``model="toy"``) starts from such a folder where
``cfg.toy_weights = folder``, and is ``toy.mechanism.build_toy`` otherwise.
"""
from __future__ import annotations

import json
import math
import os

import jax.numpy as jnp
import numpy as np
from flax import nnx

from toy import mechanism as M
from toy.config import Config
from toy.mechanism import (NULL, PREFIX_NAMES, SIGN_FIELDS, ToyMechanism, is_gated, n_gates,
                           n_nodes, sign_shape, trie_contexts)

SCALARS_FILE, MEMORY_FILE, CHILDREN_FILE, CONTEXTS_FILE = (
    "scalars.json", "memory.npy", "children.npy", "contexts.txt")
TIMES_A_FILE, TIMES_C_FILE, GATES_FILE, GATE_WEIGHTS_FILE = (
    "times_a.npy", "times_c.npy", "gates.npy", "gate_weights.npy")
SCALAR_NAMES = ("a", "c", "gain_add")  # the named scalars of scalars.json
SIGN_KEY = "times"  # scalars.json: the times node it was written with (SIGN_FIELDS)
# a file written before the times node had gates: the toy's
SIGN_DEFAULT = {field: getattr(Config, field) for field in SIGN_FIELDS}


def save_weights(model: ToyMechanism, folder: str, saved_with: dict | None = None) -> str:
  """Writes scalars.json, memory.npy, children.npy and contexts.txt into ``folder``, and
  times_a.npy, times_c.npy (vector a and c) and gates.npy, gate_weights.npy (gates).

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
  times = model.times
  vector = times.a[...].ndim > 0
  scalars = model.other_scalars() if vector else model.scalars()
  scalars[SIGN_KEY] = dict(model.sign_kind)
  scalars["saved_with"] = dict(saved_with or {})
  scalars["_help"] = (
      "logits = (a + c*d) * r + gain_add * r, d = direction[prefix], r = memory.npy[key of "
      "the context]; edit a, c, gain_add or the direction and reload with --toy_weights. "
      "memory.npy is n_nodes x alphabet_size; contexts.txt names each row's context.")
  if vector:
    scalars["_help"] += (
        " Here a and c are vectors, times_a.npy and times_c.npy: "
        + ("row i's sign is sum_j gate_weights.npy[i, j] * (a[g] + c[g]*d), "
           "g = gates.npy[i, j] (n_nodes x k; edit to move a row to other gates)."
           if times.gated else "row i's sign is a[i] + c[i]*d (one per memory row)."))
  with open(os.path.join(folder, SCALARS_FILE), "w") as f:
    json.dump(scalars, f, indent=2)
  if vector:
    np.save(os.path.join(folder, TIMES_A_FILE), np.asarray(times.a[...]))
    np.save(os.path.join(folder, TIMES_C_FILE), np.asarray(times.c[...]))
  if times.gated:
    np.save(os.path.join(folder, GATES_FILE), np.asarray(times.gates[...]))
    np.save(os.path.join(folder, GATE_WEIGHTS_FILE), np.asarray(times.gate_weights[...]))
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


def _array(folder: str, filename: str, want: tuple, what: str, note: str = "") -> np.ndarray:
  """A .npy file of shape ``want`` (``what`` names it, ``note`` says where it comes from)."""
  path = os.path.join(folder, filename)
  if not os.path.isfile(path):
    raise _bad(path, "file not found")
  try:
    array = np.load(path, allow_pickle=False)
  except ValueError as e:
    raise _bad(path, f"not a NumPy array file ({e})") from None
  if array.shape != want:
    raise _bad(path, f"shape {array.shape} does not match the config: expected {what} = "
               f"{want}{note}")
  return array


def _finite_floats(path: str, array: np.ndarray, where) -> np.ndarray:
  """``array`` as float32 if it is a finite float array; ``where(index)`` names an entry."""
  if not np.issubdtype(array.dtype, np.floating):
    raise _bad(path, f"dtype {array.dtype}, expected a float array")
  if not np.all(np.isfinite(array)):
    index = tuple(np.argwhere(~np.isfinite(array))[0])
    raise _bad(path, f"non-finite value {array[index]} at {where(index)}")
  return array.astype(np.float32)


def load_weights(folder: str, cfg: Config) -> dict:
  """Reads and checks a folder written by ``save_weights`` (or edited by hand).

  Returns {"a", "c", "gain_add", "direction", "memory", "children", "saved_with"}, with
  "gates" and "gate_weights" for a gated times node; a and c are floats, or float arrays of
  ``sign_shape(cfg)``. Raises ValueError naming the file and what is wrong: a missing scalar,
  a folder written for another times node (toy_sign, toy_gates, toy_gate_mix) than the
  config's, an array whose shape does not match the config, a non-finite value, a key table
  that is not a trie, a gate outside 0..m-1.
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
  written = raw.get(SIGN_KEY, SIGN_DEFAULT)
  if not isinstance(written, dict):
    raise _bad(scalars_path, f"'{SIGN_KEY}' must be an object with {', '.join(SIGN_FIELDS)}")
  want_sign = {field: getattr(cfg, field) for field in SIGN_FIELDS}
  if written != want_sign:
    show = lambda kind: ", ".join(f"{k}={v!r}" for k, v in kind.items())
    raise _bad(scalars_path, f"written for another times node ({show(written)}) than the "
               f"config's ({show(want_sign)}); load it with the same toy_sign, toy_gates "
               "and toy_gate_mix")
  shape = sign_shape(cfg)
  out: dict = {"saved_with": raw.get("saved_with", {})}
  for name in SCALAR_NAMES:
    if shape and name in ("a", "c"):
      if name in raw:  # an edit there would be silently ignored
        raise _bad(scalars_path, f"'{name}' is a vector for this times node: edit "
                   f"{TIMES_A_FILE if name == 'a' else TIMES_C_FILE}, not scalars.json")
      continue
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

  n_rows = n_nodes(cfg)
  want = (n_rows, cfg.alphabet_size)
  table = ("(n_nodes, alphabet_size)", f" (n_nodes = 2 + n_negatives * (password_len - 1) = "
           f"2 + {cfg.n_negatives} * {cfg.password_len - 1})")
  memory = _array(folder, MEMORY_FILE, want, *table)
  children = _array(folder, CHILDREN_FILE, want, *table)
  memory_path = os.path.join(folder, MEMORY_FILE)
  memory = _finite_floats(memory_path, memory, lambda i: f"row {i[0]}, letter {i[1]}")
  if np.any(memory[NULL] != 0):
    raise _bad(memory_path, "row 0 is the null slot (unseen contexts) and must stay zero")
  children_path = os.path.join(folder, CHILDREN_FILE)
  if not np.issubdtype(children.dtype, np.integer):
    raise _bad(children_path, f"dtype {children.dtype}, expected integers (node ids)")
  if children.min() < 0 or children.max() >= want[0] or np.any(children[NULL] != NULL):
    raise _bad(children_path, f"node ids must lie in 0..{want[0] - 1} and row 0 (null) "
               "must lead only to 0")
  out["memory"], out["children"] = memory, children.astype(np.int32)

  if shape:
    what = (("(n_gates,)", " (toy_gates, or n_nodes when it is 0)") if is_gated(cfg)
            else ("(n_nodes,)", " (toy_sign='per_row': one per memory row)"))
    for name, filename in (("a", TIMES_A_FILE), ("c", TIMES_C_FILE)):
      out[name] = _finite_floats(os.path.join(folder, filename),
                                 _array(folder, filename, shape, *what),
                                 lambda i: f"entry {i[0]}")
  if is_gated(cfg):
    k, m = cfg.toy_gate_mix, n_gates(cfg)
    code = ("(n_nodes, toy_gate_mix)", f" (n_nodes = {n_rows})")
    gates = _array(folder, GATES_FILE, (n_rows, k), *code)
    gates_path = os.path.join(folder, GATES_FILE)
    if not np.issubdtype(gates.dtype, np.integer):
      raise _bad(gates_path, f"dtype {gates.dtype}, expected integers (gate ids)")
    if gates.min() < 0 or gates.max() >= m:
      raise _bad(gates_path, f"gate ids must lie in 0..{m - 1} (toy_gates = {cfg.toy_gates})")
    weights = _finite_floats(os.path.join(folder, GATE_WEIGHTS_FILE),
                             _array(folder, GATE_WEIGHTS_FILE, (n_rows, k), *code),
                             lambda i: f"row {i[0]}, entry {i[1]}")
    out["gates"], out["gate_weights"] = gates.astype(np.int32), weights
  return out


def build_toy(cfg: Config, data: dict, rngs: nnx.Rngs | None = None) -> ToyMechanism:
  """The engine's factory for ``cfg.model == "toy"``: ``toy.mechanism.build_toy``, started
  from the weights folder ``cfg.toy_weights`` where one is given.

  From a folder, a named scalar given in the config with a value other than Config's default
  (toy_a=1, toy_c=0, toy_gain_add=0) overrides the file's (every entry of a vector a or c),
  so ``--toy_c 2.0`` works with or without a file; the folder supplies the gate code (``rngs``
  is not drawn from). The memory's keys must be the ones this run's negatives build.
  """
  if not cfg.toy_weights:
    return M.build_toy(cfg, data, rngs)
  # This run's memory keys, from its negatives (prior episodes' included); a throwaway key
  # for a gated code, which the folder replaces, leaves the caller's rngs untouched.
  children = np.asarray(M.build_toy(cfg.replace(toy_weights=""), data,
                                    nnx.Rngs(0)).memory.children[...])
  shape = sign_shape(cfg)
  scalars = {"a": np.full(shape, cfg.toy_a, np.float32) if shape else cfg.toy_a,
             "c": np.full(shape, cfg.toy_c, np.float32) if shape else cfg.toy_c,
             "gain_add": cfg.toy_gain_add}
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
  code = (loaded["gates"], loaded["gate_weights"]) if is_gated(cfg) else None
  model = ToyMechanism(cfg, children, **scalars, code=code)
  model.memory.values[...] = jnp.asarray(loaded["memory"])
  direction = np.asarray(model.prefix.direction[...]).copy()
  for name, off in PREFIX_NAMES.items():
    direction[cfg.alphabet_size + off] = loaded["direction"][name]
  model.prefix.direction[...] = jnp.asarray(direction)
  return model
