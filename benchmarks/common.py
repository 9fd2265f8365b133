"""Shared pieces of the benchmarks: a synthetic batch, a train state, a matmul peak, timing."""
import platform
import resource
import subprocess
import time
from typing import Callable, Dict

import jax
import jax.numpy as jnp
import numpy as np

from experiments import setup_lib
from experiments import trainer as train


def synthetic_batch(config, batch_size=None, num_frames=None) -> Dict[str, np.ndarray]:
  rng = np.random.default_rng(0)
  b = batch_size or config.train.batch_size
  t = num_frames or config.data.num_frames
  s = config.data.image_size
  return dict(video=rng.uniform(0, 1, (b, t, s, s, 3)).astype(np.float32),
              actions=rng.normal(size=(b, t, 2)).astype(np.float32))


class StepRunner:
  """A model, its TrainStep and a train state that each call() advances by one step."""

  def __init__(self, config, batch):
    # As in training: the batch sharded over all devices (e.g. one per core, host_devices.py),
    # the state replicated.
    _, replicated, data_sharding = setup_lib.mesh_shardings()
    self.batch = jax.device_put(batch, data_sharding)
    self.model = setup_lib.make_model(config)
    optimizer = train.make_optimizer(config.train)
    params = jax.jit(self.model.init)(jax.random.PRNGKey(0), batch)
    self.state = jax.device_put(
        dict(step=jnp.int32(0), params=params, opt_state=optimizer.init(params),
             rng=jax.random.PRNGKey(1), skipped=jnp.int32(0)), replicated)
    self.step = train.TrainStep(self.model, optimizer, False)

  def __call__(self):
    self.state, scalars = self.step(self.state, self.batch)
    return scalars


def median_time(fn: Callable[[], object], repeats: int) -> float:
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return float(np.median(times))


def matmul_peak_flops(n: int = 2048, repeats: int = 10) -> float:
  """Measured float32 FLOP/s of a jitted n x n matmul in this process."""
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
  f = jax.jit(lambda x: x @ x)
  jax.block_until_ready(f(a))
  best = min(median_time(lambda: f(a), 1) for _ in range(repeats))
  return 2 * n ** 3 / best


def compiled_flops(jitted, *args, static=()) -> float:
  """XLA's FLOP count of one call (a loop body is counted once, so only use loop-free code)."""
  cost = jitted.lower(*args).compile().cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0]
  return float(cost.get("flops", 0.0))


def peak_rss_bytes() -> int:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def on_one_cpu(tree):
  """Shape-dtype specs of `tree` on one CPU device: what FLOPs are counted on. One device, as
  the whole step's FLOPs (a program partitioned over devices may be costed per partition);
  the CPU, as XLA:GPU's cost analysis leaves out the convolutions it hands to cuDNN."""
  cpu = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=cpu), tree)


def extrapolated_flops(run: StepRunner, batch) -> float:
  """True FLOPs of one train step of `run` (any lowering, any device) on `batch` [B, T, ...].

  XLA counts a loop body once, so the step's loop-free programs (`TrainStep.loop_free`) are
  costed, at T = 1 and T = 2 only (cheap to compile at any size), and extrapolated:
  f(T) = f(1) + (T - 1)(f(2) - f(1)) (every step after the first costs the same; the optimizer
  update, in both, is counted once). The programs are compiled for the CPU whatever the device:
  XLA:GPU's cost analysis leaves out the convolutions it hands to cuDNN (it reported 1.3 GFLOP
  for a 66 GFLOP sprites step on an H200).
  """
  spec = on_one_cpu
  step = run.step.loop_free()
  f1, f2 = (sum(p.calls * compiled_flops(p.fn, *p.args) for p in step.programs(
      spec(run.state), spec({k: v[:, :n] for k, v in batch.items()}))) for n in (1, 2))
  t = batch["video"].shape[1]
  return f1 + (t - 1) * (f2 - f1)


def processor_name() -> str:
  """The processor's model name as lscpu reports it (else platform.processor()): machines of
  one kind differ (README, Performance), so every figure records it."""
  try:
    text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
  except (OSError, subprocess.CalledProcessError):
    return platform.processor() or "unknown"
  for line in text.splitlines():
    if line.startswith("Model name:"):
      return line.split(":", 1)[1].strip()
  return platform.processor() or "unknown"
