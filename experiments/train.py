r"""Trains PARTS.

  python -m experiments.train --config=experiments/configs/sprites.py --workdir=workdirs/sprites \
      [--config.model.num_slots=5 ...]

Data-parallel over all local devices (jit over a 1-D device mesh: the batch is sharded, params
replicated, gradients averaged by the global mean loss). On a CPU a single process splits the
batch over one XLA:CPU device per core (`config.train.host_devices`; 1.5-1.9x the steps/s of one
device for the default config, README Performance). Several processes (multi-host):
pass --num_processes/--process_id/--coordinator_address, or --distributed on TPU pods where
jax.distributed.initialize() finds them itself; each process reads its own slice of every batch.
Running the same command with the same workdir resumes from the latest checkpoint.
"""
import json
import os
import signal
import time
from typing import Any, Dict

from absl import app, flags, logging
import jax
import ml_collections
import numpy as np
from ml_collections import config_flags

from datasets import registry
from datasets.base import DataError
from experiments import checkpointing, evaluator, host_devices, metrics_log, setup_lib
from experiments.trainer import NonFiniteError, TrainStep, make_optimizer  # pylint: disable=unused-import
from parts_jax import visualize
from parts_jax.config import ConfigError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and figures.")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False,
                                 "Call jax.distributed.initialize() with auto-detection.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 1, "Number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", 0, "This process's index.")


class _Logger:
  """Console progress line, TensorBoard event files (tensorboardX) and metrics.jsonl.

  Resuming from `start_step`, the steps logged after it by the interrupted run (they are run and
  logged again) are dropped from metrics.jsonl, and TensorBoard is told to purge them
  (purge_step), so that every step appears once.
  """

  def __init__(self, workdir: str, num_steps: int, enabled: bool, start_step: int = 0):
    self.enabled = enabled
    self.num_steps = num_steps
    self.writer = None
    if enabled:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      path = metrics_log.path(workdir)
      if start_step and os.path.exists(path):
        dropped = metrics_log.truncate(workdir, start_step)
        if dropped:
          print(f"metrics.jsonl: dropped {dropped} lines logged after step {start_step} by the "
                "interrupted run (those steps are run and logged again)", flush=True)
      self.writer = SummaryWriter(os.path.join(workdir, "tb"),
                                  purge_step=start_step + 1 if start_step else None)
      self.jsonl = open(path, "a")

  def scalars(self, step: int, values: Dict[str, float]) -> None:
    if not self.enabled:
      return
    for k, v in values.items():
      self.writer.add_scalar(k, v, step)
    self.jsonl.write(json.dumps(dict(step=step, **values)) + "\n")
    self.jsonl.flush()

  def image(self, step: int, tag: str, image: np.ndarray) -> None:
    if self.enabled:
      self.writer.add_image(tag, image, step, dataformats="HWC")

  def progress(self, step: int, values: Dict[str, float], steps_per_s: float) -> None:
    eta = (self.num_steps - step) / max(steps_per_s, 1e-9)
    fitted = "".join(f"{k} {values['train/' + k]:.2f} | " for k in ("fitted_elbo", "distill")
                     if "train/" + k in values)   # config.model.semi_amortized
    line = (f"step {step}/{self.num_steps} | elbo {values['train/elbo']:.2f} | {fitted}"
            f"kl {values['train/kl']:.2f} | mse {values['train/mse']:.5f} | "
            f"{steps_per_s:.2f} steps/s | ETA {int(eta // 3600)}h{int(eta % 3600 // 60):02d}m"
            f"{int(eta % 60):02d}s")
    if "eval/fg_ari" in values:
      line += f" | fg_ari {values['eval/fg_ari']:.3f}"
    if self.enabled:
      print(line, flush=True)

  def close(self) -> None:
    if self.enabled:
      self.writer.close()
      self.jsonl.close()


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> Dict[str, Any]:
  """Trains until config.train.num_steps (resuming from workdir); returns the final state."""
  setup_lib.check_config(config)
  tc = config.train
  pidx, pcount = jax.process_index(), jax.process_count()
  _, replicated, data_sharding = setup_lib.mesh_shardings()

  model = setup_lib.make_model(config)
  optimizer = make_optimizer(tc)
  mngr = checkpointing.manager(workdir, tc.max_checkpoints)
  start_step = mngr.latest_step() or 0
  changed = setup_lib.save_config(config, workdir, start_step)
  if changed and pidx == 0:
    print(f"Config changed since the checkpoint at step {start_step} (recorded in "
          f"{setup_lib.CONFIG_HISTORY}): " + setup_lib.describe_changes(
              changed, setup_lib.model_defaults()), flush=True)

  train_iter = registry.get_iterator(config.data, "train", tc.batch_size, seed=config.seed,
                                     start_step=start_step, process_index=pidx,
                                     process_count=pcount)
  setup_lib.check_actions(config, train_iter.source.action_dim, train_iter.source.origin)
  eval_iter = registry.get_iterator(config.data, "eval", config.eval.batch_size,
                                    seed=config.eval.seed, process_index=pidx,
                                    process_count=pcount, shuffle=False)
  eval_local = next(eval_iter)  # This process's share (process 0 holds example 0, the figure).
  eval_batch = setup_lib.global_batch(eval_local, data_sharding)
  eval_iter.close()

  first = next(train_iter)
  params = jax.jit(model.init)(jax.random.PRNGKey(config.seed), first)
  state = dict(step=checkpointing.step_array(0), params=params,
               opt_state=optimizer.init(params), rng=jax.random.PRNGKey(config.seed + 1),
               skipped=checkpointing.step_array(0))
  if start_step:
    state = checkpointing.restore(mngr, state)
    logging.info("Resumed from step %d in %s", start_step, workdir)
    print(f"Resuming from checkpoint at step {start_step}", flush=True)
  state = jax.device_put(state, replicated)

  train_step = TrainStep(model, optimizer, tc.skip_nonfinite)
  eval_step = evaluator.make_eval_step(model, config.eval.max_ids, keep_outputs=True,
                                      in_shardings=(replicated, replicated, data_sharding))

  stop = {"signal": None}

  def on_signal(signum, frame):
    del frame
    stop["signal"] = signum

  previous = signal.signal(signal.SIGTERM, on_signal)
  log = _Logger(workdir, tc.num_steps, enabled=pidx == 0, start_step=start_step)
  step, batch = start_step, first
  t_last, step_last = time.time(), start_step
  try:
    while step < tc.num_steps:
      state, scalars = train_step(state, setup_lib.global_batch(batch, data_sharding))
      step += 1
      scalars = setup_lib.host(scalars)
      if not (scalars["loss_finite"] and scalars["grads_finite"]) and not tc.skip_nonfinite:
        what = "loss" if not scalars["loss_finite"] else "gradients"
        raise NonFiniteError(
            f"non-finite {what} at step {step} (loss={scalars['loss']}, grad_norm="
            f"{scalars['grad_norm']}); no checkpoint was written for it. Lower "
            "train.learning_rate, or set --config.train.skip_nonfinite=True to skip such steps")
      last = step == tc.num_steps
      do_eval = step % tc.eval_every == 0 or last
      if step % tc.log_every == 0 or do_eval:
        now = time.time()
        rate = (step - step_last) / max(now - t_last, 1e-9)
        t_last, step_last = now, step
        values = {f"train/{k}": float(v) for k, v in scalars.items()
                  if not k.endswith("finite")}
        values["train/steps_per_s"] = rate
        values["train/skipped_steps"] = float(setup_lib.host(state["skipped"]))
        if do_eval:
          values.update(_evaluate_held_out(eval_step, state["params"], eval_batch, log, step,
                                           eval_local))
        log.scalars(step, values)
        log.progress(step, values, rate)
      if step % tc.checkpoint_every == 0 or step == tc.num_steps:
        checkpointing.save(mngr, state)
      if stop["signal"] is not None:
        checkpointing.save(mngr, state, force=True)
        print(f"Received signal {stop['signal']}: saved checkpoint at step {step}, exiting.",
              flush=True)
        break
      if step < tc.num_steps:
        batch = next(train_iter)
  finally:
    signal.signal(signal.SIGTERM, previous)
    train_iter.close()
    log.close()
    mngr.wait_until_finished()
  return state


