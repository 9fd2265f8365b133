"""experiments.host_devices: the host device count and the XLA_FLAGS it sets."""
import json
import os
import subprocess
import sys

import jax
import pytest

from experiments import host_devices
from experiments.configs import sprites
from parts_jax.config import ConfigError
from helpers import compile_flags


def test_choose_divides_every_batch():
  assert host_devices.choose(0, (8, 16), cores=2) == 2
  assert host_devices.choose(0, (8, 16), cores=16) == 8
  assert host_devices.choose(0, (6, 16), cores=4) == 2   # 3 and 4 do not divide both.
  assert host_devices.choose(0, (7, 16), cores=2) == 1
  assert host_devices.choose(3, (8, 16), cores=2) == 3   # Explicit: as asked (checked later).


def test_configure_sets_the_flag_once_jax_has_not_started(monkeypatch):
  config = sprites.get_config()
  monkeypatch.setattr(host_devices, "num_cores", lambda: 2)
  monkeypatch.setattr(host_devices.xla_bridge, "backends_are_initialized", lambda: False)
  env = {"XLA_FLAGS": "--xla_dump_to=/tmp/x"}
  assert host_devices.configure(config, env) == 2
  assert env["XLA_FLAGS"] == ("--xla_dump_to=/tmp/x --xla_force_host_platform_device_count=2 "
                              "--xla_cpu_collective_call_terminate_timeout_seconds=600")
  monkeypatch.setattr(host_devices, "num_cores", lambda: 1)   # One device: no all-reduce.
  env = {}
  assert host_devices.configure(config, env) == 1
  assert env["XLA_FLAGS"] == "--xla_force_host_platform_device_count=1"
  # The user's own choice of devices or threads (sweep --jobs) is left alone.
  for flags in ("--xla_force_host_platform_device_count=4",
                "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"):
    env = {"XLA_FLAGS": flags}
    assert host_devices.configure(config, env) is None and env["XLA_FLAGS"] == flags


def test_configure_after_jax_started():
  jax.devices()   # Starts JAX: then auto leaves things alone, an explicit count is an error.
  config = sprites.get_config()
  env = {}
  assert host_devices.configure(config, env) is None and not env
  config.train.host_devices = 2
  with pytest.raises(ConfigError, match="config.train.host_devices=2 must be set before JAX"):
    host_devices.configure(config, env)
  config.train.host_devices = -1
  with pytest.raises(ConfigError, match=r"config.train.host_devices must be an integer >= 0"):
    host_devices.configure(config, env)


_TWO_DEVICES = r"""
import json
import jax, jax.numpy as jnp, numpy as np
from benchmarks import common
from experiments import setup_lib, trainer
from test_evaluate import tiny_config
assert jax.device_count() == 2, jax.devices()
from parts_jax import lowering
waited = []
wait = lowering.wait_for_cpu_all_reduce
lowering.wait_for_cpu_all_reduce = lambda outputs: waited.append(wait(outputs))
config = tiny_config("unused")
config.train.batch_size = 4
config.model.tbptt = 2   # Two truncation windows (2 + 1 steps): two all-reduces per call.
batch = common.synthetic_batch(config)
model = setup_lib.make_model(config)
params = jax.jit(model.init)(jax.random.PRNGKey(0), batch)
# Perturbed parameters: the refiner and predictor output layers start at zero.
leaves, tree = jax.tree.flatten(params)
keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
params = jax.tree.unflatten(tree, [p + 0.1 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])
optimizer = trainer.make_optimizer(config.train)
state = dict(step=jnp.int32(0), params=params, opt_state=optimizer.init(params),
             rng=jax.random.PRNGKey(2), skipped=jnp.int32(0))
step = trainer.TrainStep(model, optimizer, False)
one = jax.device_get(step.grads(jax.device_put(state, jax.devices()[0]),
                                jax.device_put(batch, jax.devices()[0])))
waited_one, waited[:] = list(waited), []
_, replicated, data_sharding = setup_lib.mesh_shardings()
two = jax.device_get(step.grads(jax.device_put(state, replicated),
                                jax.device_put(batch, data_sharding)))
print(json.dumps(dict(
    time_loop=model.time_loop, waited_one=waited_one, waited_two=waited,
    grads=[[float(np.max(np.abs(a - b))), float(np.max(np.abs(a)))]
           for a, b in zip(jax.tree.leaves(one[0]), jax.tree.leaves(two[0]))],
    sums={k: [float(one[1][k]), float(two[1][k])] for k in one[1]})))
"""


@pytest.mark.slow
def test_two_host_devices_give_the_gradients_of_one():
  """The batch split over 2 host devices (what host_devices.configure sets up on a 2-core CPU)
  gives the same gradients and loss sums as the whole batch on one device, over two truncation
  windows; the host waits for each window's all-reduce only on two devices."""
  here = os.path.dirname(os.path.abspath(__file__))
  env = dict(os.environ,
             XLA_FLAGS=f"--xla_force_host_platform_device_count=2 {compile_flags()}".strip(),
             PYTHONPATH=os.pathsep.join([here, os.path.dirname(here)]))
  out = subprocess.run([sys.executable, "-c", _TWO_DEVICES], env=env, check=True,
                       capture_output=True, text=True, timeout=600).stdout
  result = json.loads(out.strip().splitlines()[-1])
  assert result["time_loop"] == "windows"   # The CPU default, which the trainer runs.
  # The host waits for each window's all-reduce on two devices (README Reliability, "The
  # host devices' all-reduce deadlock"), and dispatches asynchronously on one.
  assert result["waited_one"] == [False, False]
  assert result["waited_two"] == [True, True]
  assert len(result["grads"]) > 10
  for diff, scale in result["grads"]:   # Per leaf: every leaf compared on its own scale.
    assert diff <= 1e-4 * scale + 1e-7, (diff, scale)
  assert any(scale > 0 for _, scale in result["grads"])
  for name, (a, b) in result["sums"].items():
    assert abs(a - b) <= 1e-5 * abs(a) + 1e-6, (name, a, b)
