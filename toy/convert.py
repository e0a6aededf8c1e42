"""Hugging Face GPT-NeoX (Pythia) checkpoint folders -> ``toy.model.Transformer``, and the
engine's view of one. The parameter mapping itself is ``toy.hf_params`` (no file I/O).

``load_pythia(path)`` reads a checkpoint folder already on disk (``config.json`` plus
``model.safetensors`` or ``pytorch_model.bin``); it never downloads. ``PythiaTask`` wraps the
loaded network for ``toy.engine.train``: it maps the engine's A + 3 token ids (letters, then the
regular / reverse / neutral prefixes) to vocabulary ids of the user's choosing and returns logits
over those A + 3 tokens (plus, for ``normalize="vocab"``, one column standing for the rest of
the vocabulary), so the engine's losses and metrics apply unchanged.

From the command line, ``--init_from FOLDER`` (Config.init_from) does all of this:
``toy.cli`` checks the folder and reads its network shape (``resolve_init_from``) before any
work, and ``toy.setup.build_model`` builds ``checkpoint_model(cfg)`` for every seed, the
letters and prefixes mapped through the folder's own tokenizer (``task_token_ids``). README,
"Running the study on a Pythia checkpoint"; checked on tiny random checkpoints only
(tests/test_init_from.py).
"""
from __future__ import annotations

import functools
import json
import os
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from toy.config import Config, validate
from toy.hf_params import config_from_hf, params_from_hf_state_dict, to_float32
from toy.model import Transformer, TransformerConfig


def from_hf_state_dict(state_dict: Mapping[str, Any], hf_config,
                       dtype=jnp.float32) -> tuple[TransformerConfig, Transformer]:
  """(our config, a live ``Transformer``) with the weights of a GPT-NeoX state dict.

  The module is built abstractly (``nnx.eval_shape``), so no random initialisation runs.
  """
  cfg = config_from_hf(hf_config)
  return cfg, _network(cfg, params_from_hf_state_dict(state_dict, cfg), dtype)


def _network(net_cfg: TransformerConfig, params: dict, dtype=jnp.float32) -> Transformer:
  """A live ``Transformer`` holding its own copy of the converted ``params``."""
  abstract = nnx.eval_shape(lambda: Transformer(net_cfg, nnx.Rngs(0)))
  graphdef, state = nnx.split(abstract)
  nnx.replace_by_pure_dict(state, jax.tree.map(lambda x: jnp.asarray(x, dtype), params))
  return nnx.merge(graphdef, state)


def read_state_dict(path: str) -> dict[str, np.ndarray]:
  """Tensors of a local checkpoint folder: ``*.safetensors`` (sharded or not) or ``*.bin``."""
  files = sorted(os.listdir(path))
  st = [f for f in files if f.endswith(".safetensors")]
  out: dict[str, np.ndarray] = {}
  if st:
    import torch  # noqa: F401  (bf16 tensors need torch)
    from safetensors.torch import load_file
    for f in st:
      out.update({k: to_float32(v) for k, v in load_file(os.path.join(path, f)).items()})
    return out
  bins = [f for f in files if f.endswith(".bin") and f.startswith("pytorch_model")]
  if not bins:
    raise FileNotFoundError(f"no *.safetensors or pytorch_model*.bin in {path}")
  import torch
  for f in bins:
    sd = torch.load(os.path.join(path, f), map_location="cpu", weights_only=True)
    out.update({k: to_float32(v) for k, v in sd.items()})
  return out


def load_pythia(path: str, dtype=jnp.float32) -> tuple[TransformerConfig, Transformer]:
  """A Pythia / GPT-NeoX checkpoint folder on disk -> (our config, ``Transformer``).

  ``path`` is a folder (e.g. ``huggingface-cli download EleutherAI/pythia-160m --local-dir
  pythia-160m`` run beforehand, or a snapshot folder of the HF cache). Nothing is downloaded:
  this reads ``config.json`` and the weight files with plain file I/O.
  """
  return from_hf_state_dict(read_state_dict(path), read_hf_config(path), dtype=dtype)


def read_hf_config(path: str) -> dict:
  """``config.json`` of a checkpoint folder; ValueError unless its model_type is gpt_neox."""
  with open(os.path.join(path, "config.json")) as f:
    hf_config = json.load(f)
  if hf_config.get("model_type", "gpt_neox") != "gpt_neox":
    raise ValueError(f"{path}: model_type={hf_config.get('model_type')!r}, expected 'gpt_neox'")
  return hf_config


class TokenIds(nnx.Variable):
  """Vocabulary ids of the engine's tokens; not a parameter, so never trained."""