def _evaluate_held_out(eval_step, params, batch, log: _Logger, step: int,
                       local_batch=None) -> Dict[str, float]:
  """Held-out scalars; the figure shows example 0 of `local_batch` (this process's share of
  `batch` as NumPy, default `batch`)."""
  out = setup_lib.host(eval_step(params, jax.random.PRNGKey(0), batch))
  values = evaluator.held_out_scalars(out)
  local_batch = batch if local_batch is None else local_batch
  video = np.asarray(jax.device_get(local_batch["video"]))[0]
  seg = local_batch.get("segmentations")
  image = visualize.segmentation_figure(
      video, out["recon"][0], out["masks"][0], out["components"][0],
      None if seg is None else np.asarray(jax.device_get(seg))[0])
  log.image(step, "eval/segmentation", image)
  return values


def main(argv):
  del argv
  if not _DISTRIBUTED.value and _NUM_PROCESSES.value == 1:
    try:   # Before JAX starts: one XLA:CPU device per core (experiments/host_devices.py).
      host_devices.configure(_CONFIG.value)
    except ConfigError as e:
      raise SystemExit(f"error: {e}") from None
  log_file = os.path.join(_WORKDIR.value, "train_log.txt")
  if not _DISTRIBUTED.value and _PROCESS_ID.value == 0:   # before the first JAX log line
    setup_lib.library_logs_to_file(log_file)
  if _DISTRIBUTED.value or _NUM_PROCESSES.value > 1:
    kwargs = {}
    if _NUM_PROCESSES.value > 1:
      kwargs = dict(coordinator_address=_COORDINATOR.value, num_processes=_NUM_PROCESSES.value,
                    process_id=_PROCESS_ID.value)
    jax.distributed.initialize(**kwargs)
    if _DISTRIBUTED.value and jax.process_index() == 0:
      setup_lib.library_logs_to_file(log_file)
  print(f"JAX {jax.__version__}: {jax.process_count()} process(es), "
        f"{jax.local_device_count()} local / {jax.device_count()} global devices "
        f"({jax.default_backend()})", flush=True)
  try:
    train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except (ConfigError, DataError) as e:   # A user error: one line, no traceback.
    raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main)
