"""--init_from and --normalize: a tiny random GPT-NeoX checkpoint folder written by
``transformers`` itself (model, config and a small BPE tokenizer), run from the command line.

Random weights only: nothing is downloaded, and no real Pythia checkpoint is used.
"""
import importlib
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import torch  # the test extra installs it: a missing torch fails, never skips
import transformers
import tokenizers

from toy import columns  # noqa: E402
from toy import convert  # noqa: E402
from toy import data as data_lib  # noqa: E402
from toy.cli import parse_config  # noqa: E402
from toy.config import make_config, script_parser  # noqa: E402
from toy.engine import build_model  # noqa: E402
from toy.losses import token_logps  # noqa: E402
from toy.phases import evaluate  # noqa: E402
from toy.points import figure_points  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..")
WORDS = [" " + chr(ord("a") + i) for i in range(26)] + [" regular", " reverse", " neutral"]


def _script(name):
  return importlib.import_module(f"experiments.{name}")


def save_tokenizer(folder, words):
  """A byte-level BPE trained on ``words`` only, so that each is one token (a word left out
  is split into pieces), saved by transformers as a checkpoint's tokenizer files."""
  from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
  tok = Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  tok.train_from_iterator(["".join(words)] * 4,
                          trainers.BpeTrainer(vocab_size=80, show_progress=False))
  fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok)
  fast.save_pretrained(folder)
  return fast


def save_checkpoint(folder, words=WORDS, seed=0):
  """A Pythia-shaped folder: GPTNeoXForCausalLM (random weights), config.json, tokenizer.
  The model's vocabulary is 5 rows longer than the tokenizer's, as Pythia's is padded."""
  tokenizer = save_tokenizer(folder, words)
  torch.manual_seed(seed)
  cfg = transformers.GPTNeoXConfig(
      vocab_size=len(tokenizer) + 5, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
      intermediate_size=64, rotary_pct=0.25, max_position_embeddings=32, hidden_act="gelu")
  model = transformers.GPTNeoXForCausalLM(cfg).float().eval()
  with torch.no_grad():  # HF initialises biases and LayerNorms to 0/1; make every tensor matter
    for p in model.parameters():
      p.add_(0.1 * torch.randn_like(p))
  model.save_pretrained(folder)
  return model, tokenizer


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
  folder = tmp_path_factory.mktemp("ckpt") / "tiny-neox"
  model, tokenizer = save_checkpoint(str(folder))
  return str(folder), model, tokenizer


def test_the_tokenizer_makes_every_engine_word_one_token(checkpoint):
  folder, _, tokenizer = checkpoint
  ids = convert.checkpoint_token_ids(folder, 26)
  assert list(ids) == [tokenizer.encode(w, add_special_tokens=False)[0] for w in WORDS]
  assert len(set(ids)) == 29


def test_normalize_defaults_to_vocab_with_a_checkpoint_and_the_checkpoint_sets_the_shape(
    checkpoint):
  folder = checkpoint[0]
  assert make_config("tiny").normalize == "alphabet"
  cfg = convert.resolve_init_from(make_config("tiny", init_from=folder))
  assert cfg.normalize == "vocab"
  assert (cfg.n_layers, cfg.d_model, cfg.n_heads) == (2, 16, 2)
  cpu = convert.resolve_init_from(make_config("cpu", init_from=folder))
  assert cpu.d_model == 16  # the preset's 64 is replaced
  assert make_config("tiny", init_from=folder, normalize="alphabet").normalize == "alphabet"
  assert make_config("tiny", normalize="vocab").normalize == "vocab"
  with pytest.raises(ValueError, match=r"invalid init_from=.*drop d_model=32"):
    convert.resolve_init_from(make_config("tiny", init_from=folder, d_model=32), {"d_model"})
  with pytest.raises(ValueError, match=r"invalid alphabet_size=256"):
    convert.resolve_init_from(make_config("interp", init_from=folder))


