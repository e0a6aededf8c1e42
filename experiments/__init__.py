"""The experiment scripts, each run from the repository root as ``python experiments/NAME.py``.
A package only so that the tests can import a script (``from experiments import partial``); a
script imports ``toy`` and never another script, and what two need lives in ``toy``."""
