"""experiments/holm.py: every headline test of the README and docs is found and recomputed from
results/."""
import os

import numpy as np

from experiments import holm as H
from toy.stats import holm

ROOT = os.path.join(os.path.dirname(__file__), "..")


def test_every_test_is_found_in_the_readme_or_docs_and_traced_to_a_stored_point(tmp_path):
  out = H.main(["--out", str(tmp_path / "holm.md")])
  assert len(out) == len(H.TESTS)
  for r in out:
    assert "not found" not in r["readme"], r["test"]
    assert r["test_result"] is not None, (r["test"], r["where"])
  raw = [r["test_result"]["p"] for r in out]
  np.testing.assert_allclose([r["holm"] for r in out], holm(raw))
  text = (tmp_path / "holm.md").read_text()
  assert text.count("\n| ") == len(out) + 1  # header + one row per test


def test_locate_finds_a_sentence_across_line_breaks():
  readme = "# A\n\ntext\n## B\nsome words (p = 0.01),\nand more\n"
  assert H.locate(readme, "(p = 0.01), and more") == "line 5 (B)"
  assert H.locate(readme, "p = 0.02") == "not found"
  docs = {"README.md": "# A\n\nno p here\n", "docs/b.md": readme}
  assert H.locate(docs, "(p = 0.01), and more") == "docs/b.md line 5 (B)"
  assert H.locate(docs, "p = 0.02") == "not found"