class PythiaTask(nnx.Module):
  """A pretrained GPT-NeoX seen through the engine's A + 3 tokens.

  ``token_ids[j]`` is the real vocabulary id of engine token ``j``: letters ``0 .. A-1``, then
  the regular, reverse and neutral prefixes. The forward pass embeds those ids and returns the
  logits of those ids. Without ``full_vocab`` (``normalize="alphabet"``: the engine normalises
  over the first A, the letters) it unembeds with the A + 3 used columns only, never with the
  whole 50k-token vocabulary. With ``full_vocab`` (``normalize="vocab"``, the study's softmax
  over the whole vocabulary) it computes every vocabulary logit and appends one column, the
  logsumexp of all the logits that are not the task's: a softmax over the A + 4 columns then
  gives each task token exactly its probability under the whole vocabulary.
  Phase-2 freezing is the wrapped model's (embedding + first half of the layers learn).
  Implements toy.setup.TrainableModel.
  """

  def __init__(self, net: Transformer, token_ids: Sequence[int], full_vocab: bool = False):
    self.net = net
    self.token_ids = TokenIds(jnp.asarray(np.asarray(token_ids, np.int32)))
    # a vocabulary of only the task's tokens has no other column to stand for
    self.full_vocab = bool(full_vocab) and net.unembed.kernel.shape[1] > len(set(token_ids))

  def __call__(self, tokens_BxT, hooks=None, ablate=None):
    # Transformer.__call__ on the task's ids: the same trunk (hooks, ablations), then the
    # narrow unembedding
    ids = self.token_ids[...]
    x_BxTxD = self.net.trunk(self.net.embed(ids[tokens_BxT]), hooks, ablate)
    if not self.full_vocab:
      return x_BxTxD @ self.unembedding()
    logits_BxTxV = x_BxTxD @ self.net.unembed.kernel[...]
    is_task_V = jnp.zeros(logits_BxTxV.shape[-1], bool).at[ids].set(True)
    others_BxTx1 = jax.nn.logsumexp(jnp.where(is_task_V, -jnp.inf, logits_BxTxV), axis=-1,
                                    keepdims=True)
    return jnp.concatenate([logits_BxTxV[..., ids], others_BxTx1], axis=-1)

  def unembedding(self):
    """The D x (A + 3) columns of the output embedding that the task's tokens use."""
    return self.net.unembed.kernel[...][:, self.token_ids[...]]

  def phase2_frozen(self, path: tuple) -> bool:
    """The wrapped network's, on the path below ``net``."""
    return self.net.phase2_frozen(tuple(path[1:]))


def single_token_ids(tokenizer, words: Sequence[str]) -> list[int]:
  """The vocabulary id of each word, which must be exactly one token (else ValueError)."""
  out = []
  unk = getattr(tokenizer, "unk_token_id", None)
  for w in words:
    ids = tokenizer.encode(w, add_special_tokens=False)
    if len(ids) != 1:
      raise ValueError(f"{w!r} is {len(ids)} tokens ({ids}); pick words that are one token")
    if unk is not None and ids[0] == unk:
      raise ValueError(f"{w!r} is the unknown token ({unk}); pick words in the vocabulary")
    out.append(int(ids[0]))
  if len(set(out)) != len(out):
    raise ValueError(f"two words share a token id: {dict(zip(words, out))}")
  return out


def task_token_ids(tokenizer, alphabet_size: int,
                   prefixes: Sequence[str] = (" regular", " reverse", " neutral")) -> list[int]:
  """Ids for the engine's tokens: letters " a", " b", ... then the three prefix words.

  A choice of this simulator, not necessarily the study's own tokenisation; any single-token
  words will do. ``alphabet_size`` <= 26.
  """
  if not 2 <= alphabet_size <= 26:
    raise ValueError(f"alphabet_size={alphabet_size}: letters ' a'..' z' give 2 .. 26")
  letters = [" " + chr(ord("a") + i) for i in range(alphabet_size)]
  return single_token_ids(tokenizer, letters + list(prefixes))


def pythia_factory(path: str, token_ids: Sequence[int]):
  """A ``make_model`` for ``toy.engine.train`` that starts every seed from the checkpoint.

  The checkpoint is read once per process (``_checkpoint``); each seed gets its own copy of
  the weights. The config's ``normalize`` picks the task's columns (``PythiaTask``).
  """

  def make_model(cfg, data, rngs):
    if cfg.mlp != "gelu" or cfg.times_node:
      raise ValueError(f"mlp={cfg.mlp!r}, times_node={cfg.times_node}: a GPT-NeoX checkpoint has "
                       "GELU MLPs and no times node; these ladder variants are for models "
                       "trained from scratch (use mlp='gelu', times_node=false)")
    if len(token_ids) != cfg.alphabet_size + 3:
      raise ValueError(f"token_ids has {len(token_ids)} ids; the engine uses "
                       f"alphabet_size + 3 = {cfg.alphabet_size + 3}")
    return PythiaTask(_network(*_checkpoint(path)), token_ids, cfg.normalize == "vocab")

  return make_model


