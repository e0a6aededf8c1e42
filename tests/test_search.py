"""experiments/search_learned.py's table and figure, rebuilt from the committed stored points."""
import os
import shutil

from experiments import search_learned
from toy.measure import HC_FINAL, seed_values
from toy.points import SEARCH_OUT, SEARCH_STAGES
from toy.sweep import is_stored, load_point, point_path


def test_table_only_rebuilds_the_committed_table_and_draws_the_stored_points(tmp_path):
  stored = [c for cfgs in SEARCH_STAGES.values() for c in cfgs if is_stored(SEARCH_OUT, c)]
  assert len(stored) == 10  # every point of every stage is committed
  out = tmp_path / "search"
  os.makedirs(out)
  for c in stored:  # a copy: --table-only rewrites its --out folder's table
    shutil.copy(point_path(SEARCH_OUT, c), out)
  search_learned.main(["--table-only", "--out", str(out), "--figures", str(tmp_path)])
  with open(os.path.join(SEARCH_OUT, "table.md")) as want, open(out / "table.md") as got:
    assert got.read() == want.read()
  assert (tmp_path / "search.png").stat().st_size > 10_000
  # The figure's title counts these; the README says none is significantly above.
  assert not any(seed_values(load_point(SEARCH_OUT, c), HC_FINAL).mean() > 0 for c in stored)
