"""Softmax masks (Eq 1) and the pixel likelihood (Eq 2), in log space.

  m_k = softmax_k(m_hat_k)
  "mixture" (the paper's Eq 2):
    log p(x_i | z) = logsumexp_k [ log m_ik + sum_c log N(x_ic | C_ikc, sigma_x^2) ]
  "blend" (not in the paper; the Gaussian on the blended image that Slot Attention and SAVi train
  with as an MSE, a study candidate, `model.likelihood`):
    log p(x_i | z) = sum_c log N(x_ic | sum_k m_ik C_ikc, sigma_x^2)
  Under the mixture a soft mask costs log m_ik wherever the colours already tell the components
  apart; under the blend every pixel where soft masks mix two different colours is wrong.
"""
from typing import Tuple

import chex
import jax
import jax.numpy as jnp
import numpy as np


def masks_from_logits(mask_logits: jnp.ndarray) -> jnp.ndarray:
  """[B, K, H, W] logits -> [B, K, H, W] masks summing to one over K (Eq 1)."""
  return jax.nn.softmax(mask_logits, axis=1)


def log_masks_from_logits(mask_logits: jnp.ndarray) -> jnp.ndarray:
  """[B, K, H, W] logits -> [B, K, H, W] log m_k (Eq 1), computed stably."""
  return jax.nn.log_softmax(mask_logits, axis=1)


def component_log_likelihood(x: jnp.ndarray, means: jnp.ndarray,
                             sigma_x: float) -> jnp.ndarray:
  """log N(x_i | C_ik, sigma_x^2 I) summed over RGB: x [B,H,W,3], means [B,K,H,W,3] -> [B,K,H,W]."""
  log_normal = (-0.5 * jnp.square((x[:, None] - means) / sigma_x)
                - jnp.log(sigma_x) - 0.5 * np.log(2 * np.pi))
  return jnp.sum(log_normal, axis=-1)


def log_responsibilities(x: jnp.ndarray, means: jnp.ndarray, log_masks: jnp.ndarray,
                         sigma_x: float) -> jnp.ndarray:
  """log p(k | x_i) [B, K, H, W]: the log posterior over components per pixel."""
  return jax.nn.log_softmax(log_masks + component_log_likelihood(x, means, sigma_x), axis=1)


def responsibilities(x: jnp.ndarray, means: jnp.ndarray, log_masks: jnp.ndarray,
                     sigma_x: float) -> jnp.ndarray:
  """Posterior over components per pixel, p(k | x_i) [B, K, H, W]."""
  return jnp.exp(log_responsibilities(x, means, log_masks, sigma_x))


def mixture_log_likelihood(x: jnp.ndarray, means: jnp.ndarray, mask_logits: jnp.ndarray,
                           sigma_x: float) -> Tuple[jnp.ndarray, jnp.ndarray]:
  """Per-pixel log-likelihood of the mixture (Eq 2).

  Args:
    x: [B, H, W, 3] frame.
    means: [B, K, H, W, 3] component means C_k.
    mask_logits: [B, K, H, W] mask logits m_hat_k.
    sigma_x: fixed pixel standard deviation.
  Returns:
    loglik: [B, H, W] log p(x_i | z) per pixel.
    log_masks: [B, K, H, W] log m_k.
  """
  chex.assert_rank(x, 4)
  chex.assert_rank(means, 5)
  chex.assert_equal_shape([means[:, 0], x])
  log_masks = log_masks_from_logits(mask_logits)
  component_loglik = component_log_likelihood(x, means, sigma_x)    # [B, K, H, W]
  loglik = jax.nn.logsumexp(log_masks + component_loglik, axis=1)   # [B, H, W]
  return loglik, log_masks


def blend_log_likelihood(x: jnp.ndarray, means: jnp.ndarray, mask_logits: jnp.ndarray,
                         sigma_x: float) -> Tuple[jnp.ndarray, jnp.ndarray]:
  """Per-pixel log N(x_i | sum_k m_ik C_ik, sigma_x^2 I); arguments and returns as
  `mixture_log_likelihood`'s."""
  chex.assert_rank(x, 4)
  chex.assert_rank(means, 5)
  chex.assert_equal_shape([means[:, 0], x])
  log_masks = log_masks_from_logits(mask_logits)
  recon = mixture_mean(jnp.exp(log_masks), means)                   # [B, H, W, 3]
  return component_log_likelihood(x, recon[:, None], sigma_x)[:, 0], log_masks


PIXEL_LIKELIHOODS = {"mixture": mixture_log_likelihood, "blend": blend_log_likelihood}


def mixture_mean(masks: jnp.ndarray, means: jnp.ndarray) -> jnp.ndarray:
  """The reconstruction sum_k m_k C_k: masks [B,K,H,W], means [B,K,H,W,3] -> [B,H,W,3]."""
  return jnp.sum(masks[..., None] * means, axis=1)
