import os
import shutil
import sys
import tempfile

os.environ.setdefault("MUJOCO_GL", "egl")

# One persistent XLA compilation cache for the test run, shared by the pytest-xdist workers
# (they have the same PYTEST_XDIST_TESTRUNUID): many tests build the same tiny model and compile
# the same programs (on the 2-core CI machine this took a quarter off tests/test_model.py,
# test_evaluate.py and test_train.py together). Programs that compile in under 1 s are not
# stored (JAX's default). A read that fails (e.g. an entry the other worker is still writing)
# is a warning and a compile in JAX, never a wrong result. Removed when the run ends.
_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID") or str(os.getpid())
JAX_CACHE = os.path.join(tempfile.gettempdir(), f"parts_jax_tests_xla_cache_{_RUN}")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = JAX_CACHE
  if "jax" in sys.modules:   # imported before this file (a plugin): set it in the config too
    sys.modules["jax"].config.update("jax_compilation_cache_dir", JAX_CACHE)


# The suite's programs are tiny and run a few times each, so XLA's compile time, not run time,
# dominates it: JAX's jax_disable_most_optimizations (XLA backend optimisation level 0, no
# expensive LLVM passes) took the two lowering-equivalence tests from 150 s to 95 s on a 2-core
# AVX2 EPYC. Set in the environment, so the suite's training subprocesses inherit it; the
# numbers the tests compare are the same programs' results, only compiled with fewer passes.
# JAX_DISABLE_MOST_OPTIMIZATIONS=0 in the environment turns it off.
if "JAX_DISABLE_MOST_OPTIMIZATIONS" not in os.environ:
  os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"
  if "jax" in sys.modules:
    sys.modules["jax"].config.update("jax_disable_most_optimizations", True)


def pytest_configure(config):
  """The controller hands its run id to the xdist workers, so that it can remove their cache."""
  if not hasattr(config, "workerinput") and getattr(config.option, "testrunuid", "") is None:
    config.option.testrunuid = _RUN


def pytest_sessionfinish(session):
  if not hasattr(session.config, "workerinput"):   # the controller (or a run without xdist)
    shutil.rmtree(JAX_CACHE, ignore_errors=True)
