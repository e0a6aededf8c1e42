"""The toy's times node as m gates (toy.mechanism.Times, ``toy_gates``, ``toy_gate_mix``).

The gates keep the toy where they should (the default is the toy's scalar path, one gate is
the toy, one gate per row is ``toy_sign="per_row"``), start every row's sign at the toy's,
travel through the weights folder, and are read by toy.inspect and the diagram.
"""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from toy import data as data_lib
from toy import inspect as I
from toy import mechanism as M
from toy import mechanism_io as MIO
from toy.config import make_config
from toy.data import seed_data
from toy.engine import RunResult, apply_fn, setup, train
from toy.io import save_run
from toy.plots import draw_mechanism, row_signs

from helpers import edit_scalars_json, assert_histories_close, forward, model_inputs


def _cfg(**kw):
  return make_config("tiny", model="toy", **kw)


def _random_weights(model, seed=0):
  """A random memory on the reachable rows and random a, c: every gate matters."""
  rng = np.random.default_rng(seed)
  values = np.zeros(model.memory.values[...].shape, np.float32)
  reachable = sorted(M.trie_contexts(np.asarray(model.memory.children[...])))
  values[reachable] = rng.normal(size=(len(reachable), values.shape[1]))
  model.memory.values[...] = values
  shape = model.times.a[...].shape
  model.times.a[...] = jnp.asarray(rng.normal(size=shape), jnp.float32)
  model.times.c[...] = jnp.asarray(rng.normal(size=shape), jnp.float32)
  return model


def _code(model):
  return np.asarray(model.times.gates[...]), np.asarray(model.times.gate_weights[...])


def _one_gate_toy(cfg, data, rngs):
  """The toy with its times node run through the gated path: one gate that every row reads."""
  children = np.asarray(M.build_toy(cfg, data, rngs).memory.children[...])
  n = children.shape[0]
  code = (np.zeros((n, 1), np.int32), np.ones((n, 1), np.float32))
  return M.ToyMechanism(cfg, children, np.full(1, cfg.toy_a, np.float32),
                        np.full(1, cfg.toy_c, np.float32), cfg.toy_gain_add, code=code)


# ----------------------------------------------------------------------------- the toy kept

def test_default_is_the_toys_scalar_times_node():
  """toy_gates=1, toy_gate_mix=1 build the toy as before: scalar a and c, no code tables
  (so runs at the defaults are bitwise what they were, and their stored points keep their
  hashes)."""
  cfg = _cfg()
  model = M.build_toy(cfg, seed_data(cfg, 0))
  _, params, rest = nnx.split(model, nnx.Param, ...)
  shapes = jax.tree.map(np.shape, nnx.to_pure_dict(params))
  assert shapes["times"] == {"a": (), "c": ()}
  assert set(nnx.to_pure_dict(rest)) == {"memory"}  # the trie only
  assert not model.times.gated and not M.is_gated(cfg)


