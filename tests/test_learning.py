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
    loss, grads = jax.value_and_grad(lambda p: model.apply(p, rng, batch)["loss"])(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  losses = []
  for step in range(300):
    params, opt_state, loss = update(params, opt_state, jax.random.PRNGKey(step))
    losses.append(float(loss))
  first, last = np.mean(losses[:5]), np.mean(losses[-10:])
  print(f"loss {first:.1f} -> {last:.1f}")
  assert np.all(np.isfinite(losses))
  assert last < first / 5   # the ELBO per frame improves by a large factor