def test_the_toy_refuses_a_checkpoint_and_vocab_normalisation(checkpoint):
  with pytest.raises(ValueError, match=r"invalid normalize='all': allowed one of \['alphabet'"):
    make_config("tiny", normalize="all")
  with pytest.raises(ValueError, match=r"invalid normalize='vocab': allowed 'alphabet'"):
    make_config("tiny", model="toy", normalize="vocab")
  with pytest.raises(ValueError, match=r"invalid init_from=.*model='toy'"):
    make_config("tiny", model="toy", init_from=checkpoint[0])


def _cli_error(capsys, argv) -> str:
  """The one error line that train.py exits with (argparse's exit code 2, no traceback)."""
  with pytest.raises(SystemExit) as exit_info:
    _script("train").main(argv)
  assert exit_info.value.code == 2
  err = capsys.readouterr().err
  assert "Traceback" not in err
  lines = [line for line in err.splitlines() if "error:" in line]
  assert len(lines) == 1, err
  return lines[0]


def test_cli_errors_name_the_folder_in_one_line(checkpoint, tmp_path, capsys):
  folder = checkpoint[0]
  line = _cli_error(capsys, ["--preset", "tiny", "--init_from", str(tmp_path / "nowhere")])
  assert "invalid init_from=" in line and "no such folder" in line

  gpt2 = tmp_path / "gpt2"
  shutil.copytree(folder, gpt2)
  with open(gpt2 / "config.json") as f:
    hf = json.load(f)
  with open(gpt2 / "config.json", "w") as f:
    json.dump({**hf, "model_type": "gpt2"}, f)
  line = _cli_error(capsys, ["--preset", "tiny", "--init_from", str(gpt2)])
  assert "invalid init_from=" in line and "model_type='gpt2', expected 'gpt_neox'" in line

  split = tmp_path / "split-neutral"  # its tokenizer never saw " neutral"
  save_checkpoint(str(split), words=WORDS[:-1])
  line = _cli_error(capsys, ["--preset", "tiny", "--init_from", str(split)])
  assert "invalid init_from=" in line and "' neutral' is" in line and "one token" in line


def test_vocab_log_probs_are_hugging_faces_and_below_the_alphabets(checkpoint):
  """At initialisation: the task's columns under normalize=vocab give exactly HF's log-softmax
  over the whole (padded) vocabulary; over the alphabet, each letter's log-prob is higher."""
  folder, model, _ = checkpoint
  cfg = make_config("tiny", init_from=folder)
  ids = np.asarray(convert.checkpoint_token_ids(folder, cfg.alphabet_size))
  rng = np.random.default_rng(0)
  tokens = np.concatenate([np.full((4, 1), cfg.alphabet_size), rng.integers(0, 6, (4, 5))], 1)
  targets = rng.integers(0, cfg.alphabet_size, (4, 6))
  with torch.no_grad():
    hf = torch.log_softmax(model(torch.as_tensor(ids[tokens])).logits, -1).numpy()
  hf_target = np.take_along_axis(hf, ids[targets][..., None], -1)[..., 0]
  lp = {}
  for normalize in ("vocab", "alphabet"):
    task = build_model(cfg.replace(normalize=normalize), {}, None)
    logits = task(jnp.asarray(tokens))
    assert logits.shape[-1] == cfg.alphabet_size + 3 + (normalize == "vocab")
    lp[normalize] = np.asarray(token_logps(logits, jnp.asarray(targets), cfg.alphabet_size,
                                           normalize))
  np.testing.assert_allclose(lp["vocab"], hf_target, atol=1e-5, rtol=0)
  assert (lp["vocab"] < lp["alphabet"]).all()


