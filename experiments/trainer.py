"""The training step: gradients (parts_jax.lowering), then the optax update."""
from typing import List, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from parts_jax import lowering

_step_key = jax.jit(jax.random.fold_in)   # the noise key of step s: fold_in(state["rng"], s)


def learning_rate(train_config: ml_collections.ConfigDict) -> optax.Schedule:
  """step -> learning rate: linear warm-up, constant, then (from `decay_start`, if >= 0) linear
  decay over `decay_steps` to `decay_final_fraction` of it (a cool-down; not in the paper)."""
  warmup = optax.linear_schedule(0.0, train_config.learning_rate,
                                 max(train_config.warmup_steps, 1))
  start = train_config.decay_start   # every train config has it (experiments/configs/common.py)
  if start < 0:
    return warmup
  steps, final = train_config.decay_steps, train_config.decay_final_fraction

  def schedule(count):
    done = jnp.clip((count - start) / steps, 0.0, 1.0)
    return warmup(count) * (1.0 - (1.0 - final) * done)
  return schedule


def make_optimizer(train_config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """RMSProp with global-norm clipping (section 4) and `learning_rate`'s schedule."""
  lr = learning_rate(train_config)
  return optax.chain(
      optax.clip_by_global_norm(train_config.grad_clip_norm),
      optax.rmsprop(lr, decay=train_config.rmsprop_decay, eps=train_config.rmsprop_eps))


class NonFiniteError(FloatingPointError):
  """NaN or Inf in the loss or gradients."""


class TrainStep:
  """(state, batch) -> (state, scalars); state = dict(step, params, opt_state, rng, skipped).

  `grads`: the gradients of the loss under the model's lowering (`lowering.Gradients`); then
  `update`: one jitted RMSProp step (skipped when not finite and `skip_nonfinite`).
  """

  def __init__(self, model, optimizer, skip_nonfinite: bool,
               gradients: Optional[lowering.Gradients] = None):
    self.model = model
    self.optimizer = optimizer
    self.skip_nonfinite = skip_nonfinite
    self.gradients = gradients or lowering.Gradients(model)
    self.update = jax.jit(self._update, static_argnums=(3,), donate_argnums=(0,))

  def grads(self, state, batch):
    """(grads, `lowering.frame_sums`: elbo/kl/nll/mse, and fitted_elbo when on, summed over B
    and T) for one batch."""
    return self.gradients(state["params"], _step_key(state["rng"], state["step"]), batch)

  def _update(self, state, grads, sums, num_frames):
    scalars = lowering.per_frame(sums, num_frames)
    grad_norm = optax.tree.norm(grads)
    updates, opt_state = self.optimizer.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    finite = jnp.isfinite(scalars["loss"]) & jnp.isfinite(grad_norm)
    if self.skip_nonfinite:
      keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
      params = keep(params, state["params"])
      opt_state = keep(opt_state, state["opt_state"])
    new_state = dict(step=state["step"] + 1, params=params, opt_state=opt_state,
                     rng=state["rng"], skipped=state["skipped"] + (1 - finite.astype(jnp.int32)))
    scalars.update(grad_norm=grad_norm, loss_finite=jnp.isfinite(scalars["loss"]),
                   grads_finite=jnp.isfinite(grad_norm))
    return new_state, scalars

  def __call__(self, state, batch):
    grads, sums = self.grads(state, batch)
    b, t = batch["video"].shape[:2]
    return self.update(state, grads, sums, b * t)

  def programs(self, state, batch) -> List[lowering.Program]:
    """The distinct compiled programs one step runs (nothing is run), with arguments to lower
    them with: the noise key, the gradient programs, the update. state and batch may hold
    jax.ShapeDtypeStruct."""
    like = lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype,
                                          sharding=getattr(x, "sharding", None))
    key = like(state["rng"])       # fold_in keeps the key's shape, dtype and sharding
    grads = jax.tree.map(like, state["params"])
    scalar = jax.ShapeDtypeStruct((), jnp.float32, sharding=getattr(state["step"], "sharding",
                                                                     None))
    sums = {k: scalar for k in lowering.summed(self.model.config)}
    b, t = batch["video"].shape[:2]
    return ([lowering.Program("key", _step_key, (state["rng"], state["step"]), 1)]
            + self.gradients.programs(state["params"], key, batch)
            + [lowering.Program("update", self.update, (state, grads, sums, b * t), 1)])

  def loop_free(self) -> "TrainStep":
    """This step with loop-free programs (`lowering.Gradients.loop_free`), for FLOP counts."""
    return TrainStep(self.model, self.optimizer, self.skip_nonfinite,
                     self.gradients.loop_free())
