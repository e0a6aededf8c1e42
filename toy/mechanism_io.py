"""The toy's weights as files a person can read and edit, and their checked loading.

``save_weights`` writes ``scalars.json`` (a, c, gain_add, the prefix direction),
``memory.npy`` (values), ``children.npy`` (the trie) and ``contexts.txt`` (which context each
memory row holds, for reading only). ``load_weights`` checks them and names what is wrong;
``cfg.toy_weights = folder`` makes ``toy.mechanism.build_toy`` start from such a folder.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np

from toy.config import Config
from toy.mechanism import NULL, PREFIX_NAMES, ToyMechanism, n_nodes, trie_contexts

SCALARS_FILE, MEMORY_FILE, CHILDREN_FILE, CONTEXTS_FILE = (
    "scalars.json", "memory.npy", "children.npy", "contexts.txt")
SCALAR_NAMES = ("a", "c", "gain_add")  # the named scalars of scalars.json


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
