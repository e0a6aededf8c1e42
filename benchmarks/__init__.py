"""The benchmark scripts, each run from the repository root as ``python benchmarks/NAME.py``.
A package only so that the tests can import a script (``from benchmarks import bench_steps``)."""
