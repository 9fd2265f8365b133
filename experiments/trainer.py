"""The training step (pure JAX pieces used by experiments.train and the benchmarks)."""
from typing import Dict

import jax
import jax.numpy as jnp
import ml_collections
import optax

from experiments import evaluate
from parts_jax import metrics


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
    self._update = jax.jit(self._update_fn, static_argnums=(3,), donate_argnums=(0,))
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
  """(params, rng, batch) -> outputs with per-frame FG-ARI (and the diagnostic FG-ARIs of
  experiments.evaluate), for the held-out batch."""

  def eval_step(params, rng, batch):
    out = model.apply(params, rng, batch)
    result = dict(recon=out["recon"], masks=out["masks"], components=out["components"],
                  attention=out["attention"], mse=out["mse"], loss=out["loss"])
    if "segmentations" in batch:
      result["fg_ari"], result["has_fg"] = metrics.fg_ari_per_frame(
          batch["segmentations"], out["masks"], num_true=max_ids)
      result.update(evaluate.diagnostic_fg_ari(model, params, batch, out, max_ids))
    return result

  return eval_step
