"""The side-by-side script: its generalization ratio, and one end-to-end run at tiny size, whose
saved runs experiments/inspect_flip.py then inspects end to end."""
import json
import os
import shutil
import types

import jax
import numpy as np
import pytest
from flax import nnx

from experiments import inspect_flip as flip
from experiments import toy_vs_learned as tvl
from toy import columns
from toy import data as data_lib
from toy.cli import config_from_args
from toy.config import add_config_args, make_config, script_parser
from toy.engine import apply_fn, evaluate_seeds
from toy.measure import generalization_ratio, law_slopes
from toy.mechanism import build_toy



def _toy_result(a, c, gain=0.0, seed=0):
  """A hand-set toy (random memory, no training) dressed as a one-seed RunResult."""
  cfg = make_config("tiny", model="toy", toy_a=a, toy_c=c, toy_gain_add=gain)
  data = {k: np.asarray(v) for k, v in data_lib.make_data(cfg, jax.random.key(seed)).items()}
  model = build_toy(cfg, data)
  rng = np.random.default_rng(seed)
  model.memory.values[...] = rng.normal(size=model.memory.values[...].shape)
  graphdef, params, state = nnx.split(model, nnx.Param, ...)
  stack = lambda tree: jax.tree.map(lambda x: np.asarray(x)[None], nnx.to_pure_dict(tree))
  return types.SimpleNamespace(cfg=cfg, apply=apply_fn(graphdef), params=stack(params),
                               state=stack(state), data={k: v[None] for k, v in data.items()})


@pytest.mark.parametrize("a, c, gain", [(1.0, 0.0, 0.0), (1.0, 3.0, 0.0), (0.5, 2.0, 0.7)])
def test_toy_law_slopes_are_the_sign_ratio_for_both_sets_so_g_is_one(a, c, gain):
  slopes = law_slopes(_toy_result(a, c, gain))
  ratio = (a - c + gain) / (a + c + gain)
  assert slopes["useful"][0] == pytest.approx(ratio, rel=1e-5)
  assert slopes["heldout"][0] == pytest.approx(ratio, rel=1e-5)
  assert generalization_ratio(slopes)[0] == pytest.approx(1.0, rel=1e-5)
  # the within-set slope (with intercept) is the same law: the toy has no offset
  assert slopes["within/useful"][0] == pytest.approx(ratio, rel=1e-4)
  assert slopes["within/heldout"][0] == pytest.approx(ratio, rel=1e-4)


def test_generalization_ratio_is_zero_when_heldout_do_not_move():
  slopes = {"useful": np.array([-0.5, -1.0]), "heldout": np.array([0.0, 0.0])}
  assert list(generalization_ratio(slopes)) == [0.0, 0.0]


@pytest.fixture(scope="module")
def tiny_columns(tmp_path_factory):
  """toy_vs_learned.py's end-to-end run at tiny size, once for the module: its saved runs are
  what inspect_flip.py reads, as a user's would be."""
  root = tmp_path_factory.mktemp("tvl")
  figs, res, runs_dir = root / "figs", root / "res", root / "runs"
  rows = tvl.main(["--preset", "tiny", "--mix_lower_lr_scale", "0", "--n_seeds", "2",
                   "--out_dir", str(runs_dir), "--figures", str(figs), "--results", str(res)])
  return rows, figs, res, runs_dir


def test_end_to_end_at_tiny_writes_figures_and_table(tiny_columns):
  rows, figs, res, _ = tiny_columns
  assert sorted(os.listdir(figs)) == ["toy_vs_learned_law.png", "toy_vs_learned_phases.png"]
  table = (res / "toy_vs_learned.md").read_text()
  assert "generalization ratio" in table and "toy (hand-built)" in table
  saved = json.loads((res / "toy_vs_learned.json").read_text())
  assert saved["rows"]["toy (hand-built)"]["seeds"] == [0, 1]
  partial, protocol = "learned, phase 3 lower half ×0", "learned, PROTOCOL phase 3"
  acquired = columns.ACQUIRED_COLUMN
  assert set(rows) == {"toy (hand-built)", partial, protocol, acquired}
  # the acquired column: one prior episode at scale 0, then PROTOCOL's phase 3
  got = saved["configs"][acquired]
  assert (got["prior_episodes"], got["prior_mix_lower_lr_scale"], got["mix_lower_lr_scale"]) \
      == (1, 0.0, 1.0)
  assert rows[acquired]["seeds"] == [0, 1] and acquired in table
  assert saved["configs"]["toy (hand-built)"]["model"] == "toy"
  assert saved["configs"]["toy (hand-built)"]["mix_lower_lr_scale"] == 1.0
  assert saved["configs"][partial]["mix_lower_lr_scale"] == 0.0
  assert saved["configs"][protocol]["mix_lower_lr_scale"] == 1.0
  assert "learned, phase 3 lower half ×0" in table
  # the trained toy obeys its law exactly, whatever training wrote into its memory
  assert rows["toy (hand-built)"]["generalization_ratio"]["mean"] == pytest.approx(1.0, rel=1e-4)
  assert rows["toy (hand-built)"]["G"]["defined"]
  assert rows["toy (hand-built)"]["G"]["ratio"]["ratio"] == pytest.approx(1.0, rel=1e-4)
  assert "placebo_vs_control_final" in rows[partial]  # a fresh run evaluates the placebo
  # the table is rebuilt from the JSON's per-seed values, byte for byte
  tvl.main(["--table-only", "--results", str(res)])
  assert (res / "toy_vs_learned.md").read_text() == table


