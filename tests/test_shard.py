"""Rows over devices: two forced CPU devices give the single-device results, rows really split.

The two-device run is a subprocess, because XLA_FLAGS must be set before jax is imported.
Its 5 rows are odd, so every phase is padded (phases 1-2 train the 3 distinct rows, 3 -> 4;
phase 3 all 5, 5 -> 6), and two rows share phases 1-2 with seeds 0 and 1 (``shared_rows``).
"""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from toy.config import make_config
from toy.engine import padded_rows, row_mesh, train_many


def configs(out_dir):
  tiny = make_config("tiny", out_dir=out_dir)
  return [tiny.replace(n_seeds=3), tiny.replace(ft_weight=0.5),
          tiny.replace(seed=1, ft_weight=0.5, run_name="b")]


TWO_DEVICES = """
import json, sys
import jax
import numpy as np
import toy
from toy import engine as E
sys.path.insert(0, {tests!r})
from test_shard import configs
toy.enable_compilation_cache()
calls = []

def record(chunk):
  ph = chunk.state  # its arrays are the next chunk's inputs, laid out as they enter it
  leaves = jax.tree.leaves([ph.params, ph.opt_state, ph.ref, ph.ref_neg, ph.state, ph.data,
                            ph.tables, ph.key, ph.hyperparams])  # every row array of the phase
  calls.append({{
      "n_rows": int(leaves[0].shape[0]),
      "specs": sorted({{tuple(x.sharding.spec) for x in leaves}}),
      "devices": sorted({{len(x.sharding.device_set) for x in leaves}}),
      "out_shard_rows": sorted({{s.data.shape[0] for x in jax.tree.leaves(ph.params)
                                 for s in x.addressable_shards}})}})

results = E.train_many(configs({out!r}), progress=False, save=True, on_chunk=record)
print(json.dumps({{"device_count": jax.device_count(), "calls": calls,
                  "summaries": [r.summary for r in results],
                  "histories": [r.history for r in results],
                  "param_rows": [int(jax.tree.leaves(r.params)[0].shape[0]) for r in results]}}))
"""


@pytest.fixture(scope="module")
def two_devices(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("runs2"))
  flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2"
  env = {**os.environ, "XLA_FLAGS": flags.strip(), "JAX_PLATFORMS": "cpu"}
  tests = os.path.dirname(os.path.abspath(__file__))
  proc = subprocess.run([sys.executable, "-c", TWO_DEVICES.format(tests=tests, out=out)],
                        env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1]), out


def test_two_devices_give_the_single_device_results(two_devices, tmp_path):
  got, out = two_devices
  assert got["device_count"] == 2 and jax.device_count() == 1
  want = train_many(configs(str(tmp_path)), progress=False, save=False)
  # padding dropped from everything returned and saved
  assert got["param_rows"] == [3, 1, 1]
  for w, summary, history in zip(want, got["summaries"], got["histories"]):
    assert [s["seed"] for s in summary] == [s["seed"] for s in w.summary]
    for a, b in zip(summary, w.summary):
      np.testing.assert_allclose([a[k] for k in b], [b[k] for k in b], atol=1e-5)
    assert [(r["seed"], r["phase"], r["step"]) for r in history] == \
        [(r["seed"], r["phase"], r["step"]) for r in w.history]
    for a, b in zip(history, w.history):
      assert a.keys() == b.keys()
      # rewards/accuracies is left out: where policy = reference (early phase 2) the rewards
      # are rounding noise, and its sign, which decides the accuracy, can differ by device
      floats = [k for k in b if isinstance(b[k], float) and "accuracies" not in k]
      np.testing.assert_allclose([a[k] for k in floats], [b[k] for k in floats], atol=1e-5)
  saved = os.path.join(out, "transformer_tiny_seed0x3", "params.npz")
  assert all(v.shape[0] == 3 for v in np.load(saved).values())


def test_two_devices_split_every_row_array(two_devices):
  calls = two_devices[0]["calls"]
  assert {c["n_rows"] for c in calls} == {4, 6}  # phases 1-2: 3 rows + 1; phase 3: 5 + 1
  for c in calls:
    assert c["specs"] == [["rows"]] and c["devices"] == [2]
    assert c["out_shard_rows"] == [c["n_rows"] // 2]  # outputs stay split, half per device


def test_one_device_pads_nothing():
  assert row_mesh() is None and row_mesh(jax.devices()[:1]) is None
  assert padded_rows(None, 3, None) is None
  assert padded_rows([0, 2], 3, None).tolist() == [0, 2]
