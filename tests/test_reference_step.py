"""The model against an independent float64 NumPy reference of the PARTS time step
(tests/reference_step.py): with perturbed (non-zero) parameters, several steps of
`PARTS.apply` give the reference's ELBO, KL, NLL, masks, reconstruction, attention, posterior
and the posterior the masks decode at every step, for N = 1 and 2, the fixed and the predictive
prior, with lambda_t^N decoded into the loss (decode_refined), with and without actions,
with burn-in (roll-out steps), with the segmentation study's switches (the blended-image
likelihood among them), and for the S-IODINE and OP3 rows (IODINE-style refiner); and
PARTS.rollout past the end of the batch."""
import jax
import numpy as np
import pytest

import reference_step as ref
from helpers import moving_squares, tiny_model_config
from parts_jax import build_model, distributions

B, T = 2, 3

CASES = {
    "n1_fixed_prior": {},
    "n2": dict(num_refine_steps=2),
    "decode_refined": dict(decode_refined=True),
    "n2_decode_refined": dict(num_refine_steps=2, decode_refined=True),
    "predictive_prior": dict(predictive_prior=True),
    "no_actions": dict(use_actions=False),
    "burn_in": dict(burn_in=1),
    "no_top_down": dict(top_down=False),
    "study_switches": dict(refine_lambda_input=True, query_layernorm=True),
    "attention_bias_masks": {"attention.logit_bias": "log_masks"},
    "attention_bias_responsibilities": {"num_refine_steps": 2,
                                        "attention.logit_bias": "log_responsibilities"},
    "blend_likelihood": dict(num_refine_steps=2, likelihood="blend"),
    "s_iodine": dict(slot_attention=False, use_actions=False, **{"predictor.kind": "lstm"}),
    "op3": dict(slot_attention=False, predictive_prior=True, **{"predictor.kind": "lstm"}),
}


def _perturbed(params, seed=0, scale=0.3):
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
  return jax.tree.unflatten(tree, [p + scale * jax.random.normal(k, p.shape)
                                   for p, k in zip(leaves, keys)])


def _noise(cfg, rng, t, n, lam_shape, num_steps=T):
  """The reparameterisation noise the model draws at step t, refinement iteration n."""
  step_rng = jax.random.split(rng, num_steps)[t]
  return np.asarray(distributions.standard_normal(jax.random.fold_in(step_rng, n),
                                                  np.zeros(lam_shape, np.float32)), np.float64)


def run_reference(cfg, params, batch, rng, burn_in=None):
  """The reference over the whole batch; steps t >= burn_in (default cfg.burn_in, 0 = none) are
  predicted without refinement."""
  video = np.asarray(batch["video"], np.float64)
  num_steps = video.shape[1]
  actions = (np.asarray(batch["actions"], np.float64) * cfg.action_scale if cfg.use_actions
             else np.zeros((B, num_steps, 0)))
  carry = ref.initial_carry(cfg, B, actions.shape[-1])
  lam_shape = (B, cfg.num_slots, 2 * cfg.slot_dim)
  burn_in = cfg.burn_in if burn_in is None else burn_in
  per_step = []
  for t in range(num_steps):
    eps = {n: _noise(cfg, rng, t, n, lam_shape, num_steps)
           for n in range(cfg.num_refine_steps + 1)}
    observe = burn_in == 0 or t < burn_in
    carry, out = ref.step(ref.to_numpy(params), cfg, carry, video[:, t], actions[:, t], eps,
                          observe)
    per_step.append(out)
  return {k: np.stack([o[k] for o in per_step], axis=1) for k in per_step[0]}


@pytest.mark.parametrize("case", sorted(CASES))
def test_model_steps_equal_the_numpy_reference(case):
  cfg = tiny_model_config(time_loop="unroll", **CASES[case])
  model = build_model(cfg)
  batch = moving_squares(np.random.default_rng(0), B, T, cfg.image_size[0])
  # The IODINE-style refiner's larger input blows lambda up at the default perturbation.
  scale = 0.3 if cfg.slot_attention else 0.05
  params = _perturbed(model.init(jax.random.PRNGKey(0), batch), scale=scale)
  rng = jax.random.PRNGKey(3)
  got = jax.jit(model.apply)(params, rng, batch)
  want = run_reference(cfg, params, batch, rng)
  for key in ("elbo", "kl", "nll", "masks", "recon", "attention", "posterior",
              "decoded_posterior", "prior"):
    g, w = np.asarray(got[key], np.float64), want[key]
    assert g.shape == w.shape, (key, g.shape, w.shape)
    np.testing.assert_allclose(g, w, rtol=2e-3, atol=2e-3 * max(np.abs(w).max(), 1e-3),
                               err_msg=f"{case}: {key}")
  np.testing.assert_allclose(float(got["loss"]), -want["elbo"].mean(), rtol=1e-4)
  # The posterior moved: the refinement and the predictor are not no-ops here.
  if cfg.burn_in == 0:
    assert np.abs(want["posterior"][:, 1:] - want["posterior"][:, :-1]).max() > 1e-2


def test_rollout_equals_the_reference_with_padded_frames():
  """PARTS.rollout (4.2): burn_in observed frames, then rollout_steps predicted from actions
  alone, past the end of the batch (frames and actions beyond T are zeros)."""
  cfg = tiny_model_config(time_loop="unroll")
  model = build_model(cfg)
  batch = moving_squares(np.random.default_rng(1), B, T, cfg.image_size[0])
  params = _perturbed(model.init(jax.random.PRNGKey(0), batch), seed=1)
  rng = jax.random.PRNGKey(4)
  burn_in, rollout_steps = 2, 3
  got = model.rollout(params, rng, batch, burn_in, rollout_steps)
  total = burn_in + rollout_steps
  padded = {k: np.concatenate([v, np.zeros((B, total - T) + v.shape[2:], v.dtype)], axis=1)
            for k, v in batch.items()}
  want = run_reference(cfg, params, padded, rng, burn_in=burn_in)
  for key in ("masks", "recon", "posterior", "decoded_posterior"):
    np.testing.assert_allclose(np.asarray(got[key], np.float64), want[key], rtol=2e-3,
                               atol=2e-3 * max(np.abs(want[key]).max(), 1e-3), err_msg=key)