def test_one_gate_through_the_gated_path_trains_as_the_toy():
  """m = 1, k = 1 on the gated path equals the toy's scalar path up to float rounding: the
  sign is the same number, but its gradient sums over B x T positions instead of B."""
  cfg = _cfg(n_seeds=2)
  toy = train(cfg, progress=False, save=False)
  gated = train(cfg, _one_gate_toy, progress=False, save=False)
  assert gated.model(0).times.gated and gated.params["times"]["a"].shape == (2, 1)
  assert_histories_close(gated.history, toy.history, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(gated.params["times"]["c"][:, 0], toy.params["times"]["c"],
                             rtol=1e-4, atol=1e-6)


def test_one_gate_per_row_is_bitwise_per_row_sign():
  """toy_gates=0 (the identity code) trains exactly as toy_sign="per_row": same history,
  same a and c, bit for bit (the weight 1.0 and the sum over one gate are exact)."""
  per_row = train(_cfg(n_seeds=2, toy_sign="per_row"), progress=False, save=False)
  gates = train(_cfg(n_seeds=2, toy_gates=0), progress=False, save=False)
  assert gates.history == per_row.history
  for name in ("a", "c"):
    np.testing.assert_array_equal(gates.params["times"][name], per_row.params["times"][name])
  np.testing.assert_array_equal(gates.params["memory"]["values"],
                                per_row.params["memory"]["values"])


# ----------------------------------------------------------------------------- the code

@pytest.mark.parametrize("m, k", [(1, 2), (4, 1), (4, 4), (16, 3), (0, 1), (1000, 2)])
def test_every_rows_sign_starts_at_the_toys(m, k):
  """At init every row's sign is a + c*d, whatever m and k (the weights sum to 1 and every
  gate starts at a, c); each row mixes k distinct gates in 0..m-1. m = 1000 exceeds the
  rows (194 at tiny): allowed, some gates are read by no row."""
  if (m, k) == (1, 2):  # k > m is refused
    with pytest.raises(ValueError, match=r"invalid toy_gate_mix=2: allowed 1 \.\. toy_gates=1"):
      _cfg(toy_gates=m, toy_gate_mix=k)
    return
  cfg = _cfg(toy_gates=m, toy_gate_mix=k, toy_a=0.7, toy_c=1.3)
  data = seed_data(cfg, 0)
  model = M.build_toy(cfg, data)
  gates, weights = _code(model)
  n = M.n_nodes(cfg)
  assert gates.shape == weights.shape == (n, k)
  assert model.times.a[...].shape == (M.n_gates(cfg),) == ((m or n),)
  assert gates.min() >= 0 and gates.max() < (m or n)
  assert all(len(set(row)) == k for row in gates.tolist())
  np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
  if m == 0:
    np.testing.assert_array_equal(gates[:, 0], np.arange(n))
  for which, d in ((data_lib.REGULAR, 1.0), (data_lib.REVERSE, -1.0)):
    parts = forward(model, model_inputs(cfg, data["useful"], which), "parts")
    np.testing.assert_allclose(parts["s"], 0.7 + 1.3 * d, rtol=1e-6)
    np.testing.assert_allclose(row_signs(model, d), 0.7 + 1.3 * d, rtol=1e-6)


def test_the_code_comes_from_the_seeds_init_key():
  """build_toy without rngs draws the code a run of that seed draws; seeds differ."""
  cfg = _cfg(toy_gates=16, toy_gate_mix=2, seed=3, n_seeds=2)
  st = setup([cfg])
  for i, seed in enumerate(cfg.seeds):
    own = M.build_toy(cfg.replace(seed=seed), seed_data(cfg, seed))
    np.testing.assert_array_equal(_code(own)[0], np.asarray(st.state["times"]["gates"][i]))
  assert not np.array_equal(st.state["times"]["gates"][0], st.state["times"]["gates"][1])


@pytest.mark.parametrize("kw", [dict(toy_gates=4, toy_gate_mix=2), dict(toy_gates=0),
                                dict(toy_sign="per_row"),
                                dict(toy_gates=8, toy_gate_mix=3, toy_combine="sum")])
def test_forward_matches_the_numpy_reference(kw):
  cfg = _cfg(**kw)
  data = seed_data(cfg, 0)
  model = _random_weights(M.build_toy(cfg, data))
  code = _code(model) if model.times.gated else None
  scalars = {"a": np.asarray(model.times.a[...]), "c": np.asarray(model.times.c[...]),
             **model.other_scalars()}
  queries = np.concatenate([data["useful"], data["control"]])
  for which in (data_lib.REGULAR, data_lib.REVERSE, data_lib.NEUTRAL):
    tokens = model_inputs(cfg, queries, which)
    want = M.numpy_apply(scalars, model.memory.values[...], model.memory.children[...],
                         tokens, cfg.toy_combine, code)
    np.testing.assert_allclose(forward(model, tokens), want, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- files

def test_gate_code_round_trips_and_a_hand_edit_moves_rows(tmp_path):
  cfg = _cfg(toy_gates=4, toy_gate_mix=2)
  data = seed_data(cfg, 0)
  model = _random_weights(M.build_toy(cfg, data))
  folder = MIO.save_weights(model, str(tmp_path / "w"), saved_with={"seed": 0})
  assert sorted(os.listdir(folder)) == ["children.npy", "contexts.txt", "gate_weights.npy",
                                        "gates.npy", "memory.npy", "scalars.json",
                                        "times_a.npy", "times_c.npy"]
  tokens = model_inputs(cfg, data["heldout"], data_lib.REVERSE)
  loaded = MIO.build_toy(cfg.replace(toy_weights=folder), data)
  for got, want in zip(_code(loaded), _code(model)):
    np.testing.assert_array_equal(got, want)
  np.testing.assert_array_equal(forward(loaded, tokens), forward(model, tokens))

  # a person moves every row to gate 0 alone and sets that gate's sign by hand
  n = M.n_nodes(cfg)
  np.save(os.path.join(folder, MIO.GATES_FILE), np.zeros((n, 2), np.int32))
  np.save(os.path.join(folder, MIO.GATE_WEIGHTS_FILE), np.tile([[1.0, 0.0]], (n, 1)))
  a = np.load(os.path.join(folder, MIO.TIMES_A_FILE))
  a[0] = 0.25
  np.save(os.path.join(folder, MIO.TIMES_A_FILE), a)
  c = np.load(os.path.join(folder, MIO.TIMES_C_FILE))
  c[0] = 2.0
  np.save(os.path.join(folder, MIO.TIMES_C_FILE), c)
  edited = MIO.build_toy(cfg.replace(toy_weights=folder), data)
  parts = forward(edited, tokens, "parts")
  np.testing.assert_allclose(parts["s"], 0.25 - 2.0, rtol=1e-6)  # "reverse": d = -1
  readout = forward(model, tokens, "parts")["readout"]
  A = cfg.alphabet_size
  np.testing.assert_allclose(forward(edited, tokens)[..., :A], (0.25 - 2.0) * readout,
                             rtol=1e-5, atol=1e-6)
  # a command-line a overrides every gate's
  overridden = MIO.build_toy(cfg.replace(toy_weights=folder, toy_a=3.0), data)
  np.testing.assert_array_equal(np.asarray(overridden.times.a[...]), 3.0)


def test_per_row_signs_are_saved_too(tmp_path):
  cfg = _cfg(toy_sign="per_row")
  data = seed_data(cfg, 0)
  model = _random_weights(M.build_toy(cfg, data))
  folder = MIO.save_weights(model, str(tmp_path / "w"))
  assert MIO.GATES_FILE not in os.listdir(folder)
  loaded = MIO.build_toy(cfg.replace(toy_weights=folder), data)
  np.testing.assert_array_equal(np.asarray(loaded.times.c[...]), np.asarray(model.times.c[...]))


@pytest.mark.parametrize("corrupt, message", [
    (lambda f: np.save(os.path.join(f, MIO.GATES_FILE), np.full((194, 2), 4, np.int32)),
     r"gates.npy: gate ids must lie in 0..3"),
    (lambda f: np.save(os.path.join(f, MIO.GATES_FILE), np.zeros((194, 2), np.float32)),
     r"gates.npy: dtype float32, expected integers"),
    (lambda f: np.save(os.path.join(f, MIO.GATES_FILE), np.zeros((194, 3), np.int32)),
     r"gates.npy: shape \(194, 3\) does not match the config: expected \(n_nodes, "
     r"toy_gate_mix\) = \(194, 2\)"),
    (lambda f: np.save(os.path.join(f, MIO.GATE_WEIGHTS_FILE), np.full((194, 2), np.nan)),
     r"gate_weights.npy: non-finite value nan at row 0, entry 0"),
    (lambda f: os.remove(os.path.join(f, MIO.GATES_FILE)), r"gates.npy: file not found"),
    (lambda f: np.save(os.path.join(f, MIO.TIMES_A_FILE), np.zeros(5, np.float32)),
     r"times_a.npy: shape \(5,\) does not match the config: expected \(n_gates,\) = \(4,\)"),
    (lambda f: np.save(os.path.join(f, MIO.TIMES_C_FILE), np.full(4, np.inf, np.float32)),
     r"times_c.npy: non-finite value inf at entry 0"),
    (lambda f: edit_scalars_json(f, lambda s: s.__setitem__("c", 1.0)),
     r"'c' is a vector for this times node: edit times_c.npy"),
    (lambda f: edit_scalars_json(f, lambda s: s["times"].__setitem__("toy_gates", 8)),
     r"scalars.json: written for another times node \(toy_sign='shared', toy_gates=8, "
     r"toy_gate_mix=2\) than the config's \(toy_sign='shared', toy_gates=4, toy_gate_mix=2\)"),
])
def test_bad_gate_files_name_what_is_wrong(tmp_path, corrupt, message):
  cfg = _cfg(toy_gates=4, toy_gate_mix=2)
  data = seed_data(cfg, 0)
  folder = MIO.save_weights(M.build_toy(cfg, data), str(tmp_path / "w"))
  MIO.load_weights(folder, cfg)  # the untouched folder loads
  corrupt(folder)
  with pytest.raises(ValueError, match=message):
    MIO.build_toy(cfg.replace(toy_weights=folder), data)


@pytest.mark.parametrize("saved, loading", [
    (dict(), dict(toy_gates=4)), (dict(toy_gates=4), dict()),
    (dict(toy_gates=0), dict(toy_sign="per_row")), (dict(toy_gates=4), dict(toy_gates=4,
                                                                             toy_gate_mix=2))])
def test_weights_of_another_times_node_are_refused(tmp_path, saved, loading):
  cfg = _cfg(**saved)
  data = seed_data(cfg, 0)
  folder = MIO.save_weights(M.build_toy(cfg, data), str(tmp_path / "w"))
  with pytest.raises(ValueError, match=r"scalars.json: written for another times node"):
    MIO.build_toy(_cfg(**loading, toy_weights=folder), data)


def test_scalars_of_a_gated_toy_say_where_a_and_c_are():
  model = M.build_toy(_cfg(toy_gates=4), seed_data(_cfg(), 0))
  with pytest.raises(ValueError, match="one per gate"):
    model.scalars()
  assert set(model.other_scalars()) == {"gain_add", "direction"}


# ----------------------------------------------------------------------------- config

@pytest.mark.parametrize("kw, message", [
    (dict(toy_gates=-1), r"invalid toy_gates=-1: allowed an integer >= 0"),
    (dict(toy_gate_mix=0), r"invalid toy_gate_mix=0: allowed 1 \.\. toy_gates=1"),
    (dict(toy_gates=4, toy_gate_mix=5), r"invalid toy_gate_mix=5: allowed 1 \.\. toy_gates=4"),
    (dict(toy_gates=0, toy_gate_mix=2), r"invalid toy_gate_mix=2: allowed 1 with toy_gates=0"),
    (dict(toy_gates=4, toy_sign="per_row"),
     r"invalid toy_gates=4: allowed 1 \(and toy_gate_mix 1\) with toy_sign='per_row'"),
    (dict(toy_gates=4, model="transformer"),
     r"invalid toy_gates=4: allowed 1 \(and toy_gate_mix 1\) unless model='toy'"),
])
def test_bad_gate_settings_are_refused_in_one_line_naming_the_field(kw, message):
  model = kw.pop("model", "toy")
  with pytest.raises(ValueError, match=message) as info:
    make_config("tiny", model=model, **kw)
  assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- inspect, diagram

def _stacked_gates(**kw):
  cfg = _cfg(n_seeds=2, toy_c=2.0, **kw)
  st = setup([cfg])
  rng = np.random.default_rng(0)
  params = dict(st.params)
  shape = params["memory"]["values"].shape
  params["memory"] = {"values": jnp.asarray(rng.normal(size=shape), jnp.float32)}
  return RunResult(cfg, [], [], st.graphdef, params, st.state, st.data, apply_fn(st.graphdef),
                   None)


@pytest.mark.parametrize("kw", [dict(toy_gates=4, toy_gate_mix=2), dict(toy_sign="per_row")])
def test_inspect_reads_a_sign_per_position(kw):
  result = _stacked_gates(**kw)
  model = result.model(0)
  data = I._seed_data(result, 0)
  tokens = data_lib.model_inputs(result.cfg, jnp.asarray(data["useful"][:8]), data_lib.REVERSE)
  _, cache = I.run_with_cache(model, tokens)
  B, T = tokens.shape
  assert cache["times.hook_s"].shape == (B, T)
  if model.times.gated:
    assert cache["times.hook_gates"].shape == (B, T, 2)
  else:
    assert "times.hook_gates" not in cache
  direction = I.prefix_direction(result)
  assert direction["layers"] == ["prefix", "times"]
  np.testing.assert_allclose(direction["norm"][:, 1], 4.0, rtol=1e-5)  # every row: 2c at init
  law = I.component_law(result)
  np.testing.assert_allclose(law["times"]["G"], 1.0, rtol=1e-4)  # every gate still a, c


def test_diagram_labels_the_gates(tmp_path):
  cfg = _cfg(toy_gates=4, toy_gate_mix=2)
  model = _random_weights(M.build_toy(cfg, seed_data(cfg, 0)))
  path = draw_mechanism(model, str(tmp_path / "gates.png"))
  assert os.path.getsize(path) > 10_000


def test_a_run_folder_keeps_the_code_it_ran_with(tmp_path):
  """A code edited by hand is not what the seed draws: the run folder stores it
  (tables.npz) and load_run reads it back instead of redrawing."""
  result = _stacked_gates(toy_gates=4, toy_gate_mix=2)
  result.cfg = result.cfg.replace(out_dir=str(tmp_path))
  edited = np.zeros_like(np.asarray(result.state["times"]["gates"]))
  edited[:, 1] = 3
  result.state = {**result.state, "times": {**result.state["times"], "gates": jnp.asarray(edited)}}
  loaded = I.load_run(save_run(result))
  np.testing.assert_array_equal(np.asarray(loaded.state["times"]["gates"]), edited)
  np.testing.assert_array_equal(np.asarray(loaded.params["memory"]["values"]),
                                np.asarray(result.params["memory"]["values"]))
