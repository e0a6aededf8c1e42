"""One-way imports: the toy package's modules import each other down a fixed order of floors,
never up and never in a circle. Read from the source (``ast``), imports inside functions
included, so that a lazy import cannot hide a circle."""
import ast
import os

TOY = os.path.join(os.path.dirname(__file__), "..", "toy")

# From the ground up; a module may import modules on its own floor or below.
FLOORS = (
    # the ground: a run's configuration, its data, the losses, the statistics, row layout
    ("toy", "toy.config", "toy.data", "toy.losses", "toy.stats", "toy.rows"),
    # the models: the learned transformer, checkpoints, the toy and its weight files
    ("toy.model", "toy.hf_params", "toy.convert", "toy.mechanism", "toy.mechanism_io"),
    # the scripts' command line: flags -> a config, its checkpoint folder checked
    ("toy.cli",),
    # what a run starts from and what a phase does; the files a run writes and reads back
    # (below the engine: train_many(save=True) writes the run folder)
    ("toy.setup", "toy.phases", "toy.optim", "toy.io"),
    ("toy.engine",),
    # sweeps, the stored sweeps' points and the columns of toy_vs_learned.py
    ("toy.sweep", "toy.points", "toy.columns"),
    # what is read off trained runs and stored points, and the figures
    ("toy.measure", "toy.inspect", "toy.plots"),
)


def _modules() -> dict[str, str]:
  """{module name: path} of every toy/*.py."""
  out = {}
  for name in sorted(os.listdir(TOY)):
    if name.endswith(".py"):
      module = "toy" if name == "__init__.py" else f"toy.{name[:-3]}"
      out[module] = os.path.join(TOY, name)
  return out


def _imports(path: str, modules) -> set[str]:
  """The toy modules that the file at ``path`` imports, anywhere in it."""
  with open(path) as f:
    tree = ast.parse(f.read(), path)
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
      assert node.level == 0, f"{path}: a relative import"
      base = node.module or ""
      # `from toy import data`: the module toy.data; `from toy.config import Config`: toy.config
      names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
    else:
      continue
    for name in names:
      while name and name not in modules and "." in name:  # `import toy.x.y` -> toy.x
        name = name.rsplit(".", 1)[0]
      if name in modules:
        found.add(name)
  return found


def _graph() -> dict[str, set[str]]:
  modules = _modules()
  return {m: _imports(path, modules) - {m} for m, path in modules.items()}


def test_every_module_has_a_floor():
  placed = [m for floor in FLOORS for m in floor]
  assert len(placed) == len(set(placed))
  assert set(placed) == set(_modules()), "place a new module on a floor in FLOORS"


def test_no_module_imports_one_on_a_floor_above():
  floor_of = {m: i for i, floor in enumerate(FLOORS) for m in floor}
  upward = {(m, dep) for m, deps in _graph().items() for dep in deps
            if floor_of[dep] > floor_of[m]}
  assert upward == set()


def test_the_ground_floor_imports_only_the_ground_floor():
  graph = _graph()
  for m in ("toy.config", "toy.data", "toy.losses", "toy.stats"):
    assert graph[m] <= set(FLOORS[0]), m


def test_the_imports_have_no_circle():
  graph = _graph()
  done, on_path = set(), []

  def visit(m):
    if m in on_path:
      raise AssertionError("import circle: " + " -> ".join(on_path[on_path.index(m):] + [m]))
    if m in done:
      return
    on_path.append(m)
    for dep in sorted(graph[m]):
      visit(dep)
    on_path.pop()
    done.add(m)

  for m in sorted(graph):
    visit(m)


def test_the_parser_sees_imports_inside_functions():
  graph = _graph()
  assert "toy.convert" in graph["toy.setup"]  # build_model imports it where it is needed
  assert "toy.mechanism" in graph["toy.plots"]  # draw_mechanism imports it where it is needed


# ----------------------------------------------------------------------------- the scripts

