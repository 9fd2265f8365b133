"""It really learns: RMSProp with global-norm clipping lowers the loss by a large factor."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from parts_jax import build_model
from helpers import moving_squares, tiny_model_config


@pytest.mark.slow
def test_rmsprop_lowers_loss_by_large_factor():
  cfg = tiny_model_config()
  cfg.image_size = (12, 12)
  model = build_model(cfg)
  batch = moving_squares(np.random.default_rng(0), 4, 3, 12)
  params = model.init(jax.random.PRNGKey(0), batch)
  opt = optax.chain(optax.clip_by_global_norm(5.0), optax.rmsprop(3e-3))
  opt_state = opt.init(params)

  @jax.jit
  def update(params, opt_state, rng):
    def loss_fn(p):
      out = model.apply(p, rng, batch)
      return out["loss"], jax.numpy.mean(out["mse"])
    (loss, mse), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss, mse

  losses, mses = [], []
  for step in range(300):
    params, opt_state, loss, mse = update(params, opt_state, jax.random.PRNGKey(step))
    losses.append(float(loss))
    mses.append(float(mse))
  first, last = np.mean(losses[:5]), np.mean(losses[-10:])
  mse_first, mse_last = np.mean(mses[:5]), np.mean(mses[-10:])
  print(f"loss {first:.1f} -> {last:.1f}, reconstruction MSE {mse_first:.4f} -> {mse_last:.4f}")
  assert np.all(np.isfinite(losses))
  # -ELBO is in nats per frame and can go negative, so the factor is read off the
  # reconstruction error; the loss must fall by far more than its noise.
  assert mse_last < mse_first / 5
  assert first - last > 1000.0


def test_learning_rate_schedule_warmup_and_cool_down_by_hand():
  """Linear warm-up to the rate, constant, then (train.decay_*) linear to a fraction of it."""
  from experiments import setup_lib, trainer
  from experiments.configs import common
  from parts_jax.config import ConfigError
  config = common.base_config()
  config.train.update(learning_rate=2e-3, warmup_steps=100)
  constant = trainer.learning_rate(config.train)
  np.testing.assert_allclose([constant(s) for s in (0, 25, 100, 5000, 10 ** 6)],
                             [0.0, 5e-4, 2e-3, 2e-3, 2e-3], rtol=1e-6)
  config.train.update(decay_start=1000, decay_steps=400, decay_final_fraction=0.1)
  cool = trainer.learning_rate(config.train)
  # before the decay: the warm-up's values; 100 steps in: 2e-3 * (1 - 0.9 * 100 / 400)
  np.testing.assert_allclose([cool(s) for s in (25, 1000, 1100, 1400, 5000)],
                             [5e-4, 2e-3, 1.55e-3, 2e-4, 2e-4], rtol=1e-6)
  # The optimizer takes its step size from the schedule at the optimizer's count: one SGD-like
  # RMSProp update from count 1100 moves a parameter by lr(1100) * g / sqrt(nu + eps).
  opt = trainer.make_optimizer(config.train)
  params = {"w": jnp.zeros(3)}
  state = opt.init(params)
  state = jax.tree.map(lambda x: jnp.full_like(x, 1100) if x.dtype == jnp.int32 else x, state)
  g = {"w": jnp.array([0.1, -0.2, 0.3])}
  updates, _ = opt.update(g, state, params)
  nu = (1 - config.train.rmsprop_decay) * g["w"] ** 2
  np.testing.assert_allclose(updates["w"], -1.55e-3 * g["w"] / np.sqrt(nu + config.train.rmsprop_eps),
                             rtol=1e-5)
  for field, value in (("decay_steps", 0), ("decay_final_fraction", 1.5)):
    bad = common.base_config()
    bad.train.update(**dict(dict(decay_start=10, decay_steps=100), **{field: value}))
    with pytest.raises(ConfigError, match=f"train.{field}"):
      setup_lib.check_config(bad)