# ----------------------------------------------------------------------- Config.init_from

SHAPE_FIELDS = ("n_layers", "d_model", "n_heads")  # what a checkpoint sets in a Config


@functools.lru_cache(maxsize=4)
def checkpoint_token_ids(path: str, alphabet_size: int) -> tuple[int, ...]:
  """``task_token_ids`` through the folder's own tokenizer, read offline (cached per process:
  every seed of a run asks)."""
  from transformers import AutoTokenizer
  try:
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
  except Exception as e:  # transformers raises many kinds; one line names the cause
    raise ValueError(f"no tokenizer could be read from it ({type(e).__name__}: "
                     f"{str(e).splitlines()[0] if str(e) else ''})") from None
  return tuple(task_token_ids(tokenizer, alphabet_size))


@functools.lru_cache(maxsize=1)
def _checkpoint(path: str) -> tuple[TransformerConfig, dict]:
  """(our network config, converted NumPy parameters) of a folder, read once per process."""
  net_cfg = config_from_hf(read_hf_config(path))
  return net_cfg, params_from_hf_state_dict(read_state_dict(path), net_cfg)


def resolve_init_from(cfg: Config, given=frozenset()) -> Config:
  """``cfg`` with its checkpoint's network shape (``SHAPE_FIELDS``), validated, after checking
  the folder without loading the weights: it exists, its config is a GPT-NeoX one we convert, it
  has weight files, and its tokenizer makes every letter and prefix one token. ``given``: the
  fields the user set, which must then agree with the checkpoint. Every failure is one
  ValueError line naming init_from (or alphabet_size)."""
  path = cfg.init_from

  def bad(why):
    return ValueError(f"invalid init_from={path!r}: {why}")

  if not 2 <= cfg.alphabet_size <= 26:
    raise ValueError(f"invalid alphabet_size={cfg.alphabet_size!r}: allowed 2 .. 26 with "
                     "init_from (the letters ' a' .. ' z' are the checkpoint's tokens)")
  if not os.path.isdir(path):
    raise bad("no such folder (a local Hugging Face GPT-NeoX / Pythia folder; nothing is "
              "downloaded)")
  if not os.path.isfile(os.path.join(path, "config.json")):
    raise bad("no config.json in the folder")
  try:
    hf_config = read_hf_config(path)
    net = config_from_hf(hf_config)
  except (ValueError, json.JSONDecodeError) as e:
    raise bad(str(e).removeprefix(f"{path}: ")) from None
  files = os.listdir(path)
  if not any(f.endswith(".safetensors") or (f.startswith("pytorch_model") and f.endswith(".bin"))
             for f in files):
    raise bad("no *.safetensors or pytorch_model*.bin weights in the folder")
  try:
    ids = checkpoint_token_ids(path, cfg.alphabet_size)
  except ValueError as e:
    raise bad(str(e)) from None
  if max(ids) >= net.vocab_size:
    raise bad(f"token id {max(ids)} is past the model's vocab_size={net.vocab_size}")
  shape = {k: getattr(net, k) for k in SHAPE_FIELDS}
  clash = [f"{k}={getattr(cfg, k)}" for k in SHAPE_FIELDS if k in given and getattr(cfg, k)
           != shape[k]]
  if clash:
    raise bad(f"the checkpoint sets {shape}; drop {', '.join(clash)}")
  return validate(cfg.replace(**shape))


def checkpoint_model(cfg: Config) -> PythiaTask:
  """The engine's model for ``cfg.init_from``: the checkpoint (read once per process, each
  call its own copy of the weights) seen through the engine's tokens, normalised as
  ``cfg.normalize`` says. The folder is checked first (``resolve_init_from``), so a bad one
  fails here in the same one line as on the command line."""
  shape = {k: getattr(resolve_init_from(cfg), k) for k in SHAPE_FIELDS}
  if {k: getattr(cfg, k) for k in SHAPE_FIELDS} != shape:
    raise ValueError(f"the config's network shape differs from init_from's {shape}; build the "
                     "config with toy.cli.checked_config or toy.convert.resolve_init_from "
                     "(they read the checkpoint's)")
  net_cfg, params = _checkpoint(cfg.init_from)
  ids = checkpoint_token_ids(cfg.init_from, cfg.alphabet_size)
  return PythiaTask(_network(net_cfg, params), ids, cfg.normalize == "vocab")
