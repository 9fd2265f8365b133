"""Posterior parameters lambda = (mu, log sigma), the fixed N(0, I) prior, sampling and KL.

lambda has shape [..., K, 2D]: the first D entries are mu, the last D are log sigma.
"""
from typing import Optional, Tuple

import jax
import jax.numpy as jnp


def split_lambda(lam: jnp.ndarray) -> Tuple[jnp.ndarray, jnp.ndarray]:
  """[..., 2D] -> (mu [..., D], log_sigma [..., D])."""
  d = lam.shape[-1] // 2
  return lam[..., :d], lam[..., d:]


def fixed_prior(lam: jnp.ndarray) -> jnp.ndarray:
  """The fixed, time-independent prior N(0, I) as lambda = zeros (section 3.1)."""
  return jnp.zeros_like(lam)


def sample(lam: jnp.ndarray, eps: jnp.ndarray) -> jnp.ndarray:
  """Reparameterised sample z = mu + sigma * eps. lam [..., 2D], eps [..., D] -> z [..., D]."""
  mu, log_sigma = split_lambda(lam)
  return mu + jnp.exp(log_sigma) * eps


def kl_divergence(lam_q: jnp.ndarray, lam_p: Optional[jnp.ndarray] = None) -> jnp.ndarray:
  """Analytic KL(q || p) of diagonal Gaussians, summed over the last axis.

  lam_q, lam_p: [..., 2D]; lam_p None means the fixed prior N(0, I). Returns [...].
  """
  return jnp.sum(kl_per_dim(lam_q, lam_p), axis=-1)


def kl_per_dim(lam_q: jnp.ndarray, lam_p: Optional[jnp.ndarray] = None) -> jnp.ndarray:
  """The terms of `kl_divergence`, one per latent dimension: [..., 2D] -> [..., D]."""
  mu_q, log_sigma_q = split_lambda(lam_q)
  if lam_p is None:
    mu_p, log_sigma_p = jnp.zeros_like(mu_q), jnp.zeros_like(log_sigma_q)
  else:
    mu_p, log_sigma_p = split_lambda(lam_p)
  var_ratio = jnp.exp(2.0 * (log_sigma_q - log_sigma_p))
  mahalanobis = jnp.square(mu_q - mu_p) * jnp.exp(-2.0 * log_sigma_p)
  return log_sigma_p - log_sigma_q + 0.5 * (var_ratio + mahalanobis - 1.0)


def standard_normal(rng: jax.Array, lam: jnp.ndarray) -> jnp.ndarray:
  """eps ~ N(0, I) shaped like mu of lam."""
  return jax.random.normal(rng, lam.shape[:-1] + (lam.shape[-1] // 2,), lam.dtype)
