"""Eq 1, Eq 2 and the KL against independent NumPy / Monte Carlo computations."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from parts_jax import config, distributions, elbo, likelihood


def _random_decoder_outputs(seed, b=2, k=4, h=5, w=6):
  rng = np.random.default_rng(seed)
  x = rng.uniform(0, 1, (b, h, w, 3)).astype(np.float32)
  means = rng.uniform(0, 1, (b, k, h, w, 3)).astype(np.float32)
  logits = rng.normal(0, 2, (b, k, h, w)).astype(np.float32)
  return x, means, logits


def _float64_inputs(x, means, logits):
  """x and means in float64, and the softmax masks over K computed directly in float64."""
  l64 = logits.astype(np.float64)
  masks = np.exp(l64) / np.sum(np.exp(l64), axis=1, keepdims=True)
  return x.astype(np.float64), means.astype(np.float64), masks


def _normal_density(x, mean, sigma):
  """N(x; mean, sigma^2 I) over the last (RGB) axis, not in log space."""
  return np.prod(np.exp(-0.5 * ((x - mean) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi)),
                 axis=-1)


def test_masks_sum_to_one_per_pixel():
  _, _, logits = _random_decoder_outputs(0)
  masks = likelihood.masks_from_logits(jnp.asarray(logits))
  np.testing.assert_allclose(np.sum(masks, axis=1), 1.0, atol=1e-6)
  assert np.all(np.asarray(masks) > 0)


def test_mixture_log_likelihood_matches_numpy():
  x, means, logits = _random_decoder_outputs(1)
  sigma = 0.3
  loglik, log_masks = likelihood.mixture_log_likelihood(x, means, logits, sigma)
  # Direct (non-log-space) NumPy computation in float64: p(x_i) = sum_k m_k N(x_i; C_k, s^2 I).
  x64, m64, masks = _float64_inputs(x, means, logits)
  expected = np.log(np.sum(masks * _normal_density(x64[:, None], m64, sigma), axis=1))
  np.testing.assert_allclose(loglik, expected, rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(np.exp(log_masks), masks, atol=1e-6)


def test_blend_log_likelihood_matches_numpy():
  x, means, logits = _random_decoder_outputs(6)
  sigma = 0.2
  loglik, log_masks = likelihood.blend_log_likelihood(x, means, logits, sigma)
  # Non-log-space float64: N(x_i; sum_k m_ik C_ik, s^2 I), the density written out.
  x64, m64, masks = _float64_inputs(x, means, logits)
  recon = np.einsum("bkhw,bkhwc->bhwc", masks, m64)
  np.testing.assert_allclose(loglik, np.log(_normal_density(x64, recon, sigma)), rtol=1e-5,
                             atol=1e-4)
  np.testing.assert_allclose(np.exp(log_masks), masks, atol=1e-6)


def test_blend_punishes_soft_masks_where_the_mixture_does_not():
  # Two components, each exactly right on its own pixel; masks 0.5 / 0.5 everywhere. The mixture
  # loses only log 2 per pixel; the blend is off by half the colour difference, by hand:
  # per pixel -0.5 * 3 * (0.5 / 0.1)^2 - 3 * log(0.1 * sqrt(2 pi)).
  x = np.zeros((1, 1, 2, 3), np.float32)
  x[0, 0, 1] = 1.0
  means = np.stack([np.zeros((1, 2, 3)), np.ones((1, 2, 3))])[None].astype(np.float32)
  logits = np.zeros((1, 2, 1, 2), np.float32)
  s = 0.1
  log_norm = -3 * np.log(s * np.sqrt(2 * np.pi))
  mix, _ = likelihood.mixture_log_likelihood(x, means, logits, s)
  blend, _ = likelihood.blend_log_likelihood(x, means, logits, s)
  np.testing.assert_allclose(mix, np.full((1, 1, 2), log_norm - np.log(2)), rtol=1e-5)
  np.testing.assert_allclose(blend, np.full((1, 1, 2), log_norm - 1.5 * 25), rtol=1e-5)


def test_config_names_every_pixel_likelihood_the_module_implements():
  # The config validates names from its own tuple (no jax import); the model looks them up here.
  assert tuple(likelihood.PIXEL_LIKELIHOODS) == config.PIXEL_LIKELIHOODS


def test_log_likelihood_is_stable_for_tiny_sigma():
  x, means, logits = _random_decoder_outputs(2)
  loglik, _ = likelihood.mixture_log_likelihood(x, means, logits, 0.01)
  assert np.all(np.isfinite(loglik))


def test_kl_matches_monte_carlo():
  rng = np.random.default_rng(3)
  d = 3
  lam_q = rng.normal(0, 0.5, (2, d * 2)).astype(np.float32)
  lam_p = rng.normal(0, 0.5, (2, d * 2)).astype(np.float32)
  for prior in (None, lam_p):
    kl = np.asarray(distributions.kl_divergence(jnp.asarray(lam_q), prior))
    mu_q, ls_q = lam_q[:, :d], lam_q[:, d:]
    mu_p, ls_p = (np.zeros_like(mu_q), np.zeros_like(ls_q)) if prior is None else (
        lam_p[:, :d], lam_p[:, d:])
    n = 400_000
    z = mu_q[None] + np.exp(ls_q)[None] * rng.normal(size=(n,) + mu_q.shape)
    logq = -0.5 * ((z - mu_q) / np.exp(ls_q)) ** 2 - ls_q
    logp = -0.5 * ((z - mu_p) / np.exp(ls_p)) ** 2 - ls_p
    mc = np.mean(np.sum(logq - logp, axis=-1), axis=0)
    np.testing.assert_allclose(kl, mc, atol=0.02, rtol=0.02)
  assert np.all(np.asarray(distributions.kl_divergence(jnp.zeros((3, 8)))) == 0)


def test_frame_elbo_combines_terms_with_beta():
  x, means, logits = _random_decoder_outputs(4, k=3)
  lam = np.random.default_rng(5).normal(size=(2, 3, 8)).astype(np.float32)
  fe = elbo.frame_elbo(x, means, logits, lam, beta=0.5, sigma_x=0.2)
  ll, _ = likelihood.mixture_log_likelihood(x, means, logits, 0.2)
  np.testing.assert_allclose(fe.nll, -np.sum(ll, axis=(1, 2)), rtol=1e-6)
  kl = np.sum(np.asarray(distributions.kl_divergence(jnp.asarray(lam))), axis=1)
  np.testing.assert_allclose(fe.kl, kl, rtol=1e-6)
  np.testing.assert_allclose(fe.elbo, -fe.nll - 0.5 * kl, rtol=1e-6)
  fb = elbo.frame_elbo(x, means, logits, lam, beta=0.5, sigma_x=0.2, pixel_likelihood="blend")
  lb, _ = likelihood.blend_log_likelihood(x, means, logits, 0.2)
  np.testing.assert_allclose(fb.nll, -np.sum(lb, axis=(1, 2)), rtol=1e-6)
  np.testing.assert_allclose(fb.elbo, -fb.nll - 0.5 * kl, rtol=1e-6)
  with pytest.raises(ValueError, match="pixel_likelihood"):
    elbo.frame_elbo(x, means, logits, lam, beta=0.5, sigma_x=0.2, pixel_likelihood="mse")


def test_sample_is_reparameterised():
  lam = jnp.array([[1.0, -2.0, np.log(2.0), 0.0]])
  eps = jnp.array([[0.5, 1.0]])
  np.testing.assert_allclose(distributions.sample(lam, eps), [[2.0, -1.0]], rtol=1e-6)
  g = jax.grad(lambda l: jnp.sum(distributions.sample(l, eps)))(lam)
  np.testing.assert_allclose(g, [[1.0, 1.0, 1.0, 1.0]], rtol=1e-6)
