"""PARTS: predict -> decode -> refine, over time (sections 3.2 and 3.3).

The Haiku modules (decoder, refiner, predictor) are transformed together with
`hk.multi_transform`; a step (`PARTS.step`) is plain JAX over their pure apply functions, so it
can call `jax.grad` of the ELBO w.r.t. lambda inside a `jax.lax.scan` body. How the steps run
over time (scan, unroll, truncation windows) and the loss of 3.3 live in parts_jax/lowering.py.

One step t, with carry (lambda_{t-1}^N, predictor state, a_{t-1}):
  lambda_t^0 = P(lambda_{t-1}^N, a_{t-1})                         (3.2.1)
  for n = 1..N:
    z ~ q(lambda_t^{n-1}); decode; L = -ELBO(x_t)                 (Eqs 1, 2, 7)
    lambda_t^n = lambda_t^{n-1} + E(lambda_t^{n-1}, x_t, a_{t-1}, dL/dlambda, log p(x_t|z))  (Eq 3)
The step's loss is the mean ELBO of the decoded iterates lambda_t^0..lambda_t^{N-1}; with N = 1
that is the ELBO at lambda_t^0, which has seen only past frames, and lambda_t^1 goes to the
predictor without being decoded. With `decode_refined` lambda_t^N is decoded too and its ELBO
joins the mean (N = 1: lambda_t^0 and lambda_t^1, at one refinement's cost). With
`predictive_prior` (OP3-style) the prior is N(lambda_t^0) and the loss is the ELBO of the refined
lambda_t^N alone, which is decoded. With `semi_amortized.steps` > 0 (not in the paper)
lambda_t^N is fitted further by Adam steps, decoder fixed, and the loss adds the ELBO at the
fitted lambda ("fitted_elbo"; gradients to the decoder only) and/or subtracts a distillation
penalty w ||lambda_t^N - fitted||^2, or the KL between their decoder masks ("distill";
gradients to the refinement and predictor).

Shapes: B batch, T time, H x W image, K slots, D slot dim, A action dim.
"""
from typing import Any, Dict, NamedTuple, Optional, Tuple

import chex
import haiku as hk
import jax
import jax.numpy as jnp
import ml_collections
import optax

from parts_jax import config as config_lib
from parts_jax import distributions, elbo, layers, likelihood, lowering
from parts_jax.decoder import SoftSpatialBroadcastDecoder
from parts_jax.predictor import Predictor
from parts_jax.refinement import make_refiner

Batch = Dict[str, jnp.ndarray]
Params = hk.Params


class Carry(NamedTuple):
  lam: jnp.ndarray                           # [B, K, 2D] lambda_{t-1}^N
  state: Tuple[jnp.ndarray, jnp.ndarray]     # predictor LSTM (h, c), each [B, K, S]
  action: jnp.ndarray                        # [B, A] a_{t-1}


class StepInputs(NamedTuple):
  x: jnp.ndarray        # [B, H, W, 3]
  action: jnp.ndarray   # [B, A] a_t (becomes a_{t-1} for the next step)
  rng: jax.Array
  observe: jnp.ndarray  # [] bool: refine with x_t (False during roll-out)
  cut: jnp.ndarray      # [] bool: stop gradients through the incoming carry (TBPTT)
  first: Any            # [] bool: t = 0 (config.first_frame_refine_steps); or a Python bool


