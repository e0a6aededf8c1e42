"""The ladder of models (README, "The ladder"): each rung's defining property."""
import dataclasses

import jax
import numpy as np
import pytest

from toy import data as data_lib
from toy.config import make_config
from toy.convert import pythia_factory
from toy.engine import train, train_many
from toy.measure import law_slopes
from toy.mechanism import law_ratio


def test_leak_rung_law_slope_is_the_analytic_one_and_g_is_one(tmp_path):
  """Rung 2: with an additive leak g, both sets' law slopes are (a-c+g)/(a+c+g) of the trained
  scalars, so G = 1 whatever g is; the leak moves the slope, not the ratio of slopes."""
  cfgs = [make_config("tiny", model="toy", toy_gain_add=g, n_seeds=2, out_dir=str(tmp_path))
          for g in (0.5, 2.0)]
  for cfg, result in zip(cfgs, train_many(cfgs, progress=False, save=False)):
    slopes = law_slopes(result)
    for i in range(cfg.n_seeds):
      m = result.model(i)
      predicted = law_ratio(float(m.times.a[...]), float(m.times.c[...]), cfg.toy_gain_add)
      assert abs(float(m.times.c[...])) > 1e-3  # phase 3 trained the sign
      np.testing.assert_allclose(slopes["useful"][i], predicted, rtol=1e-4, atol=1e-5)
      np.testing.assert_allclose(slopes["heldout"][i], predicted, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(slopes["heldout"] / slopes["useful"], 1.0, atol=1e-4)


def test_unshared_sign_obeys_its_own_per_row_law(tmp_path):
  """Rung 3: each memory row's readout is multiplied by its own a[k] + c[k] d. Rows that only
  held-out negatives reach keep their "reverse" sign a - c = 1: phase 3 reaches them only
  through DPO under "regular" (d = +1), which gives a and c the same gradient, hence the
  same Adam step."""
  cfg = make_config("tiny", model="toy", toy_sign="per_row", out_dir=str(tmp_path))
  result = train(cfg, progress=False, save=False)
  m = result.model(0)
  a, c = np.asarray(m.times.a[...]), np.asarray(m.times.c[...])
  assert a.shape == c.shape == np.asarray(m.memory.values[...]).shape[:1]
  data = jax.tree.map(np.asarray, result.data)
  pws = np.concatenate([data["useful"][0], data["heldout"][0]])
  reg = data_lib.model_inputs(cfg, pws, data_lib.REGULAR)
  rev = data_lib.model_inputs(cfg, pws, data_lib.REVERSE)
  A = cfg.alphabet_size
  keys = np.asarray(m.memory.keys(reg))
  ratio = (a - c) / (a + c)
  logits_reg, logits_rev = np.asarray(m(reg))[..., :A], np.asarray(m(rev))[..., :A]
  np.testing.assert_allclose(logits_rev, ratio[keys][..., None] * logits_reg, rtol=1e-4,
                             atol=1e-5)
  useful_keys = set(np.asarray(m.memory.keys(data_lib.model_inputs(cfg, data["useful"][0],
                                                            data_lib.REVERSE))).ravel().tolist())
  heldout_only = sorted(set(np.unique(keys[len(data["useful"][0]):]).tolist()) - useful_keys)
  assert heldout_only and np.abs(c[heldout_only]).max() > 1e-2  # DPO moved a + c ...
  np.testing.assert_allclose((a - c)[heldout_only], 1.0, atol=1e-5)  # ... but not a - c
  assert np.abs((a - c)[sorted(useful_keys - {0})] - 1).max() > 0.1  # useful rows' did move


def test_ladder_variants_refused_where_they_do_not_apply():
  with pytest.raises(ValueError, match="times_node"):
    make_config("tiny", model="toy", times_node=True)
  with pytest.raises(ValueError, match="mlp"):
    make_config("tiny", mlp="relu")
  with pytest.raises(ValueError, match="toy_sign"):
    make_config("tiny", model="toy", toy_sign="per_letter")
  cfg = make_config("tiny", mlp="swiglu")
  with pytest.raises(ValueError, match="GELU"):
    pythia_factory("/nonexistent", list(range(cfg.alphabet_size + 3)))(cfg, None, None)


def test_gelu_default_keeps_stored_point_names():
  """The new fields at their defaults leave a stored sweep point's hash as it was."""
  from toy.sweep import point_id
  cfg = make_config("cpu", seed=0, n_seeds=8, mix_lower_lr_scale=0.0)
  assert point_id(cfg) == point_id(dataclasses.replace(cfg, mlp="gelu", times_node=False,
                                                       times_lr=0.1, toy_sign="shared"))
  assert point_id(cfg) != point_id(cfg.replace(mlp="swiglu"))


# ----------------------------------------------------------------------------- the stored ladder

import os  # noqa: E402

from experiments import ladder  # noqa: E402
from toy.points import LADDER_OUT, LEAKS, RUNG_BY_NAME, ladder_toy, rung_folder  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..")


def test_every_rung_is_stored_with_8_seeds_and_nothing_is_orphaned():
  from toy.sweep import load_point, point_id
  for name, cfg in RUNG_BY_NAME.items():
    folder = rung_folder(cfg, os.path.join(ROOT, LADDER_OUT))
    assert folder is not None, f"rung {name} ({point_id(cfg)}) is not stored"
    record = load_point(folder, cfg)
    assert len(record["summary"]) == 8 and all(len(v) == 8 for v in record["law"].values())
  names = {n[:-5] for n in os.listdir(os.path.join(ROOT, LADDER_OUT)) if n.endswith(".json")}
  assert names <= {point_id(cfg) for cfg in RUNG_BY_NAME.values()}


def test_stored_leak_rungs_obey_the_analytic_law_and_plot_only_redraws_the_table(tmp_path):
  from toy.sweep import load_point
  for g in LEAKS:
    record = load_point(os.path.join(ROOT, LADDER_OUT), RUNG_BY_NAME[f"leak-{g:g}"])
    predicted = [law_ratio(a, c, g) for a, c in zip(record["times"]["a"], record["times"]["c"])]
    np.testing.assert_allclose(record["law"]["slope/heldout"], predicted, rtol=1e-4)
    np.testing.assert_allclose(record["law"]["G"], 1.0, atol=1e-4)
  cwd = os.getcwd()
  try:  # the script reads results/partial relative to the repository root
    os.chdir(ROOT)
    ladder.main(["--plot-only", "--table", str(tmp_path / "ladder.md"),
                 "--figure", str(tmp_path / "ladder.png")])
  finally:
    os.chdir(cwd)
  body = lambda text: text[text.index("| rung"):]
  assert body((tmp_path / "ladder.md").read_text()) == body(
      open(os.path.join(ROOT, "results", "ladder.md")).read())
  assert (tmp_path / "ladder.png").stat().st_size > 10_000


def test_with_scalars_on_a_gated_toy_and_leakage_rungs_read_only_the_gated_points(tmp_path):
  """A gated toy (toy_gates) has one a, c per gate: with_scalars keeps its law and stores no
  scalars (it failed on float() of a vector). leakage_rungs lists the gated toy points of a
  folder, one per row last, and skips the ones that are not the ladder's toy with gates."""
  import json
  cfg = make_config("tiny", model="toy", toy_gates=4, toy_gate_mix=2, out_dir=str(tmp_path))
  record = ladder.with_scalars(cfg, train(cfg, progress=False, save=False))
  assert "law" in record and "times" not in record
  for name, kw in [("a", dict(toy_gates=0)), ("b", dict(toy_gates=64, toy_gate_mix=4)),
                   ("c", dict(toy_gates=64, toy_gate_mix=1)),
                   ("d", dict()),  # the toy itself: the ladder's `toy` rung, not a gate rung
                   ("e", dict(toy_gates=64, mix_lower_lr_scale=0.0)),  # another phase 3
                   ("f", dict(toy_gates=64, toy_gate_mix=4, n_seeds=2))]:  # other seeds
    c = ladder_toy(**{k: v for k, v in kw.items() if k != "n_seeds"})
    if "n_seeds" in kw:
      c = c.replace(n_seeds=kw["n_seeds"])
    (tmp_path / f"{name}.json").write_text(json.dumps({"config": dataclasses.asdict(c)}))
  rungs, records, sources = ladder.leakage_rungs(str(tmp_path))
  assert [r[0] for r in rungs] == ["gates-64-k1", "gates-64-k4", "gates-row-k1"]
  assert set(records) == set(sources) == {"gates-64-k1", "gates-64-k4", "gates-row-k1"}
