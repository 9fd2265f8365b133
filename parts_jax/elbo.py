"""The per-frame ELBO with beta (Eq 7), from decoder outputs. Pure functions, no parameters.

  L_t = E_q[log p(x_t | z)] - beta * KL(q_lambda(z) || p(z))
estimated with one reparameterised sample. The optimiser minimises the mean over time of -L_t
(section 3.3).
"""
from typing import NamedTuple, Optional

import chex
import jax.numpy as jnp

from parts_jax import distributions, likelihood


class FrameELBO(NamedTuple):
  elbo: jnp.ndarray          # [B]  log-likelihood - beta * KL
  nll: jnp.ndarray           # [B]  -sum_i log p(x_i | z)
  kl: jnp.ndarray            # [B]  KL summed over slots and features
  loglik_image: jnp.ndarray  # [B, H, W] per-pixel log-likelihood
  log_masks: jnp.ndarray     # [B, K, H, W]


def frame_elbo(x: jnp.ndarray, means: jnp.ndarray, mask_logits: jnp.ndarray,
               lam: jnp.ndarray, *, beta: float, sigma_x: float,
               prior_lam: Optional[jnp.ndarray] = None,
               pixel_likelihood: str = "mixture") -> FrameELBO:
  """x [B,H,W,3], means [B,K,H,W,3], mask_logits [B,K,H,W], lam [B,K,2D] (prior_lam same).

  pixel_likelihood: "mixture" (Eq 2) or "blend" (parts_jax/likelihood.py)."""
  chex.assert_rank(lam, 3)
  if pixel_likelihood not in likelihood.PIXEL_LIKELIHOODS:
    raise ValueError(f"pixel_likelihood must be one of {tuple(likelihood.PIXEL_LIKELIHOODS)}, "
                     f"got {pixel_likelihood!r}")
  loglik_image, log_masks = likelihood.PIXEL_LIKELIHOODS[pixel_likelihood](
      x, means, mask_logits, sigma_x)
  nll = -jnp.sum(loglik_image, axis=(1, 2))
  kl = jnp.sum(distributions.kl_divergence(lam, prior_lam), axis=1)
  return FrameELBO(elbo=-nll - beta * kl, nll=nll, kl=kl,
                   loglik_image=loglik_image, log_masks=log_masks)
