"""Architecture parity: a Hugging Face GPTNeoXForCausalLM and our Transformer, same weights.

Random weights only (nothing is downloaded); torch and transformers come from the `test` extra.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import torch  # the test extra installs it: a missing torch fails, never skips
import transformers

from toy import convert  # noqa: E402
from toy.config import make_config  # noqa: E402
from toy.optim import trainable_labels  # noqa: E402


def tiny_hf(seed=0, **overrides):
  torch.manual_seed(seed)
  kw = dict(vocab_size=29, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=128, rotary_pct=0.25, use_parallel_residual=True,
            max_position_embeddings=64, hidden_act="gelu")
  kw.update(overrides)
  cfg = transformers.GPTNeoXConfig(**kw)
  model = transformers.GPTNeoXForCausalLM(cfg).float().eval()
  with torch.no_grad():  # HF initialises biases and LayerNorms to 0/1; make every tensor matter
    for p in model.parameters():
      p.add_(0.1 * torch.randn_like(p))
  return model


def hf_logits(model, tokens):
  with torch.no_grad():
    return model(torch.as_tensor(np.asarray(tokens), dtype=torch.long)).logits.numpy()


@pytest.mark.parametrize("overrides", [{}, {"rotary_pct": 0.5, "rotary_emb_base": 500.0}],
                         ids=["pythia_like", "rotary_half_base500"])
def test_logits_match_hugging_face(overrides):
  model = tiny_hf(**overrides)
  cfg, ours = convert.from_hf_state_dict(model.state_dict(), model.config)
  assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.mlp_ratio) == (2, 32, 4, 4)
  assert cfg.rotary_pct == overrides.get("rotary_pct", 0.25)
  assert cfg.rotary_base == overrides.get("rotary_emb_base", 10000.0)
  tokens = np.random.default_rng(0).integers(0, 29, size=(3, 17))
  ref = hf_logits(model, tokens)
  got = np.asarray(jax.jit(lambda t: ours(t))(jnp.asarray(tokens)))
  assert got.shape == ref.shape
  np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)


def test_load_pythia_reads_a_saved_checkpoint_folder(tmp_path):
  model = tiny_hf(seed=1)
  model.save_pretrained(tmp_path)  # safetensors; the output embedding may be stored as lm_head
  cfg, ours = convert.load_pythia(str(tmp_path))
  tokens = np.arange(29).reshape(1, 29) % 29
  np.testing.assert_allclose(np.asarray(ours(jnp.asarray(tokens))), hf_logits(model, tokens),
                             atol=1e-4, rtol=0)


def test_old_key_names_and_tied_embeddings():
  model = tiny_hf(seed=2)
  sd = {k.replace("lm_head.", "embed_out."): v for k, v in model.state_dict().items()}
  _, ours = convert.from_hf_state_dict(sd, model.config)
  np.testing.assert_array_equal(np.asarray(ours.unembed.kernel[...]),
                                model.lm_head.weight.detach().numpy().T)
  tied = {k: v for k, v in sd.items() if not k.startswith("embed_out")}
  _, ours = convert.from_hf_state_dict(tied, model.config)
  np.testing.assert_array_equal(np.asarray(ours.unembed.kernel[...]),
                                np.asarray(ours.embed.embedding[...]).T)


@pytest.mark.parametrize("bad", [{"use_parallel_residual": False}, {"hidden_act": "gelu_new"},
                                 {"intermediate_size": 100}])
def test_unsupported_variants_are_refused(bad):
  with pytest.raises(ValueError, match="cannot convert"):
    convert.config_from_hf(transformers.GPTNeoXConfig(
        vocab_size=29, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, **bad))


def test_pythia_task_sees_the_engine_tokens_and_freezes_like_the_transformer(tmp_path):
  model = tiny_hf(seed=3)
  model.save_pretrained(tmp_path)
  cfg = make_config("tiny")  # A = 6: 6 letters + 3 prefixes
  ids = [3, 5, 7, 11, 13, 17, 19, 23, 28]
  task = convert.pythia_factory(str(tmp_path), ids)(cfg, {}, None)
  tokens = np.array([[6, 0, 1, 2], [7, 5, 4, 3]])
  full = hf_logits(model, np.asarray(ids)[tokens])
  np.testing.assert_allclose(np.asarray(task(jnp.asarray(tokens))), full[..., ids], atol=1e-4)
  from flax import nnx
  params = nnx.to_pure_dict(nnx.split(task, nnx.Param, ...)[1])
  labels = trainable_labels(task, params, "dpo", cfg)
  assert labels["net"]["embed"]["embedding"] == "train"
  assert labels["net"]["blocks"][0]["attn"]["qkv"]["kernel"] == "train"
  assert labels["net"]["blocks"][1]["attn"]["qkv"]["kernel"] == "frozen"
  assert labels["net"]["unembed"]["kernel"] == "frozen"
  assert labels["net"]["final_ln"]["scale"] == "frozen"
  assert "token_ids" not in params


class _FakeTokenizer:
  vocab = {" a": 10, " b": 11, " c": 12, " regular": 40, " reverse": 41, " neutral": 42}

  def encode(self, text, add_special_tokens=True):
    return [self.vocab[text]] if text in self.vocab else [1, 2]


def test_task_token_ids_are_single_tokens_in_engine_order():
  assert convert.task_token_ids(_FakeTokenizer(), 3) == [10, 11, 12, 40, 41, 42]
  with pytest.raises(ValueError, match="one token"):
    convert.task_token_ids(_FakeTokenizer(), 4)  # " d" is two tokens here


def test_the_study_runs_from_a_checkpoint_folder(tmp_path):
  """The README's Pythia how-to, end to end on a tiny random checkpoint (tiny preset)."""
  from toy.engine import train
  model = tiny_hf(seed=4, vocab_size=50)
  model.save_pretrained(tmp_path)
  cfg = make_config("tiny", lr=1e-3)
  ids = [10 + i for i in range(cfg.alphabet_size)] + [40, 41, 42]
  result = train(cfg, make_model=convert.pythia_factory(str(tmp_path), ids), progress=False,
                 save=False)
  assert np.isfinite(result.summary[0]["reverse/heldout/final"])
  frozen_before = model.state_dict()["gpt_neox.layers.1.attention.dense.weight"].numpy().T
  trained = np.asarray(result.params["net"]["blocks"][1]["attn"]["dense"]["kernel"][0])
  assert not np.allclose(trained, frozen_before)  # phases 1 and 3 train every layer