ROOT = os.path.join(os.path.dirname(__file__), "..")
SCRIPT_DIRS = ("experiments", "benchmarks")
# No script edits sys.path. One script reuses another's code, as a package module and run with
# ``python -m``: race.py takes bench_steps.py's eager-torch loop, which stays out of toy
# because toy does not depend on torch.
KNOWN_PATH_EDITS: set = set()
KNOWN_PACKAGE_IMPORTS = {("benchmarks/race.py", "benchmarks.bench_steps")}


def _python_files(*folders) -> dict[str, ast.Module]:
  """{path relative to the repository root: parsed source} of every .py in ``folders``."""
  out = {}
  for folder in folders:
    for name in sorted(os.listdir(os.path.join(ROOT, folder))):
      if name.endswith(".py"):
        with open(os.path.join(ROOT, folder, name)) as f:
          out[f"{folder}/{name}"] = ast.parse(f.read(), name)
  return out


def test_nothing_loads_a_module_by_its_file_path():
  """What a test or a script needs from a script is in toy, or is imported as a package
  module (``from experiments import partial``), never loaded from a file path."""
  by_path = {"spec_from_file_location", "SourceFileLoader", "run_path"}
  edits = set()
  for path, tree in _python_files("tests", *SCRIPT_DIRS).items():
    for node in ast.walk(tree):
      name = getattr(node, "attr", None) or getattr(node, "id", None)
      assert name not in by_path, f"{path} loads a module by its path ({name})"
      if (isinstance(node, ast.Attribute) and node.attr in ("insert", "append")
          and isinstance(node.value, ast.Attribute) and node.value.attr == "path"
          and getattr(node.value.value, "id", None) == "sys"):
        edits.add(path)
  assert edits == KNOWN_PATH_EDITS


def test_a_script_imports_another_only_as_a_package_module():
  """A bare ``import bench_steps`` works only from the script's own folder (sys.path[0]), so
  it is forbidden; ``from benchmarks import bench_steps`` is listed, and its script runs with
  ``python -m``."""
  files = _python_files(*SCRIPT_DIRS)
  scripts = {os.path.basename(p)[:-3] for p in files}
  bare, package = set(), set()
  for path, tree in files.items():
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom):
        assert node.level == 0, f"{path}: a relative import"
        names = [f"{node.module}.{a.name}" if node.module in SCRIPT_DIRS else node.module
                 for a in node.names]
      else:
        continue
      bare |= {(path, n) for n in names if n.split(".")[0] in scripts}
      package |= {(path, n) for n in names if n.split(".")[0] in SCRIPT_DIRS}
  assert not bare, f"scripts imported by a bare name: {sorted(bare)}"
  assert package == KNOWN_PACKAGE_IMPORTS
  for path, _ in package:
    with open(os.path.join(ROOT, path)) as f:
      module = path[:-3].replace("/", ".")
      assert f"python -m {module}" in f.read(), f"{path} must say it runs as python -m {module}"


# The second redesign's caps: a newcomer reads the loop and the README in one sitting.
SIZE_CAPS = {"toy/engine.py": 350, "README.md": 350}


def test_the_loop_and_the_readme_stay_within_their_caps():
  for path, cap in SIZE_CAPS.items():
    with open(os.path.join(ROOT, path)) as f:
      n = len(f.read().splitlines())
    assert n <= cap, f"{path}: {n} lines, its cap is {cap}"


def test_the_suites_slow_first_order_names_only_test_files_that_exist():
  from conftest import SLOW_FIRST  # a stale name would silently schedule nothing
  tests = os.path.dirname(os.path.abspath(__file__))
  assert len(set(SLOW_FIRST)) == len(SLOW_FIRST)
  assert [n for n in SLOW_FIRST if not os.path.isfile(os.path.join(tests, n))] == []


def test_the_compile_flags_benchmark_measures_the_suites_flags():
  from benchmarks.compile_flags import BASE, EXTRA
  from conftest import FAST_COMPILE  # the benchmark's second arm must be what the suite runs
  assert f"{BASE} {EXTRA}" == FAST_COMPILE
