"""A small GPT-NeoX (Pythia-family) decoder, readable in one sitting.

Block: LayerNorm -> attention and LayerNorm -> MLP computed *in parallel* from the same
residual stream (``x + attn(ln1(x)) + mlp(ln2(x))``), rotary position embeddings on a
fraction of each head, untied input and output embeddings. The fused ``qkv`` weight keeps
Hugging Face's per-head layout ``[q_h | k_h | v_h]`` so that a GPT-NeoX state dict maps onto
it one tensor at a time (see ``toy.convert``).

Shape suffixes: B batch, T tokens, D width, H heads, K head size, F MLP width, V vocab.

Activations are reachable by stable names, TransformerLens-style: ``model(tokens, hooks=cache)``
fills ``cache`` with ``blocks.{i}.attn.hook_pattern``, ``blocks.{i}.hook_resid_post`` etc.
Ablations are arguments of the forward pass: ``ablate={"blocks.0.attn": True}`` zeroes that
sub-layer's contribution to the residual stream.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
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


class MLP(nnx.Module):
  def __init__(self, cfg: TransformerConfig, rngs: nnx.Rngs):
    self.up = nnx.Linear(cfg.d_model, cfg.mlp_ratio * cfg.d_model, rngs=rngs)
    self.down = nnx.Linear(cfg.mlp_ratio * cfg.d_model, cfg.d_model, rngs=rngs)

  def __call__(self, x_BxTxD):
    return self.down(jax.nn.gelu(self.up(x_BxTxD), approximate=False))


class Block(nnx.Module):
  def __init__(self, cfg: TransformerConfig, rngs: nnx.Rngs):
    self.ln1 = nnx.LayerNorm(cfg.d_model, epsilon=cfg.ln_eps, rngs=rngs)
    self.ln2 = nnx.LayerNorm(cfg.d_model, epsilon=cfg.ln_eps, rngs=rngs)
    self.attn = Attention(cfg, rngs)
    self.mlp = MLP(cfg, rngs)

  def __call__(self, x_BxTxD, hooks=None, ablate=None, name=""):
    ablate = ablate or {}
    attn_out = self.attn(self.ln1(x_BxTxD), hooks, f"{name}.attn")
    mlp_out = self.mlp(self.ln2(x_BxTxD))
    if ablate.get(f"{name}.attn"):
      attn_out = jnp.zeros_like(attn_out)
    if ablate.get(f"{name}.mlp"):
      mlp_out = jnp.zeros_like(mlp_out)
    if hooks is not None:
      hooks[f"{name}.hook_attn_out"], hooks[f"{name}.hook_mlp_out"] = attn_out, mlp_out
    return x_BxTxD + attn_out + mlp_out


class Transformer(nnx.Module):
  def __init__(self, cfg: TransformerConfig, rngs: nnx.Rngs):
    if cfg.d_model % cfg.n_heads:
      raise ValueError(f"d_model={cfg.d_model} must be divisible by n_heads={cfg.n_heads}")
    self.cfg = cfg
    self.embed = nnx.Embed(cfg.vocab_size, cfg.d_model, rngs=rngs)
    self.blocks = nnx.List([Block(cfg, rngs) for _ in range(cfg.n_layers)])
    self.final_ln = nnx.LayerNorm(cfg.d_model, epsilon=cfg.ln_eps, rngs=rngs)
    self.unembed = nnx.Linear(cfg.d_model, cfg.vocab_size, use_bias=False, rngs=rngs)

  def __call__(self, tokens_BxT, hooks=None, ablate=None):
    x_BxTxD = self.embed(tokens_BxT)
    for i, block in enumerate(self.blocks):
      x_BxTxD = block(x_BxTxD, hooks, ablate, f"blocks.{i}")
      if hooks is not None:
        hooks[f"blocks.{i}.hook_resid_post"] = x_BxTxD
    return self.unembed(self.final_ln(x_BxTxD))

  def phase2_frozen(self, path: tuple) -> bool:
    """PROTOCOL phase 2: only the input embedding and the first half of the layers learn."""
    if path[0] == "embed":
      return False
    if path[0] == "blocks":
      return int(path[1]) >= self.cfg.n_layers // 2
    return True  # final LayerNorm and unembedding sit on the output side, with the frozen half
