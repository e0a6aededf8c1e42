"""Hugging Face GPT-NeoX (Pythia) parameters -> ``toy.model.Transformer``'s, as pure functions
over dicts and arrays: no files, no tokenizer (``toy.convert`` reads checkpoint folders).

``config_from_hf`` reads the network's shape from a ``GPTNeoXConfig`` (or its ``config.json``);
``params_from_hf_state_dict`` maps a ``GPTNeoXForCausalLM`` state dict onto our parameter tree,
one tensor at a time: torch ``nn.Linear`` weights are (out, in) and ``nnx.Linear`` kernels are
(in, out), so every linear weight is transposed; the fused ``query_key_value`` keeps HF's
per-head ``[q_h | k_h | v_h]`` layout, which ``toy.model.Attention`` reads the same way.
Checked against ``transformers`` logits on random weights (tests/test_convert.py), not on a
real checkpoint.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from toy.model import TransformerConfig


def to_float32(x) -> np.ndarray:
  """A torch tensor (any dtype, any device) or array-like -> float32 NumPy."""
  if hasattr(x, "detach"):
    x = x.detach().cpu()
    if str(x.dtype) in ("torch.bfloat16", "torch.float16"):
      x = x.float()
    x = x.numpy()
  return np.asarray(x, dtype=np.float32)


def _get(cfg: Any, name: str, default=None):
  if isinstance(cfg, Mapping):
    return cfg.get(name, default)
  return getattr(cfg, name, default)


def config_from_hf(hf_config) -> TransformerConfig:
  """Our config for a ``GPTNeoXConfig`` (or its ``config.json`` as a dict).

  Handles transformers 5 (``rope_parameters = {"rope_theta", "partial_rotary_factor"}``) and
  older files (``rotary_pct``, ``rotary_emb_base``). Raises on variants our block does not
  implement rather than converting them silently wrong.
  """
  d, h = _get(hf_config, "hidden_size"), _get(hf_config, "num_attention_heads")
  rope = _get(hf_config, "rope_parameters") or _get(hf_config, "rope_scaling") or {}
  rope_type = rope.get("rope_type", rope.get("type", "default"))
  if rope_type != "default":
    raise ValueError(f"rope_type={rope_type!r} is not supported (only 'default')")
  rotary_pct = rope.get("partial_rotary_factor", _get(hf_config, "rotary_pct", 0.25))
  rotary_base = rope.get("rope_theta", _get(hf_config, "rotary_emb_base", 10000.0))
  problems = []
  if not _get(hf_config, "use_parallel_residual", True):
    problems.append("use_parallel_residual=False (our block is the parallel one)")
  if _get(hf_config, "hidden_act", "gelu") != "gelu":
    problems.append(f"hidden_act={_get(hf_config, 'hidden_act')!r} (ours is exact 'gelu')")
  inter = _get(hf_config, "intermediate_size", 4 * d)
  if inter % d:
    problems.append(f"intermediate_size={inter} is not a multiple of hidden_size={d}")
  head_dim = d // h
  if int(head_dim * rotary_pct) % 2:
    problems.append(f"an odd rotary width int({head_dim} * {rotary_pct})")
  if problems:
    raise ValueError("cannot convert this GPT-NeoX config: " + "; ".join(problems))
  return TransformerConfig(vocab_size=_get(hf_config, "vocab_size"),
                           n_layers=_get(hf_config, "num_hidden_layers"), d_model=d, n_heads=h,
                           mlp_ratio=inter // d, rotary_pct=float(rotary_pct),
                           rotary_base=float(rotary_base),
                           ln_eps=float(_get(hf_config, "layer_norm_eps", 1e-5)))


def params_from_hf_state_dict(state_dict: Mapping[str, Any], cfg: TransformerConfig) -> dict:
  """The pure-dict parameter tree of ``Transformer(cfg)`` from a GPT-NeoX state dict.

  Accepts keys with or without the ``gpt_neox.`` prefix, the output embedding as ``lm_head``
  (transformers 5) or ``embed_out`` (the Pythia files), and a tied output embedding (no output
  key: the input embedding is reused). Buffers such as ``attention.bias``/``masked_bias``/
  ``rotary_emb.inv_freq`` are ignored. Missing biases (``attention_bias=False``) become zeros.
  """
  sd = {k.removeprefix("gpt_neox."): v for k, v in state_dict.items()}
  used: set[str] = set()

  def take(key, shape, transpose=False, optional=False):
    if key not in sd:
      if optional:
        return np.zeros(shape, np.float32)
      raise KeyError(f"missing {key!r} in the state dict")
    used.add(key)
    x = to_float32(sd[key])
    x = x.T if transpose else x
    if x.shape != tuple(shape):
      raise ValueError(f"{key}: shape {x.shape}, expected {tuple(shape)}")
    return x

  D, V, F = cfg.d_model, cfg.vocab_size, cfg.mlp_ratio * cfg.d_model

  def ln(prefix):
    return {"scale": take(f"{prefix}.weight", (D,)), "bias": take(f"{prefix}.bias", (D,))}

  def linear(prefix, d_in, d_out, bias_optional=False):
    return {"kernel": take(f"{prefix}.weight", (d_in, d_out), transpose=True),
            "bias": take(f"{prefix}.bias", (d_out,), optional=bias_optional)}

  blocks = {}
  for i in range(cfg.n_layers):
    p = f"layers.{i}"
    blocks[i] = {
        "ln1": ln(f"{p}.input_layernorm"),
        "ln2": ln(f"{p}.post_attention_layernorm"),
        "attn": {"qkv": linear(f"{p}.attention.query_key_value", D, 3 * D, bias_optional=True),
                 "dense": linear(f"{p}.attention.dense", D, D, bias_optional=True)},
        "mlp": {"up": linear(f"{p}.mlp.dense_h_to_4h", D, F),
                "down": linear(f"{p}.mlp.dense_4h_to_h", F, D)},
    }
  embed = take("embed_in.weight", (V, D))
  out_key = next((k for k in ("lm_head.weight", "embed_out.weight") if k in sd), None)
  unembed = take(out_key, (D, V), transpose=True) if out_key else embed.T.copy()
  params = {"embed": {"embedding": embed}, "blocks": blocks,
            "final_ln": ln("final_layer_norm"), "unembed": {"kernel": unembed}}
  ignorable = ("attention.bias", "attention.masked_bias", "inv_freq")
  unused = [k for k in sd if k not in used and not k.endswith(ignorable)]
  if unused:
    raise ValueError(f"unconverted tensors in the state dict: {unused[:8]}")
  return params
