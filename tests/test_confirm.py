"""experiments/confirm.py: the headline points on unseen seeds, read from stored points."""
import dataclasses
import os

from experiments import confirm

ROOT = os.path.join(os.path.dirname(__file__), "..")


def test_every_point_is_stored_on_both_seed_sets_and_differs_only_in_its_seed():
  folders = tuple(os.path.join(ROOT, f) for f in (confirm.OUT, *confirm.ALSO_READ))
  for label, _, _, cfg in confirm.POINTS:
    later = confirm.confirm_config(cfg)
    assert (cfg.seed, later.seed, later.n_seeds) == (0, confirm.CONFIRM, cfg.n_seeds)
    a, b = dataclasses.asdict(cfg), dataclasses.asdict(later)
    assert {k for k in a if a[k] != b[k]} == {"seed"}, label
    for c in (cfg, later):
      record = confirm.find(c, folders)
      assert record is not None, (label, c.seed)
      assert record["config"]["seed"] == c.seed and len(record["summary"]) == 8


def test_plot_only_rewrites_the_committed_table(tmp_path, monkeypatch):
  monkeypatch.chdir(ROOT)
  md = tmp_path / "confirm.md"
  confirm.main(["--plot-only", "--md", str(md), "--figures", str(tmp_path)])
  body = lambda text: text[text.index("cpu preset"):]  # the header names the command's flags
  with open(confirm.MD) as f:
    assert body(md.read_text()) == body(f.read())
  assert (tmp_path / "confirm.png").exists()


def test_a_verdict_follows_its_claim():
  up = {"summary": [{confirm.HEADLINE: v} for v in (0.2, 0.3, 0.25, 0.22)]}
  down = {"summary": [{confirm.HEADLINE: v} for v in (-0.2, -0.3, -0.25, -0.22)]}
  assert "**Confirmed**" in confirm.verdict("x", "> 0", up, up)
  assert "**Not confirmed**" in confirm.verdict("x", "> 0", up, down)
  assert "**Confirmed**" in confirm.verdict("x", "not > 0", down, down)
  assert "**Not confirmed**" in confirm.verdict("x", "not > 0", down, up)
