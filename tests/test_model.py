"""The PARTS model: gradients, time loop, truncation, symmetry, K-independence, variants."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from parts_jax import ConfigError, build_model, distributions, layers
from helpers import moving_squares, tiny_model_config

B, T = 2, 6


def _setup(steps=T, **overrides):
  cfg = tiny_model_config(**overrides)
  model = build_model(cfg)
  batch = moving_squares(np.random.default_rng(0), B, steps, cfg.image_size[0])
  params = model.init(jax.random.PRNGKey(0), batch)
  return model, params, batch


def _num_params(params):
  return sum(x.size for x in jax.tree.leaves(params))


def _perturbed(params, seed=0):
  """Params with every leaf moved off its initial value (update heads start at zero)."""
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
  return jax.tree.unflatten(tree, [p + 0.3 * jax.random.normal(k, p.shape)
                                   for p, k in zip(leaves, keys)])


@pytest.mark.slow
def test_gradient_fed_to_encoder_matches_finite_difference():
  model, params, batch = _setup()
  captured = {}
  refine_fn = model.refine_fn

  def capture(p, lam, x, a, grad, *rest):
    captured["grad"] = grad
    return refine_fn(p, lam, x, a, grad, *rest)

  model.refine_fn = capture
  with jax.enable_x64(True):
    p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
    x = jnp.asarray(batch["video"][:, 2], jnp.float64)
    a = jnp.asarray(batch["actions"][:, 1], jnp.float64)
    lam = jnp.asarray(np.random.default_rng(1).normal(0, 0.5, (B, 3, 8)), jnp.float64)
    rng = jax.random.PRNGKey(3)
    model._refine_step(p64, x, lam, None, a, rng)
    eps = distributions.standard_normal(rng, lam)
    f = jax.jit(lambda l: model.negative_elbo(p64, x, l, eps)[0])
    fd = np.zeros(lam.shape)
    h = 1e-6
    for idx in np.ndindex(*lam.shape):
      e = np.zeros(lam.shape)
      e[idx] = h
      fd[idx] = (f(lam + e) - f(lam - e)) / (2 * h)
    expected = layers.normalize_features(jnp.asarray(fd))
    np.testing.assert_allclose(captured["grad"], expected, rtol=1e-5, atol=1e-6)
    assert np.abs(fd).max() > 1.0  # a real, non-trivial gradient


@pytest.mark.slow
@pytest.mark.parametrize("tbptt", [4, 0])
def test_truncated_bptt_cuts_gradient_to_old_frames(tbptt):
  model, params, batch = _setup(steps=7, tbptt=tbptt)
  params = _perturbed(params)
  rng = jax.random.PRNGKey(1)
  t = 5

  def step_loss(video):
    return -jnp.sum(model.apply(params, rng, dict(batch, video=video))["elbo"][:, t])

  g = np.asarray(jax.grad(step_loss)(jnp.asarray(batch["video"])))
  per_frame = np.abs(g).max(axis=(0, 2, 3, 4))                     # [T]
  start = (t // tbptt) * tbptt if tbptt else 0                      # the window holding t
  for f in range(len(per_frame)):
    if start <= f <= t:     # inside the window, up to t: the loss depends on the frame
      assert per_frame[f] > 0, (f, per_frame)
    else:                   # before the cut (TBPTT) or in the future: exactly zero
      assert per_frame[f] == 0.0, (f, per_frame)


def test_permuting_slots_permutes_outputs():
  model, params, batch = _setup()
  params = _perturbed(params)
  rng = np.random.default_rng(2)
  perm = np.array([2, 0, 1])
  z = jnp.asarray(rng.normal(size=(B, 3, 4)), jnp.float32)
  means, logits = model.decode_fn(params, z)
  means_p, logits_p = model.decode_fn(params, z[:, perm])
  np.testing.assert_allclose(means_p, means[:, perm], atol=1e-5)
  np.testing.assert_allclose(logits_p, logits[:, perm], atol=1e-5)

  lam = jnp.asarray(rng.normal(size=(B, 3, 8)), jnp.float32)
  grad = jnp.asarray(rng.normal(size=(B, 3, 8)), jnp.float32)
  x = jnp.asarray(batch["video"][:, 0])
  a = jnp.asarray(batch["actions"][:, 0])
  loglik = jnp.asarray(rng.normal(size=(B, 8, 8)), jnp.float32)
  log_masks = jax.nn.log_softmax(logits, axis=1)
  d, attn = model.refine_fn(params, lam, x, a, grad, loglik, log_masks, means)
  d_p, attn_p = model.refine_fn(params, lam[:, perm], x, a, grad[:, perm], loglik,
                                log_masks[:, perm], means[:, perm])
  assert np.abs(d).max() > 1e-2
  np.testing.assert_allclose(d_p, d[:, perm], atol=1e-5)
  np.testing.assert_allclose(attn_p, attn[:, perm], atol=1e-6)

  state = tuple(jnp.asarray(rng.normal(size=(B, 3, 16)), jnp.float32) for _ in range(2))
  lam0, (h, c) = model.predict_fn(params, lam, a, state)
  lam0_p, (h_p, c_p) = model.predict_fn(params, lam[:, perm], a, tuple(s[:, perm] for s in state))
  assert np.abs(lam0 - lam).max() > 1e-2
  np.testing.assert_allclose(lam0_p, lam0[:, perm], atol=1e-5)
  np.testing.assert_allclose(h_p, h[:, perm], atol=1e-5)
  np.testing.assert_allclose(c_p, c[:, perm], atol=1e-5)


def test_parameters_do_not_depend_on_num_slots():
  batch = moving_squares(np.random.default_rng(0), B, 3, 8)
  counts = {}
  params = {}
  for k in (3, 9):
    model = build_model(tiny_model_config(num_slots=k))
    params[k] = model.init(jax.random.PRNGKey(0), batch)
    counts[k] = _num_params(params[k])
  assert counts[3] == counts[9]
  model5 = build_model(tiny_model_config(num_slots=5))
  out = model5.apply(params[9], jax.random.PRNGKey(1), batch)
  assert out["masks"].shape == (B, 3, 5, 8, 8)
  assert np.isfinite(out["loss"])


VARIANTS = {
    "parts": {},
    "s_iodine": dict(slot_attention=False, use_actions=False, **{"predictor.kind": "lstm"}),
    "op3": dict(slot_attention=False, predictive_prior=True, **{"predictor.kind": "lstm"}),
    "no_top_down": dict(top_down=False),
    "no_actions": dict(use_actions=False),
    "no_transformer": {"predictor.kind": "lstm"},
    "predictive_prior": dict(predictive_prior=True),
    "refine_3": dict(num_refine_steps=3),
    "second_order": dict(second_order=True),
    "burn_in": dict(burn_in=2),
    "no_tbptt": dict(tbptt=0),
    "xla_conv": dict(conv_impl="xla"),
    "study_switches": dict(refine_lambda_input=True, query_layernorm=True, action_scale=0.5),
    "mlp_basis": {"decoder.basis": "mlp"},
    "relative_basis": {"decoder.basis": "relative", "decoder.basis_hidden": 8},
    "semi_amortized": {"semi_amortized.steps": 2},
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_variant_builds_and_runs(name):
  model, params, batch = _setup(steps=3, **VARIANTS[name])
  (_, out), grads = jax.jit(jax.value_and_grad(
      lambda p: (lambda o: (o["loss"], o))(model.apply(p, jax.random.PRNGKey(1), batch)),
      has_aux=True))(params)
  assert np.isfinite(out["loss"])
  assert out["recon"].shape == (B, 3, 8, 8, 3)
  assert out["attention"].shape == (B, 3, 3, 8, 8)
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))


def test_predictive_prior_kl_is_against_predicted_lambda():
  model, params, batch = _setup(predictive_prior=True)
  params = _perturbed(params)
  out = model.apply(params, jax.random.PRNGKey(1), batch)
  kl = np.sum(np.asarray(distributions.kl_divergence(out["posterior"], out["prior"])), axis=-1)
  np.testing.assert_allclose(out["kl"], kl, rtol=1e-4)
  assert np.abs(np.asarray(out["prior"])).max() > 0


@pytest.mark.parametrize("top_down", [False, True])
def test_top_down_controls_query_inputs(top_down):
  model, params, batch = _setup(top_down=top_down)
  rng = np.random.default_rng(4)
  lam = jnp.asarray(rng.normal(size=(B, 3, 8)), jnp.float32)
  x = jnp.asarray(batch["video"][:, 0])
  loglik = jnp.zeros((B, 8, 8))
  means = jnp.zeros((B, 3, 8, 8, 3))
  log_masks = jnp.full((B, 3, 8, 8), -np.log(3.0))
  attns = []
  for seed in range(2):
    r = np.random.default_rng(10 + seed)
    grad = jnp.asarray(r.normal(size=(B, 3, 8)), jnp.float32)
    a = jnp.asarray(r.normal(size=(B, 2)), jnp.float32)
    attns.append(model.refine_fn(params, lam, x, a, grad, loglik, log_masks, means)[1])
  if top_down:
    assert np.abs(attns[0] - attns[1]).max() > 1e-4
  else:
    np.testing.assert_array_equal(attns[0], attns[1])


def test_burn_in_stops_refinement():
  model, params, batch = _setup()
  params = _perturbed(params)   # the update heads start at zero: refinement would be a no-op
  out = model.rollout(params, jax.random.PRNGKey(0), batch, burn_in=2, rollout_steps=5)
  # Frames before burn-in do change the roll-out (so the check below can fail).
  early = dict(batch, video=batch["video"].copy())
  early["video"][:, :2] = 1.0 - early["video"][:, :2]
  out0 = model.rollout(params, jax.random.PRNGKey(0), early, burn_in=2, rollout_steps=5)
  assert np.abs(np.asarray(out0["posterior"]) - np.asarray(out["posterior"]))[:, 2:].max() > 1e-3
  assert out["recon"].shape == (B, 7, 8, 8, 3)
  # Frames after burn-in cannot influence the roll-out.
  changed = dict(batch, video=batch["video"].copy())
  changed["video"][:, 2:] = 1.0 - changed["video"][:, 2:]
  out2 = model.rollout(params, jax.random.PRNGKey(0), changed, burn_in=2, rollout_steps=5)
  np.testing.assert_allclose(out["recon"], out2["recon"], atol=1e-6)
  np.testing.assert_allclose(out["posterior"], out2["posterior"], atol=1e-6)


def test_refine_all_ignores_burn_in():
  """apply(refine_all=True) on a burn_in model equals the same parameters in a model built with
  burn_in = 0; without it, frames after burn-in do not reach the posterior."""
  model, params, batch = _setup(burn_in=2)
  params = _perturbed(params)      # (Zero-initialised update heads would refine by nothing.)
  plain = build_model(tiny_model_config(burn_in=0))
  rng = jax.random.PRNGKey(3)
  refined = model.apply(params, rng, batch, refine_all=True)
  reference = plain.apply(params, rng, batch)
  np.testing.assert_allclose(refined["posterior"], reference["posterior"], atol=1e-6)
  np.testing.assert_allclose(refined["loss"], reference["loss"], rtol=1e-6)
  predicted = model.apply(params, rng, batch)
  assert not np.allclose(predicted["posterior"][:, 2:], reference["posterior"][:, 2:])


def test_first_frame_refine_steps_refines_frame_0_as_a_model_with_n0_steps():
  """first_frame_refine_steps = N_0 refines frame 0 exactly as a model built with N = N_0 (its
  posterior and the masks of its last step's input; the loss averages only the last N decodes)
  and every later frame with the N steps of the model, from the carry that frame 0 left;
  N_0 = N is the default model."""
  model, params, batch = _setup(steps=3, num_refine_steps=1, first_frame_refine_steps=3)
  params = _perturbed(params)      # (Zero-initialised update heads would refine by nothing.)
  rng = jax.random.PRNGKey(4)
  out = model.apply(params, rng, batch)
  n0 = build_model(tiny_model_config(num_refine_steps=3))
  ref0 = n0.apply(params, rng, dict(batch, video=batch["video"][:, :1],
                                    actions=batch["actions"][:, :1]))
  for key in ("posterior", "masks", "recon"):
    np.testing.assert_allclose(out[key][:, :1], ref0[key], rtol=1e-5, atol=1e-5, err_msg=key)
  plain = build_model(tiny_model_config(num_refine_steps=1))
  carry, xs = plain.step_inputs(rng, batch)
  carry = carry._replace(lam=out["posterior"][:, 0])
  step0 = plain.step(params, plain.initial_carry(B, batch["actions"].shape[-1]),
                     jax.tree.map(lambda a: a[0], xs))[0]
  carry = carry._replace(state=step0.state, action=step0.action)   # frame 0's LSTM state, a_0
  _, ref1 = plain.step(params, carry, jax.tree.map(lambda a: a[1], xs))
  np.testing.assert_allclose(out["posterior"][:, 1], ref1["posterior"], rtol=1e-5, atol=1e-5)
  default = plain.apply(params, rng, batch)
  same = build_model(tiny_model_config(num_refine_steps=1, first_frame_refine_steps=1))
  np.testing.assert_array_equal(same.apply(params, rng, batch)["posterior"],
                                default["posterior"])
  assert np.abs(np.asarray(out["posterior"][:, 0] - default["posterior"][:, 0])).max() > 1e-3


def test_first_frame_refine_steps_without_a_conditional_where_steps_unroll():
  """Where the lowering unrolls the steps ("windows", "unroll") frame 0's extra refinement steps
  sit in its own program, with no conditional in any program (with one, XLA:CPU trained at under
  half the speed); "scan" branches with lax.cond. Both compute the same."""
  from experiments.train import TrainStep, make_optimizer
  from experiments.configs import common
  opt = make_optimizer(common.base_config().train)
  outs = {}
  for loop in ("windows", "unroll", "scan"):
    model, params, batch = _setup(steps=3, tbptt=2, time_loop=loop, conv_impl="xla",
                                  num_refine_steps=1, first_frame_refine_steps=3)
    params, rng = _perturbed(params), jax.random.PRNGKey(2)
    state = dict(step=jnp.int32(0), params=params, opt_state=opt.init(params), rng=rng,
                 skipped=jnp.int32(0))
    programs = [p for p in TrainStep(model, opt, False).programs(state, batch)
                if p.name.startswith(("window", "sequence"))]
    texts = [p.fn.lower(*p.args).as_text() for p in programs]
    has_conditional = any("stablehlo.case" in t or "stablehlo.if" in t for t in texts)
    assert has_conditional == (loop == "scan"), loop
    if loop == "windows":
      assert [(p.name, p.calls) for p in programs] == [("window[1], t0 > 0", 1),
                                                        ("window[2], t0 = 0", 1)]
    if loop != "unroll":
      outs[loop] = model.apply(params, rng, batch)
  for key in ("posterior", "masks", "loss"):
    np.testing.assert_allclose(outs["scan"][key], outs["windows"][key], rtol=1e-4, atol=1e-5,
                               err_msg=key)


@pytest.mark.parametrize("field,value", [
    ("first_frame_refine_steps", -1), ("num_slots", 0), ("slot_dim", -1), ("beta", -0.1),
    ("sigma_x", 0.0), ("tbptt", -1),
    ("predictor.kind", "gru"), ("time_loop", "while"), ("num_refine_steps", 0),
    ("decoder.basis", "fourier"), ("decoder.basis_hidden", 0),
    ("attention.logit_bias", "masks"), ("likelihood", "mse"), ("semi_amortized.steps", -1),
    ("semi_amortized.learning_rate", 0.0)])
def test_bad_config_raises_one_line_error(field, value):
  extra = {"semi_amortized.steps": 1} if field == "semi_amortized.learning_rate" else {}
  with pytest.raises(ConfigError, match=field.split(".")[-1]) as e:
    build_model(tiny_model_config(**{field: value}, **extra))
  assert "\n" not in str(e.value)


def test_attention_bias_without_slot_attention_is_refused():
  with pytest.raises(ConfigError, match="logit_bias.*slot_attention=False"):
    build_model(tiny_model_config(slot_attention=False,
                                  **{"attention.logit_bias": "log_masks"}))


def test_decode_refined_with_predictive_prior_is_refused():
  with pytest.raises(ConfigError, match="decode_refined.*predictive_prior"):
    build_model(tiny_model_config(decode_refined=True, predictive_prior=True))


def test_wrong_frame_size_and_missing_actions_raise():
  model, params, batch = _setup()
  with pytest.raises(ValueError, match="image_size"):
    model.apply(params, jax.random.PRNGKey(0), dict(batch, video=np.zeros((B, T, 9, 8, 3))))
  with pytest.raises(ValueError, match="use_actions"):
    model.apply(params, jax.random.PRNGKey(0), {"video": batch["video"]})


@pytest.mark.slow
@pytest.mark.parametrize("tbptt", [2, 0])
def test_every_lowering_gives_the_same_loss_and_gradients(tbptt):
  """scan (im2col convs; jax.lax.scan), an unrolled Python loop (xla convs) and truncation
  windows run from the host (windows of 2, 2 and 1 steps; apply outside jit runs them too)
  give the same outputs, loss and gradients."""
  from experiments.train import TrainStep, make_optimizer
  from experiments.configs import common
  results, outputs = {}, {}
  for loop, impl in (("scan", "im2col"), ("unroll", "xla"), ("windows", "xla")):
    model, params, batch = _setup(steps=5, tbptt=tbptt, time_loop=loop, conv_impl=impl)
    params = _perturbed(params)
    apply = model.apply if loop == "windows" else jax.jit(model.apply)
    outputs[loop] = apply(params, jax.random.PRNGKey(7), batch)
    opt = make_optimizer(common.base_config().train)
    state = dict(step=jnp.int32(3), params=params, opt_state=opt.init(params),
                 rng=jax.random.PRNGKey(5), skipped=jnp.int32(0))
    results[loop] = TrainStep(model, opt, False).grads(state, batch)
  for key in ("loss", "elbo", "kl", "recon", "masks", "posterior", "attention"):
    ref = np.asarray(outputs["unroll"][key])   # float32; im2col vs xla convs round differently
    for loop in ("scan", "windows"):
      np.testing.assert_allclose(outputs[loop][key], ref, rtol=1e-4,
                                 atol=1e-4 * max(np.abs(ref).max(), 1.0), err_msg=f"{loop} {key}")
  g_ref, s_ref = results["scan"]
  scale = max(np.abs(g).max() for g in jax.tree.leaves(g_ref))
  for loop in ("unroll", "windows"):
    g, s = results[loop]
    for k in s_ref:   # float32 sums of ~1e7 over B x T x H x W in another order: ~1e-5 apart
      np.testing.assert_allclose(s[k], s_ref[k], rtol=1e-4, err_msg=f"{loop} {k}")
    # Per leaf: within 1e-3 of the leaf's own largest gradient, so that small-gradient leaves
    # (predictor, LSTM) are compared too; leaves whose gradient is zero in exact arithmetic
    # (attention key biases) against 1e-6 of the largest gradient of all leaves.
    for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(g)[0], jax.tree.leaves(g_ref)):
      tol = 1e-3 * max(np.abs(b).max(), 1e-3 * scale)
      np.testing.assert_allclose(a, b, rtol=0, atol=tol,
                                 err_msg=f"{loop} {jax.tree_util.keystr(path)}")


@pytest.mark.slow
def test_windows_forward_program_does_not_grow_with_T():
  """PARTS.apply under "windows" (concrete inputs) traces one window of tbptt steps whatever T:
  its jitted window program is reused; an unrolled apply traces every step."""
  def traced_steps(loop, steps, jit):
    model, params, batch = _setup(steps=steps, tbptt=2, time_loop=loop, conv_impl="xla")
    count, step = [0], model.step

    def counting_step(*args):
      count[0] += 1
      return step(*args)

    model.step = counting_step
    apply = jax.jit(model.apply) if jit else model.apply
    out = apply(params, jax.random.PRNGKey(0), batch)
    assert out["masks"].shape[1] == steps
    return count[0]
  assert traced_steps("windows", 12, jit=False) == traced_steps("windows", 6, jit=False) == 2
  assert traced_steps("unroll", 12, jit=True) == 12
  assert traced_steps("windows", 6, jit=True) == 6   # Inside a caller's jit: unrolled.


def test_train_step_programs_name_what_one_step_runs():
  """TrainStep.programs lists the distinct compiled programs of a step with their calls (from
  shapes alone), and loop_free() replaces the scan by an unrolled program."""
  from experiments.train import TrainStep, make_optimizer
  from experiments.configs import common
  opt = make_optimizer(common.base_config().train)
  for loop, want in (("windows", [("key", 1), ("prepare", 1), ("window[1]", 1), ("window[2]", 2),
                                  ("update", 1)]),
                     ("scan", [("key", 1), ("sequence", 1), ("update", 1)])):
    model, params, batch = _setup(steps=5, tbptt=2, time_loop=loop, conv_impl="xla")
    state = dict(step=jnp.int32(0), params=params, opt_state=opt.init(params),
                 rng=jax.random.PRNGKey(5), skipped=jnp.int32(0))
    step = TrainStep(model, opt, False)
    assert [(p.name, p.calls) for p in step.programs(state, batch)] == want, loop
    free = step.loop_free()
    assert free.gradients.time_loop == ("unroll" if loop == "scan" else loop)


def test_action_scale_equals_scaled_actions():
  """model.action_scale = c on actions a gives exactly the model with scale 1 on c * a."""
  model, params, batch = _setup(steps=3)
  params = _perturbed(params)
  scaled_model, _, _ = _setup(steps=3, action_scale=0.25)
  scaled_batch = dict(batch, actions=0.25 * batch["actions"])
  a = scaled_model.apply(params, jax.random.PRNGKey(1), batch)
  b = model.apply(params, jax.random.PRNGKey(1), scaled_batch)
  for key in ("loss", "posterior", "masks"):
    np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6, err_msg=key)
  c = model.apply(params, jax.random.PRNGKey(1), batch)
  assert np.abs(np.asarray(c["posterior"]) - np.asarray(a["posterior"])).max() > 1e-4


def _decoder(basis, image_size=(12, 12)):
  import haiku as hk
  from parts_jax.decoder import SoftSpatialBroadcastDecoder
  return hk.without_apply_rng(hk.transform(lambda z: SoftSpatialBroadcastDecoder(
      image_size, (6, 6), 3, basis=basis, basis_hidden=8)(z)))


def test_linear_basis_is_the_papers_linear_projection_of_the_grid():
  """basis "linear" (the default): parameter names as before the bases existed (checkpoints),
  and the same decoder output as the "mlp" basis with weights set by hand so that its basis is
  the linear projection W [y, x] + b (checked against W [y, x] + b directly)."""
  f = _decoder("linear")
  z = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 5))
  params = _perturbed(f.init(jax.random.PRNGKey(1), z))
  assert set(params) == {"decoder/spatial_basis", "decoder/cnn/conv_0", "decoder/cnn/conv_1",
                         "decoder/cnn/conv_2"}
  mlp = _decoder("mlp")
  with_mlp = {k: v for k, v in params.items() if k != "decoder/spatial_basis"}   # the convs
  grid = layers.coordinate_grid(12, 12)
  lin = params["decoder/spatial_basis"]
  # An MLP basis whose hidden layer is the identity on the grid (ReLU of [y, x] and [-y, -x])
  # and whose output layer is W, -W gives the same basis W [y, x] + b.
  w1 = np.zeros((2, 8), np.float32)
  w1[0, 0] = w1[1, 1] = 1.0
  w1[0, 2] = w1[1, 3] = -1.0
  w2 = np.zeros((8, 5), np.float32)
  w2[:2], w2[2:4] = lin["w"], -lin["w"]
  with_mlp["decoder/spatial_basis/~/linear_0"] = dict(w=w1, b=np.zeros(8, np.float32))
  with_mlp["decoder/spatial_basis/~/linear_1"] = dict(w=w2, b=lin["b"])
  np.testing.assert_allclose(np.asarray(grid @ lin["w"] + lin["b"]),
                             np.maximum(grid @ w1, 0) @ w2 + lin["b"], atol=1e-6)
  for a, b in zip(f.apply(params, z), mlp.apply(with_mlp, z)):
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_relative_basis_moves_the_drawing_with_the_slot_position():
  """basis "relative": moving p_k by one pixel (the position head's bias) shifts the decoded
  means and mask logits by exactly one pixel, away from the border (zero padding there); the
  absolute "mlp" basis has no such symmetry."""
  z = jax.random.normal(jax.random.PRNGKey(0), (1, 2, 5))
  f = _decoder("relative")
  params = _perturbed(f.init(jax.random.PRNGKey(1), z))
  step = 2.0 / 11                        # one pixel of the [-1, 1] grid of 12 pixels
  moved = dict(params, **{"decoder/position": dict(
      params["decoder/position"], b=params["decoder/position"]["b"] + np.array([step, -step]))})
  (m0, l0), (m1, l1) = f.apply(params, z), f.apply(moved, z)
  r = 3                                  # the receptive field of three 3x3 convs
  # moved by +1 row and -1 column: out1[y, x] = out0[y - 1, x + 1]
  np.testing.assert_allclose(l1[:, :, r + 1:-r, r:-r - 1], l0[:, :, r:-r - 1, r + 1:-r],
                             rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(m1[:, :, r + 1:-r, r:-r - 1], m0[:, :, r:-r - 1, r + 1:-r],
                             rtol=1e-4, atol=1e-4)
  assert np.abs(np.asarray(l1 - l0)).max() > 1e-2          # it did move
  g = _decoder("mlp")
  gp = _perturbed(g.init(jax.random.PRNGKey(1), z))
  logits = g.apply(gp, z)[1]             # not invariant to a one-pixel shift of itself
  assert not np.allclose(logits[:, :, r + 1:-r, r:-r - 1], logits[:, :, r:-r - 1, r + 1:-r],
                         atol=1e-3)


def test_refine_lambda_input_widens_the_refinement_mlp_by_2d():
  _, plain, _ = _setup(steps=2)
  _, wide, _ = _setup(steps=2, refine_lambda_input=True)
  name = [k for k in plain if k.endswith("refine_mlp/linear_0")]
  assert len(name) == 1, list(plain)
  d = tiny_model_config().slot_dim
  assert wide[name[0]]["w"].shape[0] == plain[name[0]]["w"].shape[0] + 2 * d


def test_query_layernorm_makes_attention_invariant_to_the_scale_of_s():
  import haiku as hk
  from parts_jax.attention import TopDownSlotAttention
  s = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 6))
  o = jax.random.normal(jax.random.PRNGKey(1), (2, 4, 4, 5))
  for norm in (True, False):
    f = hk.without_apply_rng(hk.transform(
        lambda s, o, norm=norm: TopDownSlotAttention(8, 8, query_layernorm=norm)(s, o)))
    p = f.init(jax.random.PRNGKey(2), s, o)
    assert ("slot_attention/~/norm_queries" in p or "slot_attention/norm_queries" in p) == norm
    same = np.allclose(f.apply(p, s, o)[1], f.apply(p, 7.0 * s, o)[1], atol=1e-5)
    assert same == norm


def test_slot_attention_matches_numpy_eqs_4_to_6():
  """TopDownSlotAttention against a float64 NumPy transcription of Eqs 4-6: LayerNorm on the
  features, q = W_q s (Eq 4), softmax over the K slots per pixel (Eq 5), weighted mean of the
  values with weights normalised over the pixels (Eq 6)."""
  import haiku as hk
  from parts_jax.attention import TopDownSlotAttention
  b, k, h, w, c, cq, dq, dv = 2, 3, 4, 5, 6, 7, 8, 9
  s = jax.random.normal(jax.random.PRNGKey(0), (b, k, cq))
  feats = jax.random.normal(jax.random.PRNGKey(1), (b, h, w, c))
  f = hk.without_apply_rng(hk.transform(lambda s, o: TopDownSlotAttention(dq, dv)(s, o)))
  params = _perturbed(f.init(jax.random.PRNGKey(2), s, feats))   # LayerNorm off 1 and 0 too
  out, attn = f.apply(params, s, feats)
  p = {name: {k_: np.asarray(v, np.float64) for k_, v in leaf.items()}
       for name, leaf in params.items()}
  ln = p["slot_attention/norm_inputs"]
  o = np.asarray(feats, np.float64).reshape(b, h * w, c)
  o = (o - o.mean(-1, keepdims=True)) / np.sqrt(o.var(-1, keepdims=True) + 1e-5)
  o = o * ln["scale"] + ln["offset"]
  keys, values = o @ p["slot_attention/keys"]["w"], o @ p["slot_attention/values"]["w"]
  q = np.asarray(s, np.float64) @ p["slot_attention/queries"]["w"]           # Eq 4
  logits = np.einsum("bnd,bkd->bnk", keys, q) / np.sqrt(dq)
  a = np.exp(logits - logits.max(-1, keepdims=True))
  a /= a.sum(-1, keepdims=True)                                              # Eq 5: over K
  weights = a / (a.sum(1, keepdims=True) + 1e-8)                             # Eq 6
  want_out = np.einsum("bnk,bnd->bkd", weights, values)
  np.testing.assert_allclose(out, want_out, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(attn, a.transpose(0, 2, 1).reshape(b, k, h, w), rtol=1e-4,
                             atol=1e-6)
  np.testing.assert_allclose(np.asarray(attn).sum(1), 1.0, rtol=1e-5)       # per pixel


def test_strided_im2col_convolution_equals_xla():
  """layers.Conv2D's two lowerings give the same values, SAME padding, strides 1 and 2, odd and
  even sizes (the IODINE-style refiner uses stride 2)."""
  import haiku as hk
  from parts_jax import layers as layers_lib
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 7, 6, 3))
  for stride in (1, 2):
    outs = {}
    for impl in ("xla", "im2col"):
      f = hk.without_apply_rng(hk.transform(
          lambda x, impl=impl: layers_lib.Conv2D(5, 3, stride, impl, name="conv")(x)))
      params = _perturbed(f.init(jax.random.PRNGKey(1), x))   # the same names for both
      outs[impl] = np.asarray(f.apply(params, x))
    assert outs["xla"].shape == (2, -(-7 // stride), -(-6 // stride), 5)
    np.testing.assert_allclose(outs["im2col"], outs["xla"], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_second_order_lets_parameter_gradients_through_the_dl_dlambda_input():
  """With second_order the parameter gradient also flows through the dL/dlambda input of the
  refiner (a second derivative of the ELBO): the decoder's gradient changes; the loss does not."""
  grads, losses = {}, {}
  for second in (False, True):
    model, params, batch = _setup(steps=2, second_order=second)
    params = _perturbed(params)
    loss_fn = lambda p, m=model, b=batch: m.apply(p, jax.random.PRNGKey(1), b)["loss"]
    losses[second], grads[second] = jax.value_and_grad(loss_fn)(params)
  np.testing.assert_allclose(losses[True], losses[False], rtol=1e-6)
  dec = lambda g: np.concatenate([np.ravel(v) for k, leaf in sorted(g.items())
                                  if k.startswith("decoder") for v in leaf.values()])
  assert np.abs(dec(grads[True]) - dec(grads[False])).max() > 1e-3 * np.abs(
      dec(grads[False])).max()


def _assert_gradients_close(got, ref, atol=None):
  """Parameter gradient trees equal leaf by leaf (rtol 1e-3) with a fixed `atol`, or by default
  an atol relative to the leaf's scale: float32 sums in another order differ by ~1e-5 of it (4e-5
  on an AVX2 EPYC for entries near 0 of a leaf reaching 4.3); a gradient through a held target,
  or a missing one, differs by the order of the leaf itself."""
  for name in ref:
    for leaf in ref[name]:
      tol = atol if atol is not None else 1e-4 * max(float(np.abs(ref[name][leaf]).max()), 0.1)
      np.testing.assert_allclose(got[name][leaf], ref[name][leaf], rtol=1e-3, atol=tol,
                                 err_msg=f"{name}/{leaf}")


def _fitted_reference(model, params, x, lam, key, steps, lr):
  """lam [B,K,2D] after `steps` Adam steps on -ELBO(x; lam) from `key` as model.py documents
  (sample i from fold_in(key, i)): an unrolled optax loop."""
  import optax
  opt = optax.adam(lr)
  state = opt.init(lam)
  for i in range(steps):
    eps = distributions.standard_normal(jax.random.fold_in(key, i), lam)
    grad = jax.grad(lambda l: model.negative_elbo(params, x, l, eps)[0])(lam)
    delta, state = opt.update(grad, state)
    lam = lam + delta
  return lam


@pytest.mark.slow
def test_semi_amortized_elbo_is_adam_on_the_refined_posterior_and_trains_the_decoder_only():
  """semi_amortized.steps = 2: "fitted_elbo" is the ELBO after 2 Adam steps on -ELBO(x_t) from
  the refined lambda_t^N (an unrolled reference with optax, keys as documented in model.py), it
  joins the loss, and its parameter gradient reaches the decoder alone."""
  steps, lr = 2, 0.1
  model, params, batch = _setup(steps=2, **{"semi_amortized.steps": steps,
                                            "semi_amortized.learning_rate": lr})
  params = _perturbed(params)
  rng = jax.random.PRNGKey(1)
  out = model.apply(params, rng, batch)
  np.testing.assert_allclose(out["loss"], -np.mean(out["elbo"]) - np.mean(out["fitted_elbo"]),
                             rtol=1e-5)
  x = jnp.swapaxes(jnp.asarray(batch["video"], jnp.float32), 0, 1)
  for t, key in enumerate(jax.random.split(rng, 2)):
    key = jax.random.fold_in(key, model.config.num_refine_steps + 1)
    lam = _fitted_reference(model, params, x[t], out["posterior"][:, t], key, steps, lr)
    eps = distributions.standard_normal(jax.random.fold_in(key, steps), lam)
    want = model.negative_elbo(params, x[t], lam, eps)[1][0].elbo
    np.testing.assert_allclose(out["fitted_elbo"][:, t], want, rtol=1e-4)
    assert np.abs(lam - out["posterior"][:, t]).max() > 0.1   # the steps moved lambda
  grads = jax.grad(lambda p: jnp.sum(model.apply(p, rng, batch)["fitted_elbo"]))(params)
  for name, leaf in grads.items():
    size = max(float(np.abs(g).max()) for g in leaf.values())
    assert (size > 0) == name.startswith("decoder"), (name, size)


@pytest.mark.slow
def test_distillation_pulls_the_refined_posterior_towards_a_fixed_fitted_one():
  """semi_amortized.distill = w, fitted_elbo off: "distill" is w ||lambda_t^N - fitted||^2 with
  the fit an unrolled Adam reference from lambda_t^N; the loss is -ELBO + distill; the parameter
  gradient of the term equals that of the same penalty against the reference held constant (no
  gradient reaches the target), and it reaches the refinement. N = 1 here; the mask-space test
  below runs the same target at N = 2 (N = 2 here took 85 s of a 24-minute suite on an AVX2
  EPYC)."""
  steps, lr, w, num_refine_steps = 2, 0.1, 0.7, 1
  model, params, batch = _setup(steps=2, num_refine_steps=num_refine_steps, **{
      "semi_amortized.steps": steps, "semi_amortized.learning_rate": lr,
      "semi_amortized.fitted_elbo": False, "semi_amortized.distill": w})
  params = _perturbed(params)
  rng = jax.random.PRNGKey(1)
  out = model.apply(params, rng, batch)
  assert "fitted_elbo" not in out
  np.testing.assert_allclose(out["loss"], -np.mean(out["elbo"]) + np.mean(out["distill"]),
                             rtol=1e-5)
  x = jnp.swapaxes(jnp.asarray(batch["video"], jnp.float32), 0, 1)
  targets = []
  for t, key in enumerate(jax.random.split(rng, 2)):
    targets.append(_fitted_reference(model, params, x[t], out["posterior"][:, t],
                                     jax.random.fold_in(key, num_refine_steps + 1), steps, lr))
    want = w * np.sum(np.square(out["posterior"][:, t] - targets[t]), axis=(1, 2))
    np.testing.assert_allclose(out["distill"][:, t], want, rtol=1e-4)
    assert np.abs(targets[t] - out["posterior"][:, t]).max() > 0.1   # the fit moved lambda
  fixed = jnp.stack(targets, axis=1)
  term = lambda p: jnp.sum(model.apply(p, rng, batch)["distill"])
  held = lambda p: w * jnp.sum(jnp.square(model.apply(p, rng, batch)["posterior"] - fixed))
  got = jax.grad(term)(params)
  _assert_gradients_close(got, jax.grad(held)(params), atol=1e-5)
  assert max(float(np.abs(v).max()) for k, leaf in got.items() if k.startswith("refine")
             for v in leaf.values()) > 0


@pytest.mark.slow
def test_distillation_in_mask_space_is_the_kl_between_the_decoded_masks():
  """distill_space "masks": "distill" is w sum_i KL(m_i(fitted mu) || m_i(lambda_t^N's mu)), by
  hand in NumPy from the model's public decode of the two means (the fit an unrolled Adam
  reference); the parameter gradient of the term equals that of the same KL against the
  reference's masks held constant, and it reaches the refinement and the decoder."""
  steps, lr, w = 2, 0.1, 0.7
  model, params, batch = _setup(steps=2, num_refine_steps=2, **{
      "semi_amortized.steps": steps, "semi_amortized.learning_rate": lr,
      "semi_amortized.fitted_elbo": False, "semi_amortized.distill": w,
      "semi_amortized.distill_space": "masks"})
  params = _perturbed(params)
  rng = jax.random.PRNGKey(1)
  out = model.apply(params, rng, batch)
  x = jnp.swapaxes(jnp.asarray(batch["video"], jnp.float32), 0, 1)
  masks_at_mean = lambda p, lam: model.decode(p, distributions.split_lambda(lam)[0])["masks"]
  targets = []
  for t, key in enumerate(jax.random.split(rng, 2)):
    fitted = _fitted_reference(model, params, x[t], out["posterior"][:, t],
                               jax.random.fold_in(key, 3), steps, lr)
    p_fit = np.asarray(masks_at_mean(params, fitted), np.float64)
    p_own = np.asarray(masks_at_mean(params, out["posterior"][:, t]), np.float64)
    want = w * np.sum(p_fit * (np.log(p_fit) - np.log(p_own)), axis=(1, 2, 3))
    np.testing.assert_allclose(out["distill"][:, t], want, rtol=1e-3, atol=1e-6)
    assert want.min() > 1e-4                                # the fit moved the masks
    targets.append(p_fit)
  fixed = jnp.asarray(np.stack(targets, axis=1), jnp.float32)      # [B, T, K, H, W]
  b, t = fixed.shape[:2]
  term = lambda p: jnp.sum(model.apply(p, rng, batch)["distill"])
  def held(p):
    lam = model.apply(p, rng, batch)["posterior"]
    own = masks_at_mean(p, lam.reshape((b * t,) + lam.shape[2:])).reshape(fixed.shape)
    return -w * jnp.sum(fixed * jnp.log(own))               # the KL less its constant part
  got = jax.grad(term)(params)
  _assert_gradients_close(got, jax.grad(held)(params))
  for module in ("refine", "decoder"):
    assert max(float(np.abs(v).max()) for k, leaf in got.items() if k.startswith(module)
               for v in leaf.values()) > 0, module


@pytest.mark.parametrize("optimizer,eps", [("adam", 1e-8), ("adam", 0.5), ("sgd", 1e-8)])
def test_semi_amortized_fit_step_by_hand(optimizer, eps):
  """One fitting step (config.semi_amortized, steps = 1) against its formula: Adam's first,
  bias-corrected step is -lr g / (|g| + eps), SGD's -lr g, with g = d(-ELBO)/dlambda at the
  documented noise draw; a large eps shortens the steps of small gradients."""
  lr = 0.05
  model, params, batch = _setup(steps=1, **{
      "semi_amortized.steps": 1, "semi_amortized.learning_rate": lr,
      "semi_amortized.optimizer": optimizer, "semi_amortized.eps": eps})
  params = _perturbed(params)
  x = jnp.asarray(batch["video"][:, 0], jnp.float32)
  lam = 0.3 * jax.random.normal(jax.random.PRNGKey(2), (B, 3, 8))
  key = jax.random.PRNGKey(3)
  got = model._fit(params, x, lam, None, key)
  eps_draw = distributions.standard_normal(jax.random.fold_in(key, 0), lam)
  g = np.asarray(jax.grad(lambda l: model.negative_elbo(params, x, l, eps_draw)[0])(lam))
  step = g / (np.abs(g) + eps) if optimizer == "adam" else g
  np.testing.assert_allclose(got, lam - lr * step, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("fields,message", [
    ({"semi_amortized.optimizer": "lbfgs"}, "optimizer must be one of"),
    ({"semi_amortized.eps": 0.0}, "eps must be > 0"),
    ({"semi_amortized.distill": -1.0}, "distill must be >= 0"),
    ({"semi_amortized.distill": 1.0}, "needs a fit"),
    ({"semi_amortized.distill_space": "z"}, "distill_space must be one of"),
    ({"semi_amortized.steps": 3, "semi_amortized.fitted_elbo": False}, "for nothing")])
def test_semi_amortized_config_errors(fields, message):
  with pytest.raises(ConfigError, match=message):
    build_model(tiny_model_config(**fields))


@pytest.mark.slow
def test_model_for_evaluation_drops_the_semi_amortized_fit_and_nothing_else():
  """`PARTS.for_evaluation`: with semi_amortized.steps > 0 the evaluated model computes no
  "fitted_elbo" and its loss is -ELBO, while posteriors, masks and ELBOs equal the trained
  model's to the bit (the fit has keys of its own); without it, it is the model itself."""
  model, params, batch = _setup(steps=2, **{"semi_amortized.steps": 2})
  params, rng = _perturbed(params), jax.random.PRNGKey(1)
  trained = model.apply(params, rng, batch)
  evaluated = model.for_evaluation()
  assert evaluated.config.semi_amortized.steps == 0 and model.config.semi_amortized.steps == 2
  out = evaluated.apply(params, rng, batch)
  assert "fitted_elbo" not in out and "fitted_elbo" in trained
  np.testing.assert_allclose(out["loss"], -np.mean(trained["elbo"]), rtol=1e-6)
  assert not np.isclose(trained["loss"], out["loss"])
  for key in ("posterior", "masks", "elbo", "kl", "recon"):
    np.testing.assert_array_equal(out[key], trained[key], err_msg=key)
  distilled = _setup(steps=2, **{"semi_amortized.steps": 2, "semi_amortized.distill": 1.0})[0]
  out = distilled.for_evaluation().apply(params, rng, batch)
  assert "distill" not in out and "distill" in distilled.apply(params, rng, batch)
  plain = _setup(steps=2)[0]
  assert plain.for_evaluation() is plain