def test_table_only_rebuilds_the_committed_table_from_its_json(tmp_path):
  """The committed JSON was written before it kept per-seed values: its stored rows give the
  table, G's n/a from the stored useful-slope test, the placebo rows '—'."""
  root = os.path.join(os.path.dirname(__file__), "..", "results")
  (tmp_path / "toy_vs_learned.json").write_bytes(
      open(os.path.join(root, "toy_vs_learned.json"), "rb").read())
  tvl.main(["--table-only", "--results", str(tmp_path)])
  body = lambda text: text[text.index("Learned:"):]  # the header names the command's flags
  assert body((tmp_path / "toy_vs_learned.md").read_text()) == body(
      open(os.path.join(root, "toy_vs_learned.md")).read())


def test_toy_gates_flags_set_the_toy_column_alone():
  """``--toy_gates M --toy_gate_mix K`` put a partial toy beside the learned columns: the
  learned configs keep the transformer's (no) gates, which it would refuse otherwise."""
  parser = script_parser(tvl.__doc__)
  columns.add_args(parser)
  add_config_args(parser)
  args = parser.parse_args(["--preset", "tiny", "--toy_gates", "4", "--toy_gate_mix", "2",
                            "--mix_lower_lr_scale", "0"])
  learned = config_from_args(columns.learned_args(args), parser, model="transformer",
                             **columns.DEFAULTS)
  cfgs = columns.column_configs(learned, args, parser)
  assert list(cfgs)[0] == "toy, 4 gates, 2 per row"
  toy_cfg = cfgs["toy, 4 gates, 2 per row"]
  assert (toy_cfg.model, toy_cfg.toy_gates, toy_cfg.toy_gate_mix) == ("toy", 4, 2)
  for name, c in cfgs.items():
    if c.model == "transformer":
      assert (c.toy_gates, c.toy_gate_mix) == (1, 1), name
  no_acquired = parser.parse_args(["--preset", "tiny", "--no_acquired"])
  assert columns.ACQUIRED_COLUMN in cfgs
  assert columns.ACQUIRED_COLUMN not in columns.column_configs(learned, no_acquired, parser)


def test_inspect_flip_end_to_end_at_tiny_loads_the_saved_runs(tiny_columns, tmp_path):
  figs, res, runs_dir = tmp_path / "figs", tmp_path / "res", tmp_path / "runs"
  # the two learned runs toy_vs_learned.py saved; the toy's folder is missing, so inspect_flip
  # trains it first (its own path for missing runs) and then loads all three
  for name in ("transformer_tiny_seed0x2", "transformer_tiny_seed0x2_protocol"):
    shutil.copytree(tiny_columns[3] / name, runs_dir / name)
  runs, out = flip.main(["--preset", "tiny", "--mix_lower_lr_scale", "0", "--n_seeds", "2",
                         "--out_dir", str(runs_dir), "--figures", str(figs),
                         "--results", str(res)])
  assert sorted(os.listdir(figs)) == ["inspect_component_law.png", "inspect_patching.png",
                                      "inspect_prefix_direction.png"]
  assert sorted(os.listdir(runs_dir)) == ["toy_tiny_seed0x2", "transformer_tiny_seed0x2",
                                          "transformer_tiny_seed0x2_protocol"]
  table = (res / "inspect_flip.md").read_text()
  for heading in ("The law component by component", "The prefix direction",
                  "Activation patching", "toy (hand-built)", "learned, PROTOCOL phase 3",
                  "blocks.1.mlp", "The law by halves"):
    assert heading in table
  # the halves split the shares: lower + upper + the bias's share is the law slope, per seed
  for name, r in runs.items():
    law = out[name]["law"]
    h = flip.halves(law, out[name]["direction"]["upper_blocks"])
    if r.cfg.model == "toy":
      assert h is None
      continue
    for s in ("useful", "heldout"):
      np.testing.assert_allclose(h[("lower", s)] + h[("upper", s)] + law["bias"][f"share/{s}"],
                                 law["total"][f"slope/{s}"], atol=1e-4)
  saved = json.loads((res / "inspect_flip.json").read_text())
  assert saved["toy (hand-built)"]["seeds"] == [0, 1]
  assert all(o["attribution_error"] < 1e-4 for o in out.values())
  np.testing.assert_allclose(out["toy (hand-built)"]["law"]["times"]["G"], 1.0, rtol=1e-4)
  # the loaded parameters are the trained ones: they reproduce the run's last evaluation
  for r in runs.values():
    assert r.cfg.seeds == [0, 1] and r.run_dir.startswith(str(runs_dir))
    evals = evaluate_seeds(r.params, r.state, r.data, cfg=r.cfg, graphdef=r.graphdef)
    last = [row for row in r.history if row["phase"] == "mix"][-2:]
    for i, row in enumerate(last):
      for s in ("control", "useful", "heldout"):
        assert float(evals[f"eval/reverse/{s}"][i]) == pytest.approx(
            row[f"eval/reverse/{s}"], abs=1e-5)
  # a folder that holds another run under the expected name is refused, not inspected
  with pytest.raises(SystemExit):
    flip.main(["--preset", "tiny", "--n_seeds", "2", "--out_dir", str(runs_dir),
               "--figures", str(figs), "--results", str(res)])
