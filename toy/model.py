"""A small GPT-NeoX (Pythia-family) decoder, readable in one sitting.

Block: LayerNorm -> attention and LayerNorm -> MLP computed *in parallel* from the same
residual stream (``x + attn(ln1(x)) + mlp(ln2(x))``), rotary position embeddings on a
fraction of each head, untied input and output embeddings. The fused ``qkv`` weight keeps
Hugging Face's per-head layout ``[q_h | k_h | v_h]`` so that a GPT-NeoX state dict maps onto
it one tensor at a time (see ``toy.hf_params``). Two variants for the ladder of models (README,
"The ladder"): gated MLPs (``mlp``) and a hand-inserted times node (``times_node``).

Shape suffixes: B batch, T tokens, D width, H heads, K head size, F MLP width, V vocab.

Activations are reachable by stable names, TransformerLens-style: ``model(tokens, hooks=cache)``
fills the dict ``cache`` (names and shapes: ``toy.inspect.HOOKS["transformer"]``;
``toy.inspect.run_with_cache`` returns them). With ``hooks=None`` nothing is stored and the
computation is exactly the one without hooks.

Interventions are arguments of the forward pass: ``ablate`` maps a component (``"embed"``,
``"blocks.{i}.attn"``, ``"blocks.{i}.mlp"``) to ``True`` (zero its contribution to the residual
stream), an array (replace its output by that array, broadcast to B x T x D: activation
patching) or a function of its output (returning the new output). The hooks record the output
after the intervention.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  vocab_size: int
  n_layers: int = 2
  d_model: int = 128
  n_heads: int = 4
  mlp_ratio: int = 4
  rotary_pct: float = 0.25  # Pythia's value
  rotary_base: float = 10000.0
  ln_eps: float = 1e-5
  mlp: str = "gelu"  # "gelu" (Pythia's), "swiglu" or "bilinear" (gated, hidden width 8/3 D)
  # (regular token, reverse token): insert a times node that multiplies the residual stream
  # entering the upper half by s = a + c * d(prefix); None: no times node (the plain model)
  times_node: tuple[int, int] | None = None
  times_a: float = 1.0
  times_c: float = 0.0
  times_train: bool = True  # False: a and c stay as set (then c = 0 is the plain model)


def intervene(out, how):
  """One component's output after an ``ablate`` entry: None/False keep it, True zeroes it, a
  function maps it, an array replaces it (broadcast to its shape)."""
  if how is None or isinstance(how, (bool, np.bool_)):
    return jnp.zeros_like(out) if how else out
  if callable(how):
    return how(out)
  return jnp.broadcast_to(jnp.asarray(how, out.dtype), out.shape)


def layer_norm_scale(x_BxTxD, eps: float):
  """sqrt(var + eps) over the last axis, the divisor of ``nnx.LayerNorm`` (same formula: the
  fast variance E[x^2] - E[x]^2, clipped at 0)."""
  mean, mean_sq = x_BxTxD.mean(-1, keepdims=True), jnp.square(x_BxTxD).mean(-1, keepdims=True)
  return jnp.sqrt(jnp.maximum(0.0, mean_sq - jnp.square(mean)) + eps)


def rotary_tables(T: int, rot_dim: int, base: float):
  inv_freq = 1.0 / (base ** (jnp.arange(0, rot_dim, 2, dtype=jnp.float32) / rot_dim))
  freqs_TxR2 = jnp.arange(T, dtype=jnp.float32)[:, None] * inv_freq[None, :]
  emb_TxR = jnp.concatenate([freqs_TxR2, freqs_TxR2], axis=-1)
  return jnp.cos(emb_TxR), jnp.sin(emb_TxR)


def apply_rotary(x_BxTxHxK, cos_TxR, sin_TxR):
  R = cos_TxR.shape[-1]
  rot, keep = x_BxTxHxK[..., :R], x_BxTxHxK[..., R:]
  x1, x2 = rot[..., : R // 2], rot[..., R // 2:]
  rotated = jnp.concatenate([-x2, x1], axis=-1)
  cos, sin = cos_TxR[None, :, None, :], sin_TxR[None, :, None, :]
  return jnp.concatenate([rot * cos + rotated * sin, keep], axis=-1)


class Attention(nnx.Module):
  def __init__(self, cfg: TransformerConfig, rngs: nnx.Rngs):
    self.n_heads, self.head_dim = cfg.n_heads, cfg.d_model // cfg.n_heads
    self.rot_dim = int(self.head_dim * cfg.rotary_pct) // 2 * 2
    self.rotary_base = cfg.rotary_base
    self.qkv = nnx.Linear(cfg.d_model, 3 * cfg.d_model, rngs=rngs)
    self.dense = nnx.Linear(cfg.d_model, cfg.d_model, rngs=rngs)

  def __call__(self, x_BxTxD, hooks=None, name=""):
    B, T, D = x_BxTxD.shape
    qkv_BxTxHx3K = self.qkv(x_BxTxD).reshape(B, T, self.n_heads, 3 * self.head_dim)
    q_BxTxHxK, k_BxTxHxK, v_BxTxHxK = jnp.split(qkv_BxTxHx3K, 3, axis=-1)
    if self.rot_dim:
      cos, sin = rotary_tables(T, self.rot_dim, self.rotary_base)
      q_BxTxHxK, k_BxTxHxK = apply_rotary(q_BxTxHxK, cos, sin), apply_rotary(k_BxTxHxK, cos, sin)
    scores_BxHxTxT = jnp.einsum("bqhk,bshk->bhqs", q_BxTxHxK, k_BxTxHxK) / jnp.sqrt(self.head_dim)
    causal_TxT = jnp.tril(jnp.ones((T, T), dtype=bool))
    scores_BxHxTxT = jnp.where(causal_TxT, scores_BxHxTxT, jnp.finfo(scores_BxHxTxT.dtype).min)
    pattern_BxHxTxT = jax.nn.softmax(scores_BxHxTxT, axis=-1)
    if hooks is not None:
      hooks[f"{name}.hook_pattern"] = pattern_BxHxTxT
    z_BxTxHxK = jnp.einsum("bhqs,bshk->bqhk", pattern_BxHxTxT, v_BxTxHxK)
    return self.dense(z_BxTxHxK.reshape(B, T, D))


MLP_KINDS = ("gelu", "swiglu", "bilinear")


def mlp_width(cfg: TransformerConfig) -> int:
  """Hidden width F: mlp_ratio * D for GELU; for the gated kinds, which have three matrices
  instead of two, round(2/3 * mlp_ratio * D) (8/3 D), so that the weight counts match."""
  if cfg.mlp == "gelu":
    return cfg.mlp_ratio * cfg.d_model
  return round(2 * cfg.mlp_ratio * cfg.d_model / 3)


class MLP(nnx.Module):
  """gelu: down(gelu(up x)); swiglu: down(silu(gate x) * up x); bilinear: down(gate x * up x).

  The gated kinds multiply two linear reads of the stream: a unit that can compute "sign times
  memory" itself (README, "The ladder").
  """

  def __init__(self, cfg: TransformerConfig, rngs: nnx.Rngs):
    if cfg.mlp not in MLP_KINDS:
      raise ValueError(f"invalid mlp={cfg.mlp!r}: allowed one of {list(MLP_KINDS)}")
    self.kind, F = cfg.mlp, mlp_width(cfg)
    self.up = nnx.Linear(cfg.d_model, F, rngs=rngs)
    self.down = nnx.Linear(F, cfg.d_model, rngs=rngs)
    if self.kind != "gelu":  # created last: GELU models draw the same weights as before
      self.gate = nnx.Linear(cfg.d_model, F, rngs=rngs)

  def __call__(self, x_BxTxD, hooks=None, name=""):
    if self.kind == "gelu":
      post_BxTxF = jax.nn.gelu(self.up(x_BxTxD), approximate=False)
    else:
      gate_BxTxF = self.gate(x_BxTxD)
      if self.kind == "swiglu":
        gate_BxTxF = jax.nn.silu(gate_BxTxF)
      post_BxTxF = gate_BxTxF * self.up(x_BxTxD)
    if hooks is not None:
      hooks[f"{name}.hook_post"] = post_BxTxF
    return self.down(post_BxTxF)


class Block(nnx.Module):
  def __init__(self, cfg: TransformerConfig, rngs: nnx.Rngs):
    self.ln1 = nnx.LayerNorm(cfg.d_model, epsilon=cfg.ln_eps, rngs=rngs)
    self.ln2 = nnx.LayerNorm(cfg.d_model, epsilon=cfg.ln_eps, rngs=rngs)
    self.attn = Attention(cfg, rngs)
    self.mlp = MLP(cfg, rngs)

  def __call__(self, x_BxTxD, hooks=None, ablate=None, name=""):
    ablate = ablate or {}
    if hooks is not None:
      hooks[f"{name}.hook_resid_pre"] = x_BxTxD
    attn_out = self.attn(self.ln1(x_BxTxD), hooks, f"{name}.attn")
    mlp_out = self.mlp(self.ln2(x_BxTxD), hooks, f"{name}.mlp")
    attn_out = intervene(attn_out, ablate.get(f"{name}.attn"))
    mlp_out = intervene(mlp_out, ablate.get(f"{name}.mlp"))
    if hooks is not None:
      hooks[f"{name}.hook_attn_out"], hooks[f"{name}.hook_mlp_out"] = attn_out, mlp_out
    return x_BxTxD + attn_out + mlp_out


class Transformer(nnx.Module):
  """The learned model; implements toy.setup.TrainableModel and its OptionalMembers
  ``frozen_in`` and ``own_rate``."""

  def __init__(self, cfg: TransformerConfig, rngs: nnx.Rngs):
    if cfg.d_model % cfg.n_heads:
      raise ValueError(f"d_model={cfg.d_model} must be divisible by n_heads={cfg.n_heads}")
    self.cfg = cfg
    self.embed = nnx.Embed(cfg.vocab_size, cfg.d_model, rngs=rngs)
    self.blocks = nnx.List([Block(cfg, rngs) for _ in range(cfg.n_layers)])
    self.final_ln = nnx.LayerNorm(cfg.d_model, epsilon=cfg.ln_eps, rngs=rngs)
    self.unembed = nnx.Linear(cfg.d_model, cfg.vocab_size, use_bias=False, rngs=rngs)
    if cfg.times_node is not None:
      self.times = TimesNode(cfg)

  def __call__(self, tokens_BxT, hooks=None, ablate=None):
    # The times node reads the prefix from the tokens, so it needs them beside the embedding.
    s_B = self.times.sign(tokens_BxT[:, 0], hooks) if self.cfg.times_node is not None else None
    return self.unembed(self.trunk(self.embed(tokens_BxT), hooks, ablate, s_B))

  def trunk(self, x_BxTxD, hooks=None, ablate=None, times_s_B=None):
    """Embedded tokens -> the final LayerNorm's output: the blocks and the final LayerNorm,
    with their hooks and interventions (shared with ``toy.convert.PythiaTask``).
    ``times_s_B``: the times node's sign, multiplying the stream entering the upper half."""
    x_BxTxD = intervene(x_BxTxD, (ablate or {}).get("embed"))
    if hooks is not None:
      hooks["hook_embed"] = x_BxTxD
    for i, block in enumerate(self.blocks):
      if times_s_B is not None and i == self.cfg.n_layers // 2:
        x_BxTxD = x_BxTxD * times_s_B[:, None, None]
      x_BxTxD = block(x_BxTxD, hooks, ablate, f"blocks.{i}")
      if hooks is not None:
        hooks[f"blocks.{i}.hook_resid_post"] = x_BxTxD
    if hooks is not None:
      hooks["ln_final.hook_scale"] = layer_norm_scale(x_BxTxD, self.cfg.ln_eps)
    return self.final_ln(x_BxTxD)

  def unembedding(self):
    """The D x V output matrix of the logits this module returns."""
    return self.unembed.kernel[...]

  def phase2_frozen(self, path: tuple) -> bool:
    """PROTOCOL phase 2: only the input embedding and the first half of the layers learn.
    The times node, like the toy's, sits on the output side of what phase 2 writes."""
    if path[0] == "embed":
      return False
    if path[0] == "blocks":
      return int(path[1]) >= self.cfg.n_layers // 2
    return True  # final LayerNorm and unembedding sit on the output side, with the frozen half

  def frozen_in(self, phase: str, path: tuple) -> bool:
    """The times node learns in phase 3 only, as the toy's does (``ToyMechanism.frozen_in``)."""
    return path[0] == "times" and (phase == "pretrain" or not self.cfg.times_train)

  def own_rate(self, path: tuple) -> bool:
    """Leaves trained by their own optimizer at ``Config.times_lr`` (``toy.optim``)."""
    return path[0] == "times"