def test_from_scratch_vocab_normalisation_covers_the_prefix_tokens():
  """The from-scratch transformer predicts A + 3 tokens: under vocab, the prefixes' share of
  the softmax lowers every letter's log-prob; the evaluation follows the config."""
  cfg = make_config("tiny")
  model = build_model(cfg, {}, nnx.Rngs(0))
  graphdef, params, state = nnx.split(model, nnx.Param, ...)
  apply = lambda p, r, t: nnx.merge(graphdef, p, r)(t)
  data = {k: np.asarray(v) for k, v in data_lib.make_data(cfg, jax.random.key(0)).items()}
  ev = {n: jax.jit(lambda p, r, d, n=n: evaluate(cfg.replace(normalize=n), apply, p, r, d))(
      params, state, data) for n in ("alphabet", "vocab")}
  for k in ev["vocab"]:
    assert float(ev["vocab"][k]) < float(ev["alphabet"][k])
  logits = np.asarray(jax.jit(apply)(params, state,
                                     data_lib.model_inputs(cfg, data["control"], data_lib.REGULAR)))
  want = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  targets = data["control"]
  got = token_logps(jnp.asarray(logits), jnp.asarray(targets), cfg.alphabet_size, "vocab")
  np.testing.assert_allclose(got, np.take_along_axis(want, targets[..., None], -1)[..., 0],
                             atol=1e-5)


def test_train_cli_runs_the_study_from_the_checkpoint_folder(checkpoint, tmp_path):
  folder, model, _ = checkpoint
  result = _script("train").main(["--init_from", folder, "--preset", "tiny",
                                  "--out_dir", str(tmp_path)])
  assert result.cfg.normalize == "vocab" and result.cfg.init_from == folder
  assert os.path.basename(result.run_dir) == "tiny-neox_tiny_seed0x1"
  with open(os.path.join(result.run_dir, "config.json")) as f:
    assert json.load(f)["init_from"] == folder
  s = result.summary[0]
  assert all(np.isfinite(v) for v in s.values())
  # the engine trained the checkpoint's weights (phases 1 and 3 train every layer)
  start = model.state_dict()["gpt_neox.layers.1.attention.dense.weight"].numpy().T
  trained = np.asarray(result.params["net"]["blocks"][1]["attn"]["dense"]["kernel"][0])
  assert trained.shape == start.shape and not np.allclose(trained, start)


def test_toy_vs_learned_keeps_the_toy_column_a_toy(checkpoint):
  parser = script_parser("")
  columns.add_args(parser)
  learned, args = parse_config(parser, ["--preset", "tiny", "--init_from", checkpoint[0],
                                        "--mix_lower_lr_scale", "0"], model="transformer")
  cfgs = columns.column_configs(learned, args, parser)
  assert cfgs[columns.TOY].model == "toy"
  assert (cfgs[columns.TOY].init_from, cfgs[columns.TOY].normalize) == ("", "alphabet")
  learned_cols = [c for name, c in cfgs.items() if name != columns.TOY]
  assert len(learned_cols) == 2
  assert all((c.init_from, c.normalize) == (checkpoint[0], "vocab") for c in learned_cols)


def test_paper_figures_leaves_out_the_model_size_figure(checkpoint, capsys):
  pf = _script("paper_figures")
  base = make_config("tiny", init_from=checkpoint[0])
  assert set(figure_points(base)) == {"phases", "heldout_proportion", "ablations"}
  assert "model_size" in figure_points(make_config("tiny"))
  with pytest.raises(SystemExit) as exit_info:
    pf.main(["--preset", "tiny", "--init_from", checkpoint[0], "--figure", "model_size"])
  assert exit_info.value.code == 2
  assert "error: --figure model_size: with --init_from" in capsys.readouterr().err


def test_the_folder_is_checked_where_the_model_is_built(tmp_path):
  cfg = make_config("tiny", init_from=str(tmp_path / "nowhere"))  # a config reads no file
  with pytest.raises(ValueError, match=r"^invalid init_from=.*no such folder"):
    build_model(cfg, {}, None)
