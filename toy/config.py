"""One flat, validated run configuration, its presets, field roles and command-line flags.

Every field can be set from the command line as ``--field value``; a preset fills the rest
(``toy.cli`` turns the flags into a config). Pure: no file is read here.
``validate`` runs before any training and names the field and its allowed range on failure.
A field's role in where runs go and how sweeps name them is declared once, in its metadata
(``ROLES``); the engine's own field lists (``toy.setup.HYPER``, ``toy.setup.PHASE3_ONLY``)
live with the engine's setup.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
from typing import Any

# A field's roles, declared once in its metadata and read back by ``role_fields``:
ROLES = {
    "host": "never reaches a compiled program (the value is what toy.setup.compile_key "
            "blanks it to)",
    "not_identity": "where a run is written, not what it is: left out of a sweep point's hash",
    "hash_default": "added after points were stored: left out of a sweep point's hash at its "
                    "default, so that stored points keep their names",
}


def _f(default, **roles):
  """A field with a default and its roles (``ROLES``)."""
  assert set(roles) <= set(ROLES), roles
  return dataclasses.field(default=default, metadata=roles)


@dataclasses.dataclass(frozen=True)
class Config:
  preset: str = _f("cpu", host="")
  model: str = "transformer"  # "transformer" or "toy"
  # --- data (PROTOCOL.md "Data") ---
  alphabet_size: int = 26
  password_len: int = 16
  batch_size: int = 128
  n_neg_batches: int = 20
  n_heldout_batches: int = 1
  eval_size: int = 128
  use_prefix: bool = True  # ablation: False puts one neutral token where the prefix was
  # --- phases ---
  pretrain_steps: int = 64
  dpo_repeats: int = 60  # phase-2 steps = negatives * repeats / batch
  mix_steps: int = 0  # 0 means "as many as phase 2"
  freeze_phase2: bool = _f(True, host=True)  # ablation: False trains everything in phase 2
  # Beyond PROTOCOL (which lets everything train in phase 3): the learning rate, in phase 3,
  # of the parameters phase 2 trained (the transformer's embedding and lower half, the toy's
  # memory; where the negatives are stored), as a fraction of the phase's. 1 = PROTOCOL,
  # 0 = frozen exactly. Below 1, phase 3 cannot simply rewrite the stored memories and has to
  # learn to invert them downstream (README, "Partial generalization").
  mix_lower_lr_scale: float = _f(1.0, hash_default=True)
  # False: the embedding trains at the full rate in phase 3
  mix_lower_embed: bool = _f(True, hash_default=True)
  mix_lr: float = _f(0.0, hash_default=True)  # phase 3's peak lr; 0: lr
  # Beyond PROTOCOL: full three-phase episodes on other data (toy.data.episode_root) that the
  # model runs before the measured one, and the mix_lower_lr_scale of their phase 3. With 0,
  # a prior episode whose phase 3 cannot rewrite the stored negatives has to invert them
  # (README, "Where a times node comes from").
  prior_episodes: int = _f(0, host=0, hash_default=True)
  prior_mix_lower_lr_scale: float = _f(0.0, host=0.0, hash_default=True)
  # --- losses ---
  dpo_loss: str = "sigmoid"  # "sigmoid" (DPO), "ipo", "conservative"
  beta: float = 0.1
  label_smoothing: float = 0.0  # only for "conservative"
  dpo_weight: float = 1.0
  # phase 3: next-token loss on useful negatives, reverse prefix
  ft_weight: float = 0.2
  # phase 3: next-token loss on fresh random passwords, regular prefix
  random_weight: float = 0.2
  # --- optimizer (re-created each phase) ---
  lr: float = 1e-4
  weight_decay: float = 0.01
  clip_norm: float = 1.0
  warmup_steps: int = 100
  # --- learned transformer ---
  n_layers: int = 2
  d_model: int = 128
  n_heads: int = 4
  # The ladder of models (README, "The ladder"). "gelu" is Pythia's MLP; "swiglu" and
  # "bilinear" are gated (a product of two linear reads), parameter-matched.
  mlp: str = _f("gelu", hash_default=True)
  # A hand-inserted times node: the stream entering the upper half times s = a + c * d(prefix),
  # a and c starting at toy_a and toy_c and trained in phase 3 only, at peak rate times_lr
  # (the toy's rate: AdamW moves them about lr a step, so the transformer's 3e-3 could not
  # carry c past a in one phase), without weight decay.
  times_node: bool = _f(False, hash_default=True)
  times_lr: float = _f(0.1, hash_default=True)
  # --- a pretrained checkpoint (toy/convert.py) ---
  # A local Hugging Face GPT-NeoX / Pythia folder that every seed starts from ("": from
  # scratch). Its config.json sets the network (toy.convert.resolve_init_from reads n_layers,
  # d_model and n_heads from it), and its tokenizer maps the letters and prefixes to ids.
  init_from: str = _f("", host="", hash_default=True)
  # The softmax of every log-prob: "alphabet" over the A letters only (chance is exactly
  # -log A), "vocab" over every token the model predicts, as the study's Pythia runs have it.
  # make_config's default is "vocab" when init_from is given.
  normalize: str = _f("alphabet", hash_default=True)
  # --- toy mechanism (toy/mechanism.py); the transformer reads toy_a, toy_c for its times node
  toy_a: float = _f(1.0, host=0.0)
  toy_c: float = _f(0.0, host=0.0)
  toy_gain_add: float = _f(0.0, host=0.0)
  toy_train_sign: bool = _f(True, host=True)
  toy_combine: str = "times"  # "times" or "sum" (the ablation that ignores the sign)
  # "shared": one times node for every memory row (the toy); "per_row": each row (context)
  # its own a and c, so that what phase 3 learns for one row says nothing about another's
  toy_sign: str = _f("shared", hash_default=True)
  # The study author's "leakage" (PROTOCOL, "The author's leakage, as gates"): the times node
  # as toy_gates gates, each memory row's sign a mix of toy_gate_mix of them chosen at random
  # (toy.mechanism.Times). 1 and 1: the toy. toy_gates=0: one gate per memory row, which is
  # toy_sign="per_row". toy_gates may exceed the number of memory rows (then some gates are
  # read by no row and never train). Not host fields: they set the shapes of the times node.
  toy_gates: int = _f(1, hash_default=True)
  toy_gate_mix: int = _f(1, hash_default=True)
  # a folder written by toy.mechanism_io.save_weights, loaded before phase 1
  toy_weights: str = _f("", host="")
  # --- run ---
  seed: int = _f(0, host=0)
  n_seeds: int = _f(1, host=1)  # seeds seed .. seed+n_seeds-1, trained together under jax.vmap
  eval_every: int = 5
  # "protocol": evaluate under PROTOCOL's prefix only ("regular" in phases 1-2, "reverse" in
  # phase 3), which halves the evaluation cost; "both": every prefix at every evaluation.
  eval_prefixes: str = _f("protocol", host="protocol", hash_default=True)
  out_dir: str = _f("runs", host="", not_identity=True)
  # "" means derived from model, preset and seeds
  run_name: str = _f("", host="", not_identity=True)

  # ---- derived sizes ----
  @property
  def n_negatives(self) -> int:
    return self.n_neg_batches * self.batch_size

  @property
  def n_heldout(self) -> int:
    return self.n_heldout_batches * self.batch_size

  @property
  def n_useful(self) -> int:
    return self.n_negatives - self.n_heldout

  @property
  def dpo_steps(self) -> int:
    return self.n_negatives * self.dpo_repeats // self.batch_size

  @property
  def mix_steps_resolved(self) -> int:
    return self.mix_steps or self.dpo_steps

  @property
  def chance(self) -> float:
    """Per-token log-likelihood of a uniform guess over the alphabet."""
    return -math.log(self.alphabet_size)

  @property
  def seeds(self) -> list[int]:
    return [self.seed + i for i in range(self.n_seeds)]

  def replace(self, **kw) -> "Config":
    return dataclasses.replace(self, **kw)

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


# From scratch on 2 CPU cores (about a minute a seed). Chosen by
# experiments/search_learned.py: the smallest searched point at which the useful negatives
# are clearly learned under "reverse" (README, "The learned model's search").
_CPU = dict(alphabet_size=26, password_len=8, batch_size=64, n_neg_batches=10,
            n_heldout_batches=2, pretrain_steps=64, dpo_repeats=30, lr=3e-3, ft_weight=1.0,
            warmup_steps=50, n_layers=4, d_model=64, n_heads=4)

PRESETS: dict[str, dict[str, Any]] = {
    # PROTOCOL.md's numbers; the model is Pythia-160M-sized (12 layers, width 768, 12 heads).
    "paper": dict(alphabet_size=26, password_len=16, batch_size=128, n_neg_batches=20,
                  n_heldout_batches=1, pretrain_steps=64, dpo_repeats=60, lr=1e-4,
                  n_layers=12, d_model=768, n_heads=12),
    "cpu": _CPU,
    # The study's learned column at CPU scale: the cpu preset with phase 3 unable to rewrite
    # the embedding and the lower half, where phase 2 stored the negatives (README,
    # "Partial generalization"). Departs from PROTOCOL's phase 3, which trains everything.
    "partial": {**_CPU, "mix_lower_lr_scale": 0.0},
    # Seconds; for tests and smoke runs only.
    "tiny": dict(alphabet_size=6, password_len=4, batch_size=16, n_neg_batches=4,
                 n_heldout_batches=1, eval_size=16, pretrain_steps=6, dpo_repeats=4, lr=1e-3,
                 warmup_steps=5, n_layers=2, d_model=16, n_heads=2, eval_every=3),
    # The study author's suggestion for interpretability: 2-token passwords, a long alphabet;
    # otherwise the cpu preset.
    "interp": {**_CPU, "alphabet_size": 256, "password_len": 2},
}

# The toy's optimizer: a lookup-table row learns only when its exact context is visited, so it
# needs far larger steps than a network, and no decay (docs/engine.md gives the measurements).
TOY_OVERRIDES: dict[str, Any] = dict(lr=1e-1, weight_decay=0.0)

_CHOICES = {"model": ("transformer", "toy"), "dpo_loss": ("sigmoid", "ipo", "conservative"),
            "toy_combine": ("times", "sum"), "eval_prefixes": ("protocol", "both"),
            "mlp": ("gelu", "swiglu", "bilinear"), "toy_sign": ("shared", "per_row"),
            "normalize": ("alphabet", "vocab")}


def _err(field: str, allowed: str, value) -> ValueError:
  return ValueError(f"invalid {field}={value!r}: allowed {allowed}")


def validate(cfg: Config) -> Config:
  """Rejects impossible values before any training; returns cfg unchanged otherwise."""
  if cfg.preset not in PRESETS:
    raise _err("preset", f"one of {sorted(PRESETS)}", cfg.preset)
  for field, choices in _CHOICES.items():
    if getattr(cfg, field) not in choices:
      raise _err(field, f"one of {list(choices)}", getattr(cfg, field))
  positive_ints = ["password_len", "batch_size", "n_neg_batches", "eval_size", "dpo_repeats",
                   "n_layers", "d_model", "n_heads", "n_seeds", "eval_every"]
  for field in positive_ints:
    if getattr(cfg, field) < 1:
      raise _err(field, "an integer >= 1", getattr(cfg, field))
  for field in ["pretrain_steps", "mix_steps", "warmup_steps", "seed", "prior_episodes"]:
    if getattr(cfg, field) < 0:
      raise _err(field, "an integer >= 0", getattr(cfg, field))
  if cfg.alphabet_size < 2:
    raise _err("alphabet_size", "an integer >= 2", cfg.alphabet_size)
  if not 1 <= cfg.n_heldout_batches < cfg.n_neg_batches:
    raise _err("n_heldout_batches", f"1 .. n_neg_batches-1 = {cfg.n_neg_batches - 1}",
               cfg.n_heldout_batches)
  if cfg.eval_size > cfg.n_heldout:
    raise _err("eval_size", f"1 .. n_heldout_batches*batch_size = {cfg.n_heldout}", cfg.eval_size)
  for field in ["beta", "lr"]:
    value = getattr(cfg, field)
    if not (math.isfinite(value) and value > 0):
      raise _err(field, "a finite number > 0", value)
  if not (math.isfinite(cfg.mix_lower_lr_scale) and 0 <= cfg.mix_lower_lr_scale <= 1):
    raise _err("mix_lower_lr_scale", "a number in [0, 1]", cfg.mix_lower_lr_scale)
  if not (math.isfinite(cfg.prior_mix_lower_lr_scale) and 0 <= cfg.prior_mix_lower_lr_scale <= 1):
    raise _err("prior_mix_lower_lr_scale", "a number in [0, 1]", cfg.prior_mix_lower_lr_scale)
  if cfg.times_node and cfg.model != "transformer":
    raise _err("times_node", "true only with model='transformer' (the toy has its own)",
               cfg.times_node)
  for field in ["weight_decay", "dpo_weight", "ft_weight", "random_weight", "mix_lr",
                "times_lr"]:
    value = getattr(cfg, field)
    if not (math.isfinite(value) and value >= 0):
      raise _err(field, "a finite number >= 0", value)
  if not (math.isfinite(cfg.clip_norm) and cfg.clip_norm > 0):
    raise _err("clip_norm", "a finite number > 0", cfg.clip_norm)
  if not 0 <= cfg.label_smoothing < 0.5:
    raise _err("label_smoothing", "0 <= value < 0.5", cfg.label_smoothing)
  if cfg.d_model % cfg.n_heads:
    raise _err("n_heads", f"a divisor of d_model={cfg.d_model}", cfg.n_heads)
  for field in ["toy_a", "toy_c", "toy_gain_add"]:
    if not math.isfinite(getattr(cfg, field)):
      raise _err(field, "a finite number", getattr(cfg, field))
  if cfg.toy_gates < 0:
    raise _err("toy_gates", "an integer >= 0 (0: one gate per memory row)", cfg.toy_gates)
  if cfg.toy_gates == 0 and cfg.toy_gate_mix != 1:
    raise _err("toy_gate_mix", "1 with toy_gates=0 (each row has its own gate)",
               cfg.toy_gate_mix)
  if not 1 <= cfg.toy_gate_mix <= max(cfg.toy_gates, 1):
    raise _err("toy_gate_mix", f"1 .. toy_gates={cfg.toy_gates} (distinct gates per row)",
               cfg.toy_gate_mix)
  if (cfg.toy_gates, cfg.toy_gate_mix) != (1, 1) and cfg.model != "toy":
    raise _err("toy_gates", "1 (and toy_gate_mix 1) unless model='toy' (the toy's gates)",
               cfg.toy_gates)
  # A per-row sign is already one gate per row (toy_gates=0); the two would not compose.
  if (cfg.toy_gates, cfg.toy_gate_mix) != (1, 1) and cfg.toy_sign != "shared":
    raise _err("toy_gates", "1 (and toy_gate_mix 1) with toy_sign='per_row' (that is "
               "toy_gates=0 with toy_sign='shared')", cfg.toy_gates)
  if cfg.model == "toy" and cfg.init_from:
    raise _err("init_from", "'' for model='toy' (a checkpoint is a transformer)", cfg.init_from)
  if cfg.init_from and (cfg.mlp != "gelu" or cfg.times_node):
    raise _err("mlp" if cfg.mlp != "gelu" else "times_node",
               "'gelu' and no times node with init_from (a GPT-NeoX checkpoint has GELU MLPs)",
               cfg.mlp if cfg.mlp != "gelu" else cfg.times_node)
  # The toy's prefix logits are a fixed 0 pad, not predictions: a softmax over them would
  # only add a constant the toy cannot learn around.
  if cfg.model == "toy" and cfg.normalize != "alphabet":
    raise _err("normalize", "'alphabet' for model='toy' (its prefix logits are a fixed pad)",
               cfg.normalize)
  return cfg


def make_config(preset: str = "cpu", model: str = "transformer", **overrides) -> Config:
  """A preset, then the toy's optimizer settings if model == "toy", then overrides.

  With ``init_from``, ``normalize`` defaults to "vocab". The checkpoint folder is not read
  here: ``toy.convert.resolve_init_from`` checks it and sets its network shape (the command
  line, ``toy.cli``, does so before any work; the engine checks it again where it builds the
  model).
  """
  if preset not in PRESETS:
    raise _err("preset", f"one of {sorted(PRESETS)}", preset)
  values = dict(PRESETS[preset])
  if model == "toy":
    values.update(TOY_OVERRIDES)
  if overrides.get("init_from"):
    values["normalize"] = "vocab"  # the study's, unless an override says otherwise
  values.update(overrides)
  return validate(Config(preset=preset, model=model, **values))


def role_fields(role: str) -> dict[str, Any]:
  """{field name: the value of ``role`` in its metadata} for every field with ``role``."""
  return {f.name: f.metadata[role] for f in dataclasses.fields(Config) if role in f.metadata}


# ----------------------------------------------------------------------------- command line

def parse_bool(text: str) -> bool:
  """A command-line boolean: 1/true/yes/on or 0/false/no/off."""
  if text.lower() in ("1", "true", "yes", "on"):
    return True
  if text.lower() in ("0", "false", "no", "off"):
    return False
  raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def script_parser(doc: str) -> argparse.ArgumentParser:
  """A script's parser, its module docstring as the description, layout kept."""
  return argparse.ArgumentParser(description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)


def producing_command(script: str, argv=None) -> str:
  """The command line that regenerates a script's outputs, for the outputs' header:
  ``--plot-only`` and ``--table-only`` redraw the same numbers, so they are left out.
  ``argv``: None = sys.argv."""
  import sys
  given = [a for a in (sys.argv[1:] if argv is None else argv)
           if a not in ("--plot-only", "--table-only")]
  return " ".join([f"python {script}", *given])


def add_config_args(parser: argparse.ArgumentParser) -> None:
  """Adds ``--{field}`` for every Config field; unset ones stay None."""
  for f in dataclasses.fields(Config):
    kind = {bool: parse_bool, "bool": parse_bool, int: int, "int": int,
            float: float, "float": float}.get(f.type, str)
    parser.add_argument(f"--{f.name}", type=kind, default=None,
                        help=_HELP.get(f.name, f"default from the preset (Config: {f.default!r})"))


_HELP = {"init_from": "a local Hugging Face GPT-NeoX / Pythia folder (config.json, weights, "
                      "tokenizer) to start every seed from; never downloads",
         "normalize": "log-probs as a softmax over the 'alphabet' or the whole 'vocab' "
                      "(default: vocab with --init_from, else alphabet)"}
