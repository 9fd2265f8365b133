"""Tests for experiments.posterior_fit: the first Adam step on lambda by hand, and a workdir end
to end against an sklearn recomputation of the starting segmentation."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import adjusted_rand_score

from experiments import position_probe, posterior_fit, setup_lib
from parts_jax import distributions
from scipy.special import logsumexp
from test_evaluate import NUM_EVAL, make_workdir, tiny_config


def test_first_step_is_adam_on_the_negative_elbo(tmp_path):
  config = tiny_config(str(tmp_path / "data"))
  workdir = str(tmp_path / "run")
  make_workdir(workdir, config)
  config, batch = position_probe.run_and_sequences(workdir, "eval", 2, "test")
  model, params, _ = setup_lib.restore_model(config, workdir, batch)
  x = jnp.asarray(batch["video"][:, -1])
  lam0 = 0.5 * jax.random.normal(jax.random.PRNGKey(3), (2, config.model.num_slots,
                                                         2 * config.model.slot_dim))
  seen = []
  rng, lr = jax.random.PRNGKey(7), 0.01
  curve = posterior_fit.fit_curve(model, params, x, lam0, steps=1, learning_rate=lr,
                                  curve_every=1, rng=rng,
                                  measure=lambda lam, step: seen.append(lam) or dict(n=step))
  assert [row["step"] for row in curve] == [0, 1] and [row["n"] for row in curve] == [0, 1]
  np.testing.assert_array_equal(seen[0], lam0)
  # By hand: the noise of step 1, the gradient of the summed -ELBO by central differences on a
  # few entries, and Adam's first update -lr * g / (|g| + 1e-8) (bias-corrected moments).
  eps = distributions.standard_normal(jax.random.fold_in(rng, 1), lam0)
  f = lambda lam: float(model.negative_elbo(params, x, lam, eps)[0])
  lam64 = np.asarray(lam0, np.float64)
  for index in [(0, 0, 0), (1, 2, 1), (0, 1, 2 * config.model.slot_dim - 1)]:
    h = np.zeros_like(lam64)
    h[index] = 1e-2
    g = (f(jnp.asarray(lam64 + h, jnp.float32)) - f(jnp.asarray(lam64 - h, jnp.float32))) / 2e-2
    assert abs(g) > 1e-2                       # a step whose sign the difference can tell
    assert float(seen[1][index]) == pytest.approx(lam64[index] - lr * np.sign(g), abs=1e-5)
  with pytest.raises(ValueError, match="curve_every"):
    posterior_fit.fit_curve(model, params, x, lam0, steps=1, learning_rate=lr, curve_every=0,
                            rng=rng, measure=lambda lam, step: {})


def test_true_slot_map_by_hand():
  seg = np.array([[[0, 0, 1], [0, 2, 2]]])                # [1, 2, 3]: background, sprites 1, 2
  resp = np.zeros((1, 3, 2, 3))
  resp[0, 2] = 1.0                                         # slot 2 wins everything...
  resp[0, 1, 1, 0] = resp[0, 1, 0, 0] = 2.0                # ...but two background pixels
  resp[0, 0, 0, 2] = 3.0                                   # and the pixel of sprite 1
  # Background: slot 1 wins 2 of its 3 pixels; sprite 1 -> slot 0; sprite 2 -> slot 2.
  np.testing.assert_array_equal(posterior_fit.true_slot_map(resp, seg),
                                [[[1, 1, 0], [1, 2, 2]]])


def test_fit_of_a_workdir(tmp_path):
  config = tiny_config(str(tmp_path / "data"))
  workdir = str(tmp_path / "run")
  make_workdir(workdir, config)
  figures = str(tmp_path / "figures")
  result = posterior_fit.fit(workdir, num_sequences=NUM_EVAL, steps=40, learning_rate=0.05,
                             curve_every=20, elbo_samples=2, folds=2, figures=figures,
                             figure_sequences=3)
  curve = result["curve"]
  assert [row["step"] for row in curve] == [0, 20, 40]
  assert curve[-1]["elbo"] > curve[0]["elbo"]          # the fit raises the ELBO it fits
  # Independently at step 0: the masks of the refined posterior decoded at its mean, argmax per
  # pixel, scikit-learn's ARI on the foreground pixels of the last frame.
  lam, maps, seg, _, config = position_probe.slots_and_masks(workdir, "eval", NUM_EVAL,
                                                             maps=("masks_refined",))
  pred, seg = np.argmax(maps["masks_refined"][:, -1], axis=1), seg[:, -1]
  scores = [adjusted_rand_score(s[s > 0], p[s > 0]) for s, p in zip(seg, pred) if (s > 0).any()]
  assert curve[0]["fg_ari"] == pytest.approx(np.mean(scores), abs=1e-4)
  for row in curve:
    assert 0.0 <= row["fg_in_background_slot"] <= 1.0 and row["kl"] >= 0.0
  assert set(result["shape_probe"]) == {"model", "fitted"}
  # The oracle rows at step 0, by hand in NumPy: Eq 2's log-likelihood of the decode at mu with
  # its own masks, and with the true segmentation's masks (eps 1e-2).
  run_config, batch = position_probe.run_and_sequences(workdir, "eval", NUM_EVAL, "test")
  model, params, _ = setup_lib.restore_model(run_config, workdir, batch)
  decoded = model.decode(params, lam[:, -1, :, :config.model.slot_dim])
  comps, masks = np.asarray(decoded["components"], np.float64), np.asarray(decoded["masks"])
  x, sigma = batch["video"][:, -1].astype(np.float64), config.model.sigma_x
  log_n = np.sum(-0.5 * ((x[:, None] - comps) / sigma) ** 2 - np.log(sigma)
                 - 0.5 * np.log(2 * np.pi), axis=-1)                      # [B, K, H, W]
  frame = lambda m: np.mean(np.sum(logsumexp(np.log(m) + log_n, axis=1), axis=(1, 2)))
  resp = np.exp(np.log(masks) + log_n - logsumexp(np.log(masks) + log_n, axis=1, keepdims=True))
  slots = posterior_fit.true_slot_map(resp, batch["segmentations"][:, -1])
  true = np.moveaxis(np.eye(masks.shape[1])[slots], -1, 1) * 0.99 + 0.01 / masks.shape[1]
  row = result["oracle_masks"]["model"]
  assert row["loglik"] == pytest.approx(frame(masks), rel=1e-4)
  assert row["true_masks"]["0.01"] == pytest.approx(frame(true), rel=1e-4)
  assert row["gain"] == pytest.approx(max(row["true_masks"].values()) - row["loglik"])
  # The figures: the first 3 sequences' last frames before and after the fit.
  images = {k: np.asarray(Image.open(p)) for k, p in result["figures"].items()}
  assert set(images) == {"model", "fitted"} and all(p.startswith(figures)
                                                    for p in result["figures"].values())
  assert images["model"].shape == images["fitted"].shape
  assert not np.array_equal(images["model"], images["fitted"])
  json.dumps(result)   # The CLI writes it as JSON.
  for bad in (dict(elbo_samples=0), dict(figure_sequences=0)):
    with pytest.raises(ValueError, match="must be >= 1"):
      posterior_fit.fit(workdir, num_sequences=NUM_EVAL, steps=1, **bad)
