r"""Train-step speed, true FLOPs and MFU on this machine. Prints one JSON object.

  python -m benchmarks.train_step --config=experiments/configs/sprites.py [--config.model.time_loop=scan]

flops_per_step counts every time step: XLA's cost analysis of the step's loop-free programs
(`TrainStep.loop_free`: "scan", whose loop body XLA counts once, is costed unrolled), each
times the calls a step makes of it (e.g. once per truncation window under "windows").
The step runs as in the training command: over `config.train.host_devices` XLA:CPU devices (default
one per core, the batch sharded over them; experiments/host_devices.py), FLOPs counted on one.
peak_flops is a jitted 2048x2048 float32 matmul measured in the same process;
mfu = flops_per_step / step_s / peak_flops. flops_share estimates where the FLOPs go (module forward cost x passes: the decoder
runs forward, backward for dL/dlambda, and backward for the parameters).
"""
import json

from absl import app, flags
import jax
import jax.numpy as jnp
from ml_collections import config_flags

from benchmarks import common
from experiments import host_devices
from experiments import trainer as train
from parts_jax import distributions

_CONFIG = config_flags.DEFINE_config_file("config", "experiments/configs/sprites.py", "Config.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps (median reported).")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps first (compile).")


def true_flops(step: train.TrainStep, state, batch) -> float:
  """FLOPs of one train step: XLA's count of each loop-free program times its calls."""
  return sum(p.calls * common.compiled_flops(p.fn, *p.args) for p in step.loop_free().programs(
      common.on_one_cpu(state), common.on_one_cpu(batch)))


def flops_share(model, state, batch):
  """Forward FLOPs per module x passes through it, as fractions of their sum."""
  params = state["params"]
  b, t = batch["video"].shape[:2]
  k, d = model.config.num_slots, model.config.slot_dim
  lam = jnp.zeros((b, k, 2 * d))
  x = jnp.asarray(batch["video"][:, 0])
  a = jnp.asarray(batch["actions"][:, 0]) if model.config.use_actions else jnp.zeros((b, 0))
  z = distributions.split_lambda(lam)[0]
  means, logits = model.decode_fn(params, z)
  loglik = jnp.zeros(x.shape[:3])
  log_masks = jax.nn.log_softmax(logits, axis=1)
  state0 = tuple(jnp.zeros((b, k, model.config.predictor.lstm_size)) for _ in range(2))
  dec = common.compiled_flops(jax.jit(model.decode_fn), params, z)
  ref = common.compiled_flops(jax.jit(model.refine_fn), params, lam, x, a, lam, loglik,
                              log_masks, means)
  pred = common.compiled_flops(jax.jit(model.predict_fn), params, lam, a, state0)
  n = model.config.num_refine_steps
  extra = 3 if model.config.decode_refined else 0   # lambda_t^N decoded: fwd + param grads
  costs = {"decoder (fwd + dL/dlambda + param grads)": dec * (n * 4 + extra),
           "refiner: encoder CNN + slot attention + MLP (fwd + grads)": ref * n * 3,
           "predictor (fwd + grads)": pred * 3}
  total = sum(costs.values())
  return {name: round(c / total, 3) for name, c in sorted(costs.items(), key=lambda i: -i[1])}


def main(argv):
  del argv
  config = _CONFIG.value
  host_devices.configure(config)   # As the training command: one XLA:CPU device per core.
  batch = common.synthetic_batch(config)
  run = common.StepRunner(config, batch)
  model, step = run.model, run.step
  for _ in range(_WARMUP.value):
    jax.block_until_ready(run())
  step_s = common.median_time(run, _STEPS.value)
  flops = true_flops(step, run.state, batch)
  peak = common.matmul_peak_flops()
  b, t = batch["video"].shape[:2]
  print(json.dumps(dict(
      config=config.data.name, time_loop=model.time_loop, conv_impl=model.conv_impl,
      batch_size=b, num_frames=t, image_size=config.data.image_size,
      num_slots=config.model.num_slots, devices=jax.device_count(),
      backend=jax.default_backend(), step_s=step_s, steps_per_s=1.0 / step_s,
      frames_per_s=b * t / step_s,
      flops_per_step=flops, achieved_flops=flops / step_s, peak_flops=peak,
      mfu=flops / step_s / peak, flops_share=flops_share(model, run.state, batch))))


if __name__ == "__main__":
  app.run(main)
