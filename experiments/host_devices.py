"""How many XLA:CPU devices a run gets (`config.train.host_devices`): by default one per core.

One multi-threaded XLA:CPU program of small convolutions leaves the cores under-used. With the
batch split over n host devices (XLA_FLAGS=--xla_force_host_platform_device_count=n, the same
jit-over-a-mesh data parallelism as on accelerators: params replicated, gradients averaged by the
global mean loss), XLA runs the n per-device programs side by side. Measured for the default
sprites config on a 2-core AMD EPYC, `python -m benchmarks.host_devices`: 1.5-1.9x the steps/s of
one device (README, Performance).

With n > 1 it also gives the all-reduce's rendezvous 10 minutes instead of XLA:CPU's 40 s before
aborting (TIMEOUT_FLAG below).

`configure` must run before JAX starts its backends (the entry points call it first). It leaves
XLA_FLAGS alone when they already choose the host device count or XLA's threads (e.g. `sweep
--jobs=2` gives each run one thread), and it changes nothing on a GPU or TPU: the flag shapes
only the CPU backend, which is then not the default one.
"""
import os
from typing import Optional, Sequence

from jax._src import xla_bridge  # backends_are_initialized: no public equivalent

from parts_jax.config import ConfigError

FLAG = "--xla_force_host_platform_device_count"
# With n > 1 devices the gradients are averaged by an all-reduce whose device threads meet at a
# rendezvous; XLA:CPU aborts the process when one thread is 40 s late (its default). On a loaded
# machine (CI's `pytest -n 2` beside a training subprocess) one was: the run died at step 2. A
# late thread is not an error on a shared CPU; a real hang still ends, after 10 minutes.
TIMEOUT_FLAG = "--xla_cpu_collective_call_terminate_timeout_seconds"
COLLECTIVE_TIMEOUT_S = 600
# XLA_FLAGS options that mean "the user chose the CPU layout": then configure() does nothing.
USER_CHOICES = ("xla_force_host_platform_device_count", "intra_op_parallelism_threads",
                "xla_cpu_multi_thread_eigen")


def num_cores() -> int:
  """Cores this process may run on."""
  if hasattr(os, "sched_getaffinity"):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def choose(requested: int, batch_sizes: Sequence[int], cores: int) -> int:
  """The host device count: `requested` if > 0; for 0 (auto) the largest n <= cores that
  divides every batch size (the batch is split evenly over the devices)."""
  if requested > 0:
    return requested
  return max(n for n in range(1, max(cores, 1) + 1) if all(b % n == 0 for b in batch_sizes))


def configure(config, environ=os.environ) -> Optional[int]:
  """Sets XLA_FLAGS in `environ` for config.train.host_devices; returns the device count, or
  None when XLA_FLAGS already choose the CPU layout, or auto (0) finds JAX already started.

  Raises ConfigError for a bad value, or for an explicit count after JAX has started.
  """
  requested = config.train.get("host_devices", 0)
  if not isinstance(requested, int) or isinstance(requested, bool) or requested < 0:
    raise ConfigError(f"config.train.host_devices must be an integer >= 0 (0 = one per core), "
                      f"got {requested!r}")
  if any(choice in environ.get("XLA_FLAGS", "") for choice in USER_CHOICES):
    return None
  if xla_bridge.backends_are_initialized():
    if requested:
      raise ConfigError(f"config.train.host_devices={requested} must be set before JAX starts; "
                        f"set XLA_FLAGS={FLAG}={requested} instead")
    return None
  n = choose(requested, (config.train.batch_size, config.eval.batch_size), num_cores())
  flags_ = f"{FLAG}={n}"
  if n > 1:
    flags_ += f" {TIMEOUT_FLAG}={COLLECTIVE_TIMEOUT_S}"
  environ["XLA_FLAGS"] = f"{environ.get('XLA_FLAGS', '')} {flags_}".strip()
  return n
