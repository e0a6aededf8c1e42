"""A reference simulator for learning from negatively-reinforced text (see README.md)."""
import os


def enable_compilation_cache(path: str | None = None) -> None:
  """Keeps XLA programs on disk: on 2 CPU cores compiling a phase takes longer than running it.

  The default folder is ``$TOY_JAX_CACHE`` or ``~/.cache/toy-jax``; programs are keyed by
  their full HLO, so a stale cache can only cost time, never change a result. Programs that
  compile in under ``$TOY_JAX_CACHE_MIN_COMPILE_S`` seconds (default 0.5) are not kept.
  """
  import jax
  path = path or os.environ.get("TOY_JAX_CACHE") or os.path.expanduser("~/.cache/toy-jax")
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs",
                    float(os.environ.get("TOY_JAX_CACHE_MIN_COMPILE_S", 0.5)))
