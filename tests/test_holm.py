"""experiments/holm.py: every headline test of the README and docs is found and recomputed from
results/."""
import os

import numpy as np

from experiments import holm as H
from toy.stats import holm, paired_row

ROOT = os.path.join(os.path.dirname(__file__), "..")


def test_every_test_is_found_in_the_readme_or_docs_and_traced_to_a_stored_point(tmp_path):
  out = H.main(["--out", str(tmp_path / "holm.md"), "--figure", str(tmp_path / "holm.png")])
  assert len(out) == len(H.TESTS)
  for r in out:
    assert "not found" not in r["readme"], r["test"]
    assert r["test_result"] is not None, (r["test"], r["where"])
  raw = [r["test_result"]["p"] for r in out]
  np.testing.assert_allclose([r["holm"] for r in out], holm(raw))
  text = (tmp_path / "holm.md").read_text()
  assert text.count("\n| ") == len(out) + 1  # header + one row per test
  assert (tmp_path / "holm.png").stat().st_size > 10_000


def test_locate_finds_a_sentence_across_line_breaks():
  readme = "# A\n\ntext\n## B\nsome words (p = 0.01),\nand more\n"
  assert H.locate(readme, "(p = 0.01), and more") == "line 5 (B)"
  assert H.locate(readme, "p = 0.02") == "not found"
  docs = {"README.md": "# A\n\nno p here\n", "docs/b.md": readme}
  assert H.locate(docs, "(p = 0.01), and more") == "docs/b.md line 5 (B)"
  assert H.locate(docs, "p = 0.02") == "not found"


def test_a_difference_pairs_the_same_seeds_and_a_pool_takes_disjoint_ones(monkeypatch):
  def point(seeds, x):
    return {"summary": [{"seed": s, "x": v, "y": 1.0} for s, v in zip(seeds, x)]}
  points = {"a": point([0, 1], [0.0, 1.0]), "b": point([0, 1], [2.0, 4.0]),
            "c": point([2, 3], [5.0, 6.0])}
  monkeypatch.setattr(H, "record", lambda source: (points[source[1]], source[1]))
  a, b, c = ("p", "a"), ("p", "b"), ("p", "c")
  seeds, values, where = H.per_seed(("diff", a, b), "x")
  assert seeds == [0, 1] and values.tolist() == [-2.0, -3.0] and where == "a − b"
  assert H.per_seed(a, "x − y")[1].tolist() == [-1.0, 0.0]  # two keys of one point
  assert H.per_seed(("diff", a, c), "x")[1] is None  # seeds 0-1 against 2-3: not paired
  seeds, values, _ = H.per_seed(("pooled", a, c), "x")
  assert seeds == [0, 1, 2, 3] and values.tolist() == [0.0, 1.0, 5.0, 6.0]
  assert H.per_seed(("pooled", a, b), "x")[1] is None  # the same seeds twice
  assert H.per_seed(a, "z")[2] == "a has no z"


def test_differences_pools_and_placebos_rewrite_the_scripts_own_paired_rows():
  """holm.py's per-seed values give the rows acquired.py and long_passwords.py wrote from the
  same stored points."""
  cases = [("acquired.md", "acquired − sham", "0–7", H.acq_diff("acquired", "sham"), H.HC_FINAL),
           ("acquired.md", "acquired − sham", "0–15 pooled",
            H.both_blocks(lambda seed: H.acq_diff("acquired", "sham", seed)), H.HC_FINAL),
           ("acquired.md", "acquired: held-out − placebo", "8–15", H.acq("acquired", 8),
            H.HP_FINAL),
           ("long_passwords.md", "lever − scratch", "0–7", ("diff", H.lp("lever"),
                                                            H.lp("scratch")), H.HC_FINAL)]
  for md, name, seeds, source, key in cases:
    _, values, where = H.per_seed(source, key)
    assert values is not None, where
    with open(os.path.join(ROOT, "results", md)) as f:
      assert paired_row(name, seeds, values) in f.read(), (md, name, seeds)


def test_a_difference_key_is_the_per_seed_difference_of_its_two_keys():
  from toy.measure import HC_FINAL, HP_FINAL, PC_FINAL, record_values
  record = {"summary": [{HC_FINAL: 0.5, PC_FINAL: 0.25}, {HC_FINAL: -1.0, PC_FINAL: 0.5}]}
  np.testing.assert_array_equal(record_values(record, HP_FINAL), [0.25, -1.5])
  # a point stored before the placebo set existed has no difference either
  assert record_values({"summary": [{HC_FINAL: 0.5}]}, HP_FINAL) is None
