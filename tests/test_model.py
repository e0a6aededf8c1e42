"""The learned transformer's own behaviour (toy/model.py): hooks, ablations, phase freezing."""
import jax
import numpy as np
import pytest
from flax import nnx

from toy.config import make_config
from toy.io import path_names
from toy.model import Transformer, TransformerConfig
from toy.optim import trainable_labels

B, T = 3, 5


@pytest.fixture(scope="module")
def model():
  return Transformer(TransformerConfig(vocab_size=9, n_layers=2, d_model=16, n_heads=2),
                     nnx.Rngs(0))


@pytest.fixture(scope="module")
def tokens():
  return np.random.default_rng(0).integers(0, 9, (B, T)).astype(np.int32)


def test_hooks_fill_the_named_activations_with_their_shapes(model, tokens):
  cache = {}
  logits = model(tokens, hooks=cache)
  cfg = model.cfg
  for i in range(cfg.n_layers):
    assert cache[f"blocks.{i}.attn.hook_pattern"].shape == (B, cfg.n_heads, T, T)
    for name in ("hook_resid_post", "hook_attn_out", "hook_mlp_out"):
      assert cache[f"blocks.{i}.{name}"].shape == (B, T, cfg.d_model), name
  assert logits.shape == (B, T, cfg.vocab_size)
  # the last residual stream is what the unembedding reads; hooks change nothing
  last = cache[f"blocks.{cfg.n_layers - 1}.hook_resid_post"]
  np.testing.assert_allclose(model.unembed(model.final_ln(last)), logits, rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(model(tokens), logits)


def test_attention_pattern_rows_sum_to_one_and_are_causal(model, tokens):
  cache = {}
  model(tokens, hooks=cache)
  for i in range(model.cfg.n_layers):
    pattern = np.asarray(cache[f"blocks.{i}.attn.hook_pattern"])
    np.testing.assert_allclose(pattern.sum(-1), 1.0, rtol=1e-6)
    future = np.triu(np.ones((T, T), bool), k=1)  # key position after the query position
    assert np.all(pattern[..., future] == 0.0)
    assert np.all(pattern[..., ~future] > 0.0)


def test_ablation_by_name(model, tokens):
  plain = np.asarray(model(tokens))
  np.testing.assert_array_equal(np.asarray(model(tokens, ablate={})), plain)
  np.testing.assert_array_equal(np.asarray(model(tokens, ablate={"blocks.1.mlp": False})), plain)
  cache = {}
  ablated = np.asarray(model(tokens, hooks=cache, ablate={"blocks.1.mlp": True}))
  assert not np.allclose(ablated, plain)
  assert np.all(np.asarray(cache["blocks.1.hook_mlp_out"]) == 0.0)
  assert np.any(np.asarray(cache["blocks.1.hook_attn_out"]) != 0.0)
  cache = {}
  model(tokens, hooks=cache, ablate={"blocks.0.attn": True})
  assert np.all(np.asarray(cache["blocks.0.hook_attn_out"]) == 0.0)


def _labels(cfg, phase, lower_group=False) -> dict:
  model = Transformer(TransformerConfig(vocab_size=cfg.alphabet_size + 3, n_layers=cfg.n_layers,
                                        d_model=cfg.d_model, n_heads=cfg.n_heads), nnx.Rngs(0))
  params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  labels = trainable_labels(model, params, phase, cfg, lower_group)
  return {path_names(p): label for p, label in jax.tree_util.tree_flatten_with_path(labels)[0]}


def _part(names: tuple) -> str:
  return f"blocks.{names[1]}" if names[0] == "blocks" else names[0]


def test_phase_labels_freeze_the_upper_half_in_dpo_only():
  cfg = make_config("tiny", n_layers=4, d_model=16, n_heads=2)
  upper = {"blocks.2", "blocks.3", "final_ln", "unembed"}
  dpo = _labels(cfg, "dpo")
  assert {_part(n) for n in dpo} == upper | {"embed", "blocks.0", "blocks.1"}
  for names, label in dpo.items():
    assert label == ("frozen" if _part(names) in upper else "train"), names
  assert set(_labels(cfg, "pretrain").values()) == {"train"}
  assert set(_labels(cfg, "mix").values()) == {"train"}
  assert set(_labels(cfg.replace(freeze_phase2=False), "dpo").values()) == {"train"}


def test_phase3_lower_group_is_what_phase2_trained():
  cfg = make_config("tiny", n_layers=4, d_model=16, n_heads=2)
  lower = {"embed", "blocks.0", "blocks.1"}
  for names, label in _labels(cfg, "mix", lower_group=True).items():
    assert label == ("lower" if _part(names) in lower else "train"), names
  no_embed = _labels(cfg.replace(mix_lower_embed=False), "mix", lower_group=True)
  for names, label in no_embed.items():
    assert label == ("lower" if _part(names) in {"blocks.0", "blocks.1"} else "train"), names
