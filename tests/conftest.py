import os
import shutil
import sys
import tempfile

os.environ.setdefault("MUJOCO_GL", "egl")

# One persistent XLA compilation cache for the test run, shared by the pytest-xdist workers
# (they have the same PYTEST_XDIST_TESTRUNUID) and inherited by the training subprocesses that
# tests start: many tests build the same tiny model and compile the same programs (on the 2-core
# CI machine this took a quarter off tests/test_model.py, test_evaluate.py and test_train.py
# together). Every program is stored, also those that compile in under 1 s (JAX's default
# threshold): with the optimisations off (below) most do. A read that fails (e.g. an entry the
# other worker is still writing) is a warning and a compile in JAX, never a wrong result.
# Removed when the run ends.
# Only the process that made the directory removes it: a pytest started inside the run (the
# accelerator kit's equivalence stage, tests/test_accelerator_kit.py) inherits the run id or the
# directory and once removed it mid-run, so that every later compile of the suite went uncached.
_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID") or str(os.getpid())
JAX_CACHE = os.path.join(tempfile.gettempdir(), f"parts_jax_tests_xla_cache_{_RUN}")
_OWNS_CACHE = ("PYTEST_XDIST_TESTRUNUID" not in os.environ
               and "JAX_COMPILATION_CACHE_DIR" not in os.environ)


def _default(option: str, value) -> None:
  """JAX option `option` (e.g. jax_compilation_cache_dir) set to `value` through its environment
  variable (inherited by the suite's subprocesses) unless the environment sets it already."""
  name = option.upper()
  if name not in os.environ:
    os.environ[name] = str(int(value) if isinstance(value, bool) else value)
    if "jax" in sys.modules:   # imported before this file (a plugin): set it in the config too
      sys.modules["jax"].config.update(option, value)


_default("jax_compilation_cache_dir", JAX_CACHE)
_default("jax_persistent_cache_min_compile_time_secs", 0.0)


# The suite's programs are tiny and run a few times each, so XLA's compile time, not run time,
# dominates it: JAX's jax_disable_most_optimizations (XLA backend optimisation level 0, no
# expensive LLVM passes) took the two lowering-equivalence tests from 150 s to 95 s on a 2-core
# AVX2 EPYC. Set in the environment, so the suite's training subprocesses inherit it; the
# numbers the tests compare are the same programs' results, only compiled with fewer passes.
# JAX_DISABLE_MOST_OPTIMIZATIONS=0 in the environment turns it off.
_default("jax_disable_most_optimizations", True)

# XLA:CPU's MLIR fusion emitters (jax 0.10.2's default) compile the suite's tiny programs slower
# than its older elemental emitters: a tiny PARTS train step under "scan" 11.6 s against 7.6 s
# on a 2-core AVX2 EPYC, and the suite took 15:30 against 12:08 (README Performance, `python -m
# benchmarks.fusion_emitters`). Training keeps XLA's default. Appended to XLA_FLAGS in the
# environment, so that the subprocesses that inherit it get it too (those whose XLA_FLAGS a test
# writes add helpers.compile_flags()); an XLA_FLAGS naming the option already is left alone.
# (Imported here, after the JAX options above are in the environment: helpers imports JAX.)
from helpers import FUSION_EMITTERS  # pylint: disable=g-import-not-at-top,wrong-import-position
if FUSION_EMITTERS not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FUSION_EMITTERS}=false".strip()


def pytest_configure(config):
  """The controller hands its run id to the xdist workers, so that it can remove their cache."""
  config.addinivalue_line("markers", "slow: takes 30 s or more on the 2-core CI machine; run "
                          "first (see pytest_collection_modifyitems)")
  if not hasattr(config, "workerinput") and getattr(config.option, "testrunuid", "") is None:
    config.option.testrunuid = _RUN


def pytest_collection_modifyitems(items):
  """The tests marked slow first, the others in their order. With README's `-n 2` (pytest.ini
  sets xdist's worksteal scheduling), the two workers then end on short tests instead of one
  waiting out a 2-minute test of the other."""
  items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_sessionfinish(session):
  if _OWNS_CACHE and not hasattr(session.config, "workerinput"):   # the controller
    shutil.rmtree(JAX_CACHE, ignore_errors=True)
