"""It really learns: RMSProp with global-norm clipping lowers the loss by a large factor."""
import jax
import numpy as np
import optax

from parts_jax import build_model
from helpers import moving_squares, tiny_model_config


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