class TimesNode(nnx.Module):
  """The toy's times node inside the transformer: s(prefix) = a + c * d, d = +1 "regular",
  -1 "reverse", 0 otherwise, multiplying the residual stream where the upper half reads it,
  i.e. the embedding's and the lower half's contributions (where phase 2 stores the
  negatives). At a = 1, c = 0 it multiplies by exactly 1: the plain transformer."""

  def __init__(self, cfg: TransformerConfig):
    self.regular, self.reverse = cfg.times_node
    self.a = nnx.Param(jnp.asarray(cfg.times_a, jnp.float32))
    self.c = nnx.Param(jnp.asarray(cfg.times_c, jnp.float32))

  def sign(self, first_token_B, hooks=None):
    d_B = ((first_token_B == self.regular).astype(jnp.float32)
           - (first_token_B == self.reverse).astype(jnp.float32))
    s_B = self.a[...] + self.c[...] * d_B
    if hooks is not None:
      hooks["times.hook_s"] = s_B
    return s_B


# ----------------------------------------------------------------------------- parameter names

def path_names(path) -> tuple:
  """A parameter's tree path as plain names, e.g. ('blocks', 0, 'attn', 'qkv', 'kernel')."""
  return tuple(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))) for k in path)


def param_key(path) -> str:
  """A parameter's name in params.npz, e.g. 'blocks/0/attn/qkv/kernel'."""
  return "/".join(map(str, path_names(path)))