class PARTS:
  """The PARTS model and its variants, built from `config` (see parts_jax/config.py)."""

  def __init__(self, config: ml_collections.ConfigDict, backend: Optional[str] = None):
    config_lib.validate_model_config(config)
    self.config, self.backend = config, backend
    self.time_loop, self.conv_impl = config_lib.resolve_lowering(
        config, backend or jax.default_backend())
    self._fns = hk.without_apply_rng(hk.multi_transform(self._template))
    self.decode_fn, self.refine_fn, self.predict_fn = self._fns.apply

  def for_evaluation(self) -> "PARTS":
    """This model as evaluated: the same, without the semi-amortised fit (config.semi_amortized),
    a training term whose ELBO trains the decoder alone. Posteriors, masks, predictions and their
    noise draws do not change (the fit draws from keys of its own); evaluation then costs what
    the amortised model costs, and its "loss" is -ELBO for every configuration alike."""
    if not self.config.semi_amortized.steps:
      return self
    config = ml_collections.ConfigDict(self.config.to_dict())
    config.semi_amortized.steps, config.semi_amortized.distill = 0, 0.0
    return PARTS(config, self.backend)

  # --- Haiku modules ---------------------------------------------------------------------
  def _template(self):
    cfg = self.config
    decoder = SoftSpatialBroadcastDecoder(cfg.image_size, cfg.decoder.channels,
                                          cfg.decoder.kernel_size, self.conv_impl,
                                          cfg.decoder.basis, cfg.decoder.basis_hidden)
    refiner = make_refiner(cfg, self.conv_impl)
    p = cfg.predictor
    predictor = Predictor(p.kind, p.model_size, p.num_layers, p.num_heads, p.mlp_size,
                          p.lstm_size, p.residual)

    def init(x, action, lam):
      means, mask_logits = decoder(distributions.split_lambda(lam)[0])
      fe = elbo.frame_elbo(x, means, mask_logits, lam, beta=cfg.beta, sigma_x=cfg.sigma_x,
                           pixel_likelihood=cfg.likelihood)
      refiner(lam, x, action, lam, fe.loglik_image, fe.log_masks, means)
      predictor(lam, action, predictor.initial_state(*lam.shape[:2]))

    return init, (decoder, refiner, predictor)

  # --- Public API --------------------------------------------------------------------------
  @property
  def lambda_dim(self) -> int:
    return 2 * self.config.slot_dim

  def init(self, rng: jax.Array, batch: Batch) -> Params:
    video, actions = self._inputs(batch)
    b = video.shape[0]
    lam = jnp.zeros((b, self.config.num_slots, self.lambda_dim), video.dtype)
    return self._fns.init(rng, video[:, 0], actions[:, 0], lam)

  def apply(self, params: Params, rng: jax.Array, batch: Batch,
            refine_all: bool = False) -> Dict[str, jnp.ndarray]:
    """Runs the model over a batch {"video": [B,T,H,W,3], "actions": [B,T,A] (optional)}.

    With `refine_all`, every step is refined even when config.burn_in > 0 (see step_inputs).
    Under the "windows" lowering (the CPU default), called on arrays outside jax.jit it runs
    one jitted truncation window at a time, so compile time does not grow with T; traced
    inside a jit it runs unrolled (parts_jax/lowering.py, `compile_forward`).

    Returns "loss" (scalar, mean over B and T of -ELBO per frame), and per step ([B, T, ...]):
    "elbo", "kl", "nll", "mse", "recon" [H,W,3], "masks" [K,H,W], "components" [K,H,W,3]
    (per-slot means), "posterior" [K,2D] (refined lambda_t^N), "decoded_posterior" [K,2D] (the
    lambda whose sample "masks" decode: lambda_t^{N-1}; lambda_t^N under decode_refined or
    predictive_prior), "prior" [K,2D],
    "attention" [K,H,W] (slot attention of the last refinement step; for the IODINE-style
    refiner, the per-pixel responsibilities it was given), and with semi_amortized.steps > 0
    "fitted_elbo" (the ELBO at the fitted lambda_t^N) and/or "distill" (the distillation
    penalty), as configured; 0 for unobserved steps.
    """
    carry, xs = self.step_inputs(rng, batch, refine_all)
    return lowering.sequence(self, params, carry, xs)

  def rollout(self, params: Params, rng: jax.Array, batch: Batch, burn_in: int,
              rollout_steps: int) -> Dict[str, jnp.ndarray]:
    """Observes `burn_in` frames, then predicts `rollout_steps` steps from actions alone (4.2).

    Frames beyond the batch's T are unknown (zeros); their loss terms are meaningless, the
    decoded "recon"/"masks" are the predictions. Actions beyond T are zero.
    """
    if burn_in < 1 or rollout_steps < 0:
      raise ValueError(f"rollout needs burn_in >= 1 and rollout_steps >= 0, got "
                       f"{burn_in}, {rollout_steps}")
    video, actions = self._inputs(batch)
    total = burn_in + rollout_steps
    pad = max(total - video.shape[1], 0)
    video = jnp.pad(video, ((0, 0), (0, pad), (0, 0), (0, 0), (0, 0)))[:, :total]
    actions = jnp.pad(actions, ((0, 0), (0, pad), (0, 0)))[:, :total]
    carry, xs = self._step_inputs(rng, video, actions, jnp.arange(total) < burn_in)
    return lowering.sequence(self, params, carry, xs)

  def decode(self, params: Params, z: jnp.ndarray) -> Dict[str, jnp.ndarray]:
    """Decodes latents z [B, K, D] into "recon" [B,H,W,3], "masks" [B,K,H,W],
    "components" [B,K,H,W,3]."""
    chex.assert_rank(z, 3)
    means, mask_logits = self.decode_fn(params, z)
    masks = likelihood.masks_from_logits(mask_logits)
    return dict(recon=likelihood.mixture_mean(masks, means), masks=masks, components=means)

  def segmentation_maps(self, params: Params, video: jnp.ndarray,
                        out: Dict[str, jnp.ndarray]) -> Dict[str, jnp.ndarray]:
    """Per-pixel slot scores [B, T, K, H, W] whose argmax over K is a segmentation.

    "masks" (the headline, the paper's number): the decoder masks m_k of the last posterior the
    loss is taken on (lambda_t^0 with N = 1; lambda_t^{N-1} with N > 1; lambda_t^N with
    decode_refined or predictive_prior), as `apply` returns them. Diagnostics:
    "masks_mean": the headline's posterior ("decoded_posterior") decoded at its mean instead of
    at the sample the loss drew (the headline without the decode's noise);
    "masks_refined": the masks of the refined posterior lambda_t^N decoded at its mean;
    "responsibilities": p(k | x_i) proportional to m_k N(x_i; C_k, sigma_x^2) (Eq 2's mixture);
    "attention": the slot-attention weights of the last refinement step (Eqs 4-6).
    video [B, T, H, W, 3]; out: the outputs of `apply` on that video.
    """
    video = jnp.asarray(video)
    b, t = video.shape[:2]
    chex.assert_rank(out["masks"], 5)
    flat = lambda a: a.reshape((b * t,) + a.shape[2:])
    mean_masks = lambda lam: self.decode(params, flat(distributions.split_lambda(lam)[0]))[
        "masks"].reshape(out["masks"].shape)                               # [B, T, K, H, W]
    resp = likelihood.responsibilities(flat(video), flat(out["components"]),
                                       jnp.log(flat(out["masks"])), self.config.sigma_x)
    return dict(masks=out["masks"], masks_mean=mean_masks(out["decoded_posterior"]),
                masks_refined=mean_masks(out["posterior"]),
                responsibilities=resp.reshape(out["masks"].shape), attention=out["attention"])

  def negative_elbo(self, params: Params, x: jnp.ndarray, lam: jnp.ndarray, eps: jnp.ndarray,
                    prior_lam: Optional[jnp.ndarray] = None):
    """Sum over the batch of -ELBO(x; lambda) with a fixed reparameterisation noise eps.

    x [B,H,W,3], lam [B,K,2D], eps [B,K,D]. Returns (scalar, (FrameELBO, means)). Its gradient
    w.r.t. lam is the dL/dlambda input of the refinement network (Eqs 3, 4).
    """
    means, mask_logits = self.decode_fn(params, distributions.sample(lam, eps))
    fe = elbo.frame_elbo(x, means, mask_logits, lam, beta=self.config.beta,
                         sigma_x=self.config.sigma_x, prior_lam=prior_lam,
                         pixel_likelihood=self.config.likelihood)
    return -jnp.sum(fe.elbo), (fe, means)

  def posterior_update(self, params: Params, x: jnp.ndarray, lam: jnp.ndarray, opt_state,
                       optimizer: optax.GradientTransformation, rng: jax.Array,
                       prior_lam: Optional[jnp.ndarray] = None):
    """One `optimizer` step on lambda [B,K,2D] of the sum over the batch of -ELBO(x; lambda)
    (Eq 7, one reparameterised sample drawn from rng), decoder fixed at `params`.
    Returns (lambda, opt_state). Semi-amortised training and experiments/posterior_fit use it."""
    eps = distributions.standard_normal(rng, lam)
    grad = jax.grad(lambda l: self.negative_elbo(params, x, l, eps, prior_lam)[0])(lam)
    delta, opt_state = optimizer.update(grad, opt_state)
    return optax.apply_updates(lam, delta), opt_state

  def _fit(self, params, x, lam, prior_lam, rng) -> jnp.ndarray:
    """Semi-amortised training (config.semi_amortized): lambda_t^N [B,K,2D] fitted further by
    `steps` steps of `optimizer` on -ELBO(x_t) (Eq 7), decoder fixed. No gradient reaches the
    result."""
    sa = self.config.semi_amortized
    fixed = jax.lax.stop_gradient
    optimizer = fit_optimizer(sa.optimizer, sa.learning_rate, sa.eps)
    lam = fixed(lam)
    prior_lam = None if prior_lam is None else fixed(prior_lam)
    opt_state = optimizer.init(lam)
    for i in range(sa.steps):
      lam, opt_state = self.posterior_update(fixed(params), x, lam, opt_state, optimizer,
                                             jax.random.fold_in(rng, i), prior_lam)
    return fixed(lam)

  def _semi_amortized_terms(self, params, x, lam, prior_lam, rng) -> Dict[str, jnp.ndarray]:
    """The step's semi-amortised terms ([B] each), from the fit of lambda_t^N [B,K,2D]:
      "fitted_elbo" (semi_amortized.fitted_elbo): the ELBO at the fitted lambda, held fixed, so
        that its gradient reaches the decoder alone;
      "distill" (semi_amortized.distill = w > 0): w ||lambda_t^N - fitted||^2 (sum over K and
        2D; distill_space "lambda") or w sum_i KL(m_i(fitted) || m_i(lambda_t^N)) (the decoder
        masks of the two posterior means, summed over pixels; "masks"), the penalty the loss
        subtracts; its gradient reaches the refinement (and through lambda_t^0 the predictor;
        with "masks" also the decoder, through lambda_t^N's masks), never the fit's target.
        lambda_t^N alone: the fit starts there, so the distance is what the fit moved (run 21:
        pulling lambda_t^1 of N = 2 to the same target diverged)."""
    sa = self.config.semi_amortized
    fitted = self._fit(params, x, lam, prior_lam, rng)
    terms = {}
    if sa.fitted_elbo:
      eps = distributions.standard_normal(jax.random.fold_in(rng, sa.steps), fitted)
      terms[lowering.FITTED] = self.negative_elbo(params, x, fitted, eps, prior_lam)[1][0].elbo
    if sa.distill and sa.distill_space == "lambda":
      terms[lowering.DISTILL] = sa.distill * jnp.sum(jnp.square(lam - fitted), axis=(1, 2))
    elif sa.distill:                                        # "masks": Eq 1's masks at the means
      log_masks = lambda l: likelihood.log_masks_from_logits(
          self.decode_fn(params, distributions.split_lambda(l)[0])[1])           # [B,K,H,W]
      target = jax.lax.stop_gradient(log_masks(fitted))
      terms[lowering.DISTILL] = sa.distill * jnp.sum(
          jnp.exp(target) * (target - log_masks(lam)), axis=(1, 2, 3))
    return terms

  # --- One step and its inputs (parts_jax/lowering.py runs the steps over time) ------------
  def _inputs(self, batch: Batch) -> Tuple[jnp.ndarray, jnp.ndarray]:
    video = jnp.asarray(batch["video"])
    chex.assert_rank(video, 5)
    b, t, h, w, c = video.shape
    if (h, w) != tuple(self.config.image_size) or c != 3:
      raise ValueError(f"video frames are {h}x{w}x{c} but the model expects "
                       f"{tuple(self.config.image_size)}x3 (config.model.image_size)")
    if not self.config.use_actions:
      return video, jnp.zeros((b, t, 0), video.dtype)
    if batch.get("actions") is None:
      raise ValueError("config.model.use_actions=True but the batch has no 'actions'; set "
                       "--config.model.use_actions=False for data without actions")
    actions = jnp.asarray(batch["actions"], video.dtype)
    chex.assert_shape(actions, (b, t, None))
    return video, actions * self.config.action_scale

  def _refine_step(self, params, x, lam, prior_lam, a_prev, rng):
    """One refinement iteration (Eq 3). Returns (lambda^n, FrameELBO at lambda^{n-1},
    means, attention)."""
    eps = distributions.standard_normal(rng, lam)
    (_, (fe, means)), grad = jax.value_and_grad(self.negative_elbo, argnums=2, has_aux=True)(
        params, x, lam, eps, prior_lam)
    if not self.config.second_order:
      grad = jax.lax.stop_gradient(grad)
    delta, attn = self.refine_fn(params, lam, x, a_prev, layers.normalize_features(grad),
                                 fe.loglik_image, fe.log_masks, means)
    return lam + delta, fe, means, attn

  def step(self, params: Params, carry: Carry,
           inputs: StepInputs) -> Tuple[Carry, Dict[str, jnp.ndarray]]:
    """One time step t (3.2): predict lambda_t^0, refine N times on x_t (unless not
    inputs.observe), decode. Outputs [B, ...] as `apply`'s per step, without "loss"."""
    cfg = self.config
    if cfg.tbptt:
      carry = jax.tree.map(lambda c: jnp.where(inputs.cut, jax.lax.stop_gradient(c), c), carry)
    lam0, state = self.predict_fn(params, carry.lam, carry.action, carry.state)   # 3.2.1
    prior_lam = lam0 if cfg.predictive_prior else None
    lam, decoded = lam0, []
    # t = 0 with first_frame_refine_steps = N_0 > N: N_0 - N refinement steps before the N
    # regular ones, not decoded into the loss; noise keys 0..N_0-1 in order, so frame 0 is
    # refined exactly as by a model with N = N_0 (whose last decode the loss then takes).
    # inputs.first is a Python bool where the lowering unrolls the steps (lowering.run's
    # `starts`): the extra steps are then in frame 0's program alone, with no conditional (with
    # one, XLA:CPU trained the sprites recipe at under half the speed; docs/study.md run 29); a
    # traced bool takes a lax.cond.
    extra = max(cfg.get("first_frame_refine_steps", 0) - cfg.num_refine_steps, 0)
    extra_step = lambda l, n: self._refine_step(
        params, inputs.x, l, prior_lam, carry.action, jax.random.fold_in(inputs.rng, n))[0]
    if isinstance(inputs.first, bool):
      for n in range(extra if inputs.first else 0):  # t = 0 is always observed (burn_in >= 1)
        lam = extra_step(lam, n)
      offset = extra if inputs.first else 0
    else:
      first = inputs.first & inputs.observe
      for n in range(extra):
        lam = jax.lax.cond(first, lambda l, n=n: extra_step(l, n), lambda l: l, lam)
      offset = jnp.where(first, extra, 0) if extra else 0
    for n in range(cfg.num_refine_steps):
      decoded_lam = lam                                     # lambda_t^n, decoded below
      new_lam, fe, means, attn = self._refine_step(
          params, inputs.x, lam, prior_lam, carry.action,
          jax.random.fold_in(inputs.rng, offset + n))
      decoded.append((fe, means))
      lam = jnp.where(inputs.observe, new_lam, lam)        # no refinement during roll-out
    if cfg.predictive_prior or cfg.decode_refined:          # decode the refined lambda_t^N
      eps = distributions.standard_normal(jax.random.fold_in(inputs.rng, cfg.num_refine_steps), lam)
      refined = self.negative_elbo(params, inputs.x, lam, eps, prior_lam)[1]
      decoded_lam = lam
      decoded = [refined] if cfg.predictive_prior else decoded + [refined]   # OP3: it alone
    fe, means = decoded[-1]
    masks = jnp.exp(fe.log_masks)
    recon = likelihood.mixture_mean(masks, means)
    outputs = dict(
        elbo=jnp.mean(jnp.stack([d[0].elbo for d in decoded]), axis=0),
        kl=jnp.mean(jnp.stack([d[0].kl for d in decoded]), axis=0),
        nll=jnp.mean(jnp.stack([d[0].nll for d in decoded]), axis=0),
        mse=jnp.mean(jnp.square(recon - inputs.x), axis=(1, 2, 3)),
        recon=recon, masks=masks, components=means, posterior=lam,
        decoded_posterior=decoded_lam,
        prior=lam0 if cfg.predictive_prior else distributions.fixed_prior(lam),
        attention=attn)
    if cfg.semi_amortized.steps:
      terms = self._semi_amortized_terms(params, inputs.x, lam, prior_lam,
                                         jax.random.fold_in(inputs.rng, cfg.num_refine_steps + 1))
      outputs.update({k: jnp.where(inputs.observe, v, 0.0) for k, v in terms.items()})
    return Carry(lam, state, inputs.action), outputs

  def initial_carry(self, batch_size: int, action_dim: int) -> Carry:
    """All-zero posterior and recurrent state (section 4)."""
    k, s = self.config.num_slots, self.config.predictor.lstm_size
    zeros = jnp.zeros((batch_size, k, s), jnp.float32)
    return Carry(jnp.zeros((batch_size, k, self.lambda_dim), jnp.float32), (zeros, zeros),
                 jnp.zeros((batch_size, action_dim), jnp.float32))

  def step_inputs(self, rng: jax.Array, batch: Batch,
                  refine_all: bool = False) -> Tuple[Carry, StepInputs]:
    """The initial carry and the time-major per-step inputs ([T, ...]) of a batch.

    Steps t >= config.burn_in are predicted, not refined (when burn_in > 0), unless
    `refine_all` (every step observes its frame, e.g. the static unroll of Fig 7)."""
    video, actions = self._inputs(batch)
    t = video.shape[1]
    burn_in = 0 if refine_all else self.config.burn_in
    observe = jnp.arange(t) < burn_in if burn_in > 0 else jnp.ones((t,), bool)
    return self._step_inputs(rng, video, actions, observe)

  def _step_inputs(self, rng, video, actions, observe) -> Tuple[Carry, StepInputs]:
    b, t = video.shape[:2]
    tbptt = self.config.tbptt
    steps = jnp.arange(t)
    cut = (steps % tbptt == 0) & (steps > 0) if tbptt else jnp.zeros((t,), bool)
    xs = StepInputs(x=jnp.swapaxes(video, 0, 1), action=jnp.swapaxes(actions, 0, 1),
                    rng=jax.random.split(rng, t), observe=observe, cut=cut, first=steps == 0)
    return self.initial_carry(b, actions.shape[-1]), xs


def fit_optimizer(name: str, learning_rate: float,
                  eps: float = 1e-8) -> optax.GradientTransformation:
  """The optimiser of a posterior fit on lambda (config.semi_amortized, experiments/posterior_fit):
  "adam" (with epsilon eps) or "sgd" (config.FIT_OPTIMIZERS)."""
  if name == "adam":
    return optax.adam(learning_rate, eps=eps)
  if name == "sgd":
    return optax.sgd(learning_rate)
  raise ValueError(f"fit optimizer must be one of {config_lib.FIT_OPTIMIZERS}, got {name!r}")


def build_model(config: ml_collections.ConfigDict, backend: Optional[str] = None) -> PARTS:
  """Builds PARTS from a model config (`config.model` of an experiment config)."""
  return PARTS(config, backend)
