r"""Trains PARTS.

  python -m experiments.train --config=experiments/configs/sprites.py --workdir=workdirs/sprites \
      [--config.model.num_slots=5 ...]

Data-parallel over all local devices (jit over a 1-D device mesh: the batch is sharded, params
replicated, gradients averaged by the global mean loss). Several processes (multi-host):
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
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from ml_collections import config_flags

from datasets import registry
from experiments import checkpointing, setup_lib
from parts_jax import metrics, visualize

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and figures.")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False,
                                 "Call jax.distributed.initialize() with auto-detection.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 1, "Number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", 0, "This process's index.")


def make_optimizer(train_config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """RMSProp with global-norm clipping (section 4) and a linear warm-up."""
  lr = optax.linear_schedule(0.0, train_config.learning_rate,
                             max(train_config.warmup_steps, 1))
  return optax.chain(
      optax.clip_by_global_norm(train_config.grad_clip_norm),
      optax.rmsprop(lr, decay=train_config.rmsprop_decay, eps=train_config.rmsprop_eps))


class NonFiniteError(FloatingPointError):
  """NaN or Inf in the loss or gradients."""


def _sums(outs) -> Dict[str, jnp.ndarray]:
  """Sums over time and batch of the per-frame terms (time-major or batch-major alike)."""
  return {k: jnp.sum(outs[k]) for k in ("elbo", "kl", "nll", "mse")}


class TrainStep:
  """(state, batch) -> (state, scalars); state = dict(step, params, opt_state, rng, skipped).

  Gradients come from one jitted value_and_grad over the whole sequence ("scan"/"unroll"), or
  from the truncation windows run one after another ("windows", see
  parts_jax.config.resolve_lowering): the window gradients add up to the whole sequence's
  truncated-BPTT gradient. Then one jitted RMSProp update.
  """

  def __init__(self, model, optimizer, skip_nonfinite: bool):
    self.model = model
    self.optimizer = optimizer
    self.skip_nonfinite = skip_nonfinite
    self._update = jax.jit(self._update_fn, static_argnums=(3,), donate_argnums=(0, 1))
    self._full = jax.jit(self._full_grads)
    self._prepare = jax.jit(lambda state, batch: model.step_inputs(
        jax.random.fold_in(state["rng"], state["step"]), batch))
    self._window = jax.jit(self._window_grads, static_argnums=(3,))

  def _full_grads(self, state, batch):
    rng = jax.random.fold_in(state["rng"], state["step"])

    def loss_fn(params):
      out = self.model.apply(params, rng, batch)
      return out["loss"], _sums(out)

    (_, sums), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    return grads, sums

  def _window_grads(self, params, carry, xs, num_steps):
    (_, (carry, outs)), grads = jax.value_and_grad(self.model.window_loss, has_aux=True)(
        params, carry, xs, num_steps)
    return grads, carry, _sums(outs)

  def grads(self, state, batch):
    """(grads, sums of elbo/kl/nll/mse over B and T) for one batch."""
    if self.model.time_loop != "windows":
      return self._full(state, batch)
    carry, xs = self._prepare(state, batch)
    num_steps = xs.x.shape[0]
    length = self.model.window_length(num_steps)
    grads = sums = None
    for t0 in range(0, num_steps, length):
      window = jax.tree.map(lambda a: a[t0:t0 + length], xs)
      g, carry, s = self._window(state["params"], carry, window, num_steps)
      grads = g if grads is None else jax.tree.map(jnp.add, grads, g)
      sums = s if sums is None else jax.tree.map(jnp.add, sums, s)
    return grads, sums

  def _update_fn(self, state, grads, sums, num_frames):
    loss = -sums["elbo"] / num_frames
    grad_norm = optax.global_norm(grads)
    updates, opt_state = self.optimizer.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    if self.skip_nonfinite:
      keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
      params = keep(params, state["params"])
      opt_state = keep(opt_state, state["opt_state"])
    new_state = dict(step=state["step"] + 1, params=params, opt_state=opt_state,
                     rng=state["rng"], skipped=state["skipped"] + (1 - finite.astype(jnp.int32)))
    scalars = dict(loss=loss, elbo=sums["elbo"] / num_frames, kl=sums["kl"] / num_frames,
                   nll=sums["nll"] / num_frames, mse=sums["mse"] / num_frames,
                   grad_norm=grad_norm, loss_finite=jnp.isfinite(loss),
                   grads_finite=jnp.isfinite(grad_norm))
    return new_state, scalars

  def __call__(self, state, batch):
    grads, sums = self.grads(state, batch)
    b, t = batch["video"].shape[:2]
    return self._update(state, grads, sums, b * t)


def make_eval_step(model, max_ids: int):
  """(params, rng, batch) -> outputs with per-frame FG-ARI, for the held-out batch."""

  def eval_step(params, rng, batch):
    out = model.apply(params, rng, batch)
    result = dict(recon=out["recon"], masks=out["masks"], components=out["components"],
                  attention=out["attention"], mse=out["mse"], loss=out["loss"])
    if "segmentations" in batch:
      result["fg_ari"], result["has_fg"] = metrics.fg_ari_per_frame(
          batch["segmentations"], out["masks"], num_true=max_ids)
    return result

  return eval_step


class _Logger:
  """Console progress line, TensorBoard event files (tensorboardX) and metrics.jsonl."""

  def __init__(self, workdir: str, num_steps: int, enabled: bool):
    self.enabled = enabled
    self.num_steps = num_steps
    self.writer = None
    if enabled:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self.writer = SummaryWriter(os.path.join(workdir, "tb"))
      self.jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")

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
    line = (f"step {step}/{self.num_steps} | loss {values['train/loss']:.2f} | "
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


def _host(tree):
  return jax.tree.map(lambda x: np.asarray(jax.device_get(x)), tree)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> Dict[str, Any]:
  """Trains until config.train.num_steps (resuming from workdir); returns the final state."""
  setup_lib.check_config(config)
  setup_lib.save_config(config, workdir)
  tc = config.train
  pidx, pcount = jax.process_index(), jax.process_count()
  _, replicated, data_sharding = setup_lib.mesh_shardings()

  model = setup_lib.make_model(config)
  optimizer = make_optimizer(tc)
  mngr = checkpointing.manager(workdir, tc.max_checkpoints)
  start_step = mngr.latest_step() or 0

  train_iter = registry.get_iterator(config.data, "train", tc.batch_size, seed=config.seed,
                                     start_step=start_step, process_index=pidx,
                                     process_count=pcount)
  setup_lib.check_actions(config, train_iter.source.action_dim, train_iter.source.origin)
  eval_iter = registry.get_iterator(config.data, "eval", config.eval.batch_size,
                                    seed=config.eval.seed, process_index=pidx,
                                    process_count=pcount, shuffle=False)
  eval_batch = setup_lib.global_batch(next(eval_iter), data_sharding)
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
  eval_step = jax.jit(make_eval_step(model, config.eval.max_ids))

  stop = {"signal": None}

  def on_signal(signum, frame):
    del frame
    stop["signal"] = signum

  previous = signal.signal(signal.SIGTERM, on_signal)
  log = _Logger(workdir, tc.num_steps, enabled=pidx == 0)
  step, batch = start_step, first
  t_last, step_last = time.time(), start_step
  try:
    while step < tc.num_steps:
      state, scalars = train_step(state, setup_lib.global_batch(batch, data_sharding))
      step += 1
      scalars = _host(scalars)
      if not (scalars["loss_finite"] and scalars["grads_finite"]) and not tc.skip_nonfinite:
        what = "loss" if not scalars["loss_finite"] else "gradients"
        raise NonFiniteError(
            f"non-finite {what} at step {step} (loss={scalars['loss']}, grad_norm="
            f"{scalars['grad_norm']}); no checkpoint was written for it. Lower "
            "train.learning_rate, or set --config.train.skip_nonfinite=True to skip such steps")
      if step % tc.log_every == 0 or step == tc.num_steps:
        now = time.time()
        rate = (step - step_last) / max(now - t_last, 1e-9)
        t_last, step_last = now, step
        values = {f"train/{k}": float(v) for k, v in scalars.items()
                  if not k.endswith("finite")}
        values["train/steps_per_s"] = rate
        values["train/skipped_steps"] = float(_host(state["skipped"]))
        if step % tc.eval_every == 0 or step == tc.num_steps:
          values.update(_evaluate_held_out(eval_step, state["params"], eval_batch, log, step))
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


def _evaluate_held_out(eval_step, params, batch, log: _Logger, step: int) -> Dict[str, float]:
  out = _host(eval_step(params, jax.random.PRNGKey(0), batch))
  values = {"eval/mse": float(np.mean(out["mse"])), "eval/loss": float(out["loss"])}
  if "fg_ari" in out:
    summary = metrics.summarize_fg_ari(out["fg_ari"], out["has_fg"])
    if summary["fg_ari"] is not None:
      values["eval/fg_ari"] = float(summary["fg_ari"])
  video = np.asarray(jax.device_get(batch["video"]))[0]
  seg = batch.get("segmentations")
  image = visualize.segmentation_figure(
      video, out["recon"][0], out["masks"][0], out["components"][0],
      None if seg is None else np.asarray(jax.device_get(seg))[0])
  log.image(step, "eval/segmentation", image)
  return values


def main(argv):
  del argv
  if _DISTRIBUTED.value or _NUM_PROCESSES.value > 1:
    kwargs = {}
    if _NUM_PROCESSES.value > 1:
      kwargs = dict(coordinator_address=_COORDINATOR.value, num_processes=_NUM_PROCESSES.value,
                    process_id=_PROCESS_ID.value)
    jax.distributed.initialize(**kwargs)
  print(f"JAX {jax.__version__}: {jax.process_count()} process(es), "
        f"{jax.local_device_count()} local / {jax.device_count()} global devices "
        f"({jax.default_backend()})", flush=True)
  train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main)
