"""toy.inspect on both models: stable cache names, hooks that change nothing, attributions that
sum to the centred target logit, the toy's component law and self-patching.
experiments/inspect_flip.py's end-to-end run is in test_toy_vs_learned.py: it inspects the
runs that toy_vs_learned.py saved, as a user would."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from toy import data as data_lib
from toy import inspect as I
from toy.config import make_config
from toy.convert import PythiaTask
from toy.engine import RunResult, apply_fn, setup
from toy.measure import law_slopes
from toy.phases import centred_target_logits



def _stacked(model="transformer", n_seeds=2, a=1.0, c=0.0, gain=0.0, combine="times"):
  """Untrained seed-stacked models dressed as a RunResult. The transformer's final LayerNorm
  and biases are randomised so that every part of the attribution matters; the toy gets a
  random memory and hand-set a, c, gain (as tests/test_toy_vs_learned.py::_toy_result)."""
  cfg = make_config("tiny", model=model, n_seeds=n_seeds, toy_a=a, toy_c=c, toy_gain_add=gain,
                    toy_combine=combine)
  st = setup([cfg])
  graphdef, params, state = st.graphdef, st.params, st.state
  rng = np.random.default_rng(0)
  if model == "toy":
    shape = params["memory"]["values"].shape
    params["memory"]["values"] = jnp.asarray(rng.normal(size=shape), jnp.float32)
  else:
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: x + jnp.asarray(0.3 * rng.normal(size=x.shape), x.dtype)
        if "bias" in str(path) or "final_ln" in str(path) else x, params)
  return RunResult(cfg, [], [], graphdef, params, state, st.data, apply_fn(graphdef), None)


def _tokens(result, i=0, prefix=data_lib.REVERSE):
  data = I._seed_data(result, i)
  pws = jnp.asarray(np.concatenate([data["useful"][:8], data["heldout"][:8]]))
  return data_lib.model_inputs(result.cfg, pws, prefix), pws


def test_transformer_cache_names_are_stable():
  result = _stacked()
  assert result.cfg.n_layers == 2
  _, cache = I.run_with_cache(result.model(0), _tokens(result)[0])
  per_block = ["hook_resid_pre", "attn.hook_pattern", "hook_attn_out", "mlp.hook_post",
               "hook_mlp_out", "hook_resid_post"]
  assert set(cache) == {"hook_embed", "ln_final.hook_scale",
                        *[f"blocks.{i}.{name}" for i in range(2) for name in per_block]}
  B, T, Dm = 16, result.cfg.password_len, result.cfg.d_model
  assert cache["blocks.1.attn.hook_pattern"].shape == (B, result.cfg.n_heads, T, T)
  assert cache["blocks.0.mlp.hook_post"].shape == (B, T, 4 * Dm)
  assert cache["ln_final.hook_scale"].shape == (B, T, 1)
  np.testing.assert_array_equal(cache["blocks.1.hook_resid_pre"], cache["blocks.0.hook_resid_post"])


@pytest.mark.parametrize("combine", ["times", "sum"])
def test_toy_cache_names_are_stable(combine):
  result = _stacked("toy", combine=combine)
  _, cache = I.run_with_cache(result.model(0), _tokens(result)[0])
  names = {"prefix.hook_sign", "times.hook_s", "memory.hook_keys", "memory.hook_readout",
           "times.hook_out", "additive.hook_out"}
  assert set(cache) == (names | {"memory.hook_out"} if combine == "sum" else names)


def test_the_hook_table_is_what_the_models_record():
  """Every variant's cache holds only names of ``I.HOOKS`` with the rank its shape gives, and
  together the variants record every name there."""
  variants = {"transformer": [{}, {"times_node": True}],
              "toy": [{}, {"toy_combine": "sum"}, {"toy_sign": "per_row"},
                      {"toy_gates": 4, "toy_gate_mix": 2}]}
  for model, overrides in variants.items():
    table, seen = I.HOOKS[model], set()
    for kw in overrides:
      cfg = make_config("tiny", model=model, n_seeds=1, **kw)
      st = setup([cfg])
      result = RunResult(cfg, [], [], st.graphdef, st.params, st.state, st.data,
                         apply_fn(st.graphdef), None)
      _, cache = I.run_with_cache(result.model(0), _tokens(result)[0])
      for name, value in cache.items():
        entry = name if name in table else ".".join(["blocks", "{i}", *name.split(".")[2:]])
        assert entry in table, (model, kw, name)
        ranks = [len(shape.split(" x ")) for shape in table[entry][0].split(" or ")]
        assert np.ndim(value) in ranks, (model, kw, name, np.shape(value))
        seen.add(entry)
    assert seen == set(table), model


@pytest.mark.parametrize("model", ["transformer", "toy", "pythia_task"])
def test_hooks_none_forward_is_bitwise_the_cache_filling_forward(model):
  result = _stacked("toy" if model == "toy" else "transformer", c=2.0, gain=0.3)
  net = result.model(0)
  if model == "pythia_task":  # the adapter's forward is the transformer's trunk
    net = PythiaTask(net, np.arange(result.cfg.alphabet_size + 3)[::-1].copy())
  tokens = _tokens(result)[0]
  logits, cache = I.run_with_cache(net, tokens)
  assert cache
  np.testing.assert_array_equal(np.asarray(net(tokens)), np.asarray(logits))
  graphdef, state = nnx.split(net)

  def forward(state, tokens, hooked):
    cache = {} if hooked else None
    return nnx.merge(graphdef, state)(tokens, hooks=cache), cache

  plain = jax.jit(lambda s, t: forward(s, t, False)[0])(state, tokens)
  hooked, jit_cache = jax.jit(lambda s, t: forward(s, t, True))(state, tokens)
  np.testing.assert_array_equal(np.asarray(plain), np.asarray(hooked))
  assert set(jit_cache) == set(cache)


@pytest.mark.parametrize("model", ["transformer", "toy", "toy_sum", "pythia_task"])
def test_attribution_parts_sum_to_the_centred_target_logit(model):
  kind = "toy" if model.startswith("toy") else "transformer"
  result = _stacked(kind, c=2.0, gain=0.7, combine="sum" if model == "toy_sum" else "times")
  net = result.model(0)
  if model == "pythia_task":
    net = PythiaTask(net, np.arange(result.cfg.alphabet_size + 3)[::-1].copy())
  tokens, targets = _tokens(result)
  parts = I.attribute(net, tokens, targets, result.cfg.alphabet_size)
  assert set(parts) == set(I.attribution_components(net)) | {"total"}
  summed = sum(v for k, v in parts.items() if k != "total")
  np.testing.assert_allclose(np.asarray(summed), np.asarray(parts["total"]), atol=1e-4, rtol=0)
  assert float(jnp.abs(parts["total"]).max()) > 0.1  # a real signal, not 0 = 0
  if kind == "transformer":  # every part is used (no part is identically zero)
    assert all(float(jnp.abs(v).max()) > 1e-3 for v in parts.values())
  # the total is the engine's own centred target logit (per password, mean over tokens)
  engine = centred_target_logits(result.cfg, lambda p, r, t: net(t), None, None, [targets],
                                 [data_lib.REVERSE])[0]
  np.testing.assert_allclose(np.asarray(parts["total"].mean(-1)), np.asarray(engine), atol=1e-5)


def test_seed_stacked_attribution_sums_for_every_seed_set_and_prefix():
  result = _stacked()
  attr = I.attribution(result)
  assert set(attr) == {(s, p) for s in I.LAW_SETS for p in I.PREFIXES}
  for parts in attr.values():
    assert parts["total"].shape == (2, result.cfg.n_useful) or parts["total"].shape == (
        2, result.cfg.n_heldout)
    summed = sum(v for k, v in parts.items() if k != "total")
    np.testing.assert_allclose(summed, parts["total"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("a, c, gain", [(1.0, 0.0, 0.0), (1.0, 3.0, 0.0), (0.5, 2.0, 0.7)])
def test_toy_component_law_is_the_sign_ratio(a, c, gain):
  result = _stacked("toy", a=a, c=c, gain=gain)
  law = I.component_law(result)
  ratio = (a - c + gain) / (a + c + gain)
  for s in I.LAW_SETS:
    # with gain 0 the times node carries everything: its law is the whole model's
    np.testing.assert_allclose(law["total"][f"slope/{s}"], ratio, rtol=1e-5)
    np.testing.assert_allclose(law["times"][f"slope/{s}"], (a - c) / (a + c), rtol=1e-5)
    if gain:  # the additive path is not flipped: slope 1
      np.testing.assert_allclose(law["additive"][f"slope/{s}"], 1.0, rtol=1e-5)
    else:
      assert np.all(np.isnan(law["additive"][f"slope/{s}"]))  # contributes nothing
    # shares add up to the law slope
    np.testing.assert_allclose(law["times"][f"share/{s}"] + law["additive"][f"share/{s}"],
                               law["total"][f"slope/{s}"], rtol=1e-5)
  np.testing.assert_allclose(law["times"]["G"], 1.0, rtol=1e-5)
  np.testing.assert_allclose(law["total"]["G"], 1.0, rtol=1e-5)
  np.testing.assert_allclose(law["total"]["slope/useful"], law_slopes(result)["useful"],
                             rtol=1e-5)


def test_transformer_component_shares_add_up_to_the_law_slope():
  result = _stacked()
  law = I.component_law(result)
  slopes = law_slopes(result)
  for s in I.LAW_SETS:
    shares = sum(row[f"share/{s}"] for comp, row in law.items() if comp != "total")
    np.testing.assert_allclose(shares, law["total"][f"slope/{s}"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(law["total"][f"slope/{s}"], slopes[s], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("model", ["transformer", "toy"])
def test_patching_a_component_with_itself_changes_nothing(model):
  result = _stacked(model, c=2.0, gain=0.4)
  net = result.model(0)
  tokens = _tokens(result)[0]
  logits, cache = I.run_with_cache(net, tokens)
  for comp, hook in I.patch_components(net).items():
    patched = net(tokens, ablate={comp: cache[hook]})
    np.testing.assert_array_equal(np.asarray(patched), np.asarray(logits))
  same = I.patching(result, directions=(("reverse", "reverse"), ("regular", "regular")))
  for (comp, _), row in same.items():
    if comp != "clean":
      assert all(np.all(v == 0) for v in row.values()), comp


def test_ablate_true_still_zeroes_and_an_array_replaces():
  result = _stacked()
  net = result.model(0)
  tokens = _tokens(result)[0]
  _, cache = I.run_with_cache(net, tokens, ablate={"blocks.0.attn": True})
  assert not np.any(np.asarray(cache["blocks.0.hook_attn_out"]))
  zeros = jnp.zeros_like(cache["blocks.0.hook_attn_out"])
  np.testing.assert_array_equal(np.asarray(net(tokens, ablate={"blocks.0.attn": True})),
                                np.asarray(net(tokens, ablate={"blocks.0.attn": zeros})))
  doubled = net(tokens, ablate={"embed": lambda x: 2 * x})
  assert not np.allclose(np.asarray(doubled), np.asarray(net(tokens)))


def test_patching_the_toys_times_node_across_prefixes_flips_it():
  result = _stacked("toy", a=1.0, c=3.0)
  net = result.model(0)
  regular, _ = _tokens(result, prefix=data_lib.REGULAR)
  reverse, _ = _tokens(result, prefix=data_lib.REVERSE)
  reg_logits, reg_cache = I.run_with_cache(net, regular)
  for comp in ("times", "prefix"):
    hook = I.patch_components(net)[comp]
    np.testing.assert_allclose(np.asarray(net(reverse, ablate={comp: reg_cache[hook]})),
                               np.asarray(reg_logits), atol=1e-6)
  out = I.patching(result)
  assert np.all(out[("memory", "regular->reverse")]["heldout_minus_control"] == 0)
  np.testing.assert_allclose(out[("times", "regular->reverse")]["heldout"],
                             out[("clean", "regular")]["heldout"]
                             - out[("clean", "reverse")]["heldout"], atol=1e-5)


def test_prefix_direction_of_the_toy_and_shapes_for_the_transformer():
  toy_dir = I.prefix_direction(_stacked("toy", a=1.0, c=3.0))
  assert toy_dir["layers"] == ["prefix", "times"]
  np.testing.assert_allclose(toy_dir["norm"][:, 0], 2.0)  # d = +1 vs -1
  np.testing.assert_allclose(toy_dir["norm"][:, 1], 6.0)  # s = a + c d: 2c
  np.testing.assert_array_equal(toy_dir["probe_accuracy"], 1.0)
  result = _stacked()
  d = I.prefix_direction(result)
  S, L, T = 2, result.cfg.n_layers, result.cfg.password_len
  assert d["layers"] == ["embed", "blocks.0", "blocks.1"] and d["upper_blocks"] == [1]
  assert d["norm"].shape == d["probe_accuracy"].shape == (S, L + 1, T)
  assert d["cos_max"].shape == (S, 1, T)
  assert np.all(d["cos_max"] >= d["cos_mean"]) and np.all(d["cos_max"] <= 1 + 1e-9)
  np.testing.assert_array_equal(d["norm"][:, 0, 1:], 0.0)  # letters embed alike under both
  np.testing.assert_array_equal(d["probe_accuracy"][:, :, 0], 1.0)  # position 0: the prefix
