"""An independent float64 NumPy reference of one PARTS time step (paper sections 3.1-3.3),
with the IODINE-style refiner of the S-IODINE and OP3 rows.

Written from the paper's equations and the module definitions, reading the model's Haiku
parameters by name; it shares no code with parts_jax. dL/dlambda comes from central finite
differences of this file's ELBO, not from autodiff. Used by tests/test_reference_step.py; keep it
in step with the model when the model changes.

Shapes: B batch, K slots, D slot dim (lambda = [mu, log sigma] in R^{2D}), H x W image, A actions.
"""
from typing import Dict, NamedTuple, Optional, Tuple

import numpy as np

Params = Dict[str, Dict[str, np.ndarray]]


class Carry(NamedTuple):
  lam: np.ndarray                       # [B, K, 2D] lambda_{t-1}^N
  state: Tuple[np.ndarray, np.ndarray]  # LSTM (h, c), each [B, K, S]
  action: np.ndarray                    # [B, A] a_{t-1}


def to_numpy(params) -> Params:
  return {m: {n: np.asarray(v, np.float64) for n, v in leaf.items()} for m, leaf in
          params.items()}


# --- building blocks -------------------------------------------------------------------------
def linear(x, p):
  return x @ p["w"] + (p["b"] if "b" in p else 0.0)


def relu(x):
  return np.maximum(x, 0.0)


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def softmax(x, axis):
  e = np.exp(x - x.max(axis=axis, keepdims=True))
  return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x, axis):
  m = x.max(axis=axis, keepdims=True)
  return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def layer_norm(x, p=None, eps=1e-5):
  y = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)
  return y if p is None else y * p["scale"] + p["offset"]


def conv_same(x, p):
  """Stride-1 SAME convolution, NHWC x [N,H,W,Cin], w [kh,kw,Cin,Cout]."""
  w = p["w"]
  kh, kw = w.shape[:2]
  n, h, wd, _ = x.shape
  xp = np.pad(x, ((0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)))
  out = np.zeros((n, h, wd, w.shape[-1]))
  for i in range(kh):
    for j in range(kw):
      out += xp[:, i:i + h, j:j + wd, :] @ w[i, j]
  return out + p["b"]


def conv_same_strided(x, p, stride):
  """SAME convolution with a stride: output ceil(H / stride), padding split as XLA does
  (total max((out - 1) * stride + k - H, 0), the smaller half before)."""
  if stride == 1:
    return conv_same(x, p)
  w = p["w"]
  kh, kw = w.shape[:2]
  n, h, wd, _ = x.shape
  oh, ow = -(-h // stride), -(-wd // stride)
  ph, pw = max((oh - 1) * stride + kh - h, 0), max((ow - 1) * stride + kw - wd, 0)
  xp = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
  out = np.zeros((n, oh, ow, w.shape[-1]))
  for i in range(kh):
    for j in range(kw):
      out += xp[:, i:i + (oh - 1) * stride + 1:stride, j:j + (ow - 1) * stride + 1:stride] @ w[i, j]
  return out + p["b"]


def conv_stack(x, params, prefix, num_layers, strides=None, activate_final=False):
  for i in range(num_layers):
    x = conv_same_strided(x, params[f"{prefix}/conv_{i}"], strides[i] if strides else 1)
    if i < num_layers - 1 or activate_final:
      x = relu(x)
  return x


def coords(h, w):
  ys, xs = np.linspace(-1, 1, h), np.linspace(-1, 1, w)
  return np.stack(np.meshgrid(ys, xs, indexing="ij"), -1)            # [H, W, 2] (y, x)


# --- section 3.1: decoder, Eqs 1-2, KL, Eq 7 ------------------------------------------------
def decode(params, z, h, w, num_layers):
  """Spatial broadcast: z [B,K,D] -> means [B,K,H,W,3], mask logits [B,K,H,W]."""
  b, k, d = z.shape
  basis = linear(coords(h, w), params["decoder/spatial_basis"])      # [H, W, D]
  x = z.reshape(b * k, 1, 1, d) + basis[None]
  x = conv_stack(x, params, "decoder/cnn", num_layers).reshape(b, k, h, w, 4)
  return x[..., :3], x[..., 3]


def component_log_likelihood(x, means, s):
  """log N(x_i | C_ik, s^2 I) summed over RGB: x [B,H,W,3], means [B,K,H,W,3] -> [B,K,H,W]."""
  return np.sum(-0.5 * ((x[:, None] - means) / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi),
                axis=-1)


def kl(lam_q, lam_p=None):
  """KL(N(mu_q, s_q^2) || N(mu_p, s_p^2)) summed over D: [..., 2D] -> [...]."""
  d = lam_q.shape[-1] // 2
  mu_q, ls_q = lam_q[..., :d], lam_q[..., d:]
  mu_p, ls_p = (np.zeros_like(mu_q), np.zeros_like(ls_q)) if lam_p is None else (
      lam_p[..., :d], lam_p[..., d:])
  var_q, var_p = np.exp(2 * ls_q), np.exp(2 * ls_p)
  return np.sum(ls_p - ls_q + (var_q + (mu_q - mu_p) ** 2) / (2 * var_p) - 0.5, axis=-1)


class FrameELBO(NamedTuple):
  elbo: np.ndarray           # [B]
  nll: np.ndarray            # [B]
  kl: np.ndarray             # [B]
  loglik_image: np.ndarray   # [B, H, W]
  log_masks: np.ndarray      # [B, K, H, W]
  means: np.ndarray          # [B, K, H, W, 3]


def frame_elbo(params, x, lam, eps, cfg, prior_lam=None) -> FrameELBO:
  """Eq 7 with one sample z = mu + sigma * eps; Eq 1 masks, Eq 2 mixture likelihood (or the
  blended-image Gaussian with cfg.likelihood == "blend")."""
  d = lam.shape[-1] // 2
  z = lam[..., :d] + np.exp(lam[..., d:]) * eps
  h, w = x.shape[1:3]
  means, logits = decode(params, z, h, w, len(cfg.decoder.channels) + 1)
  log_masks = log_softmax(logits, axis=1)                              # Eq 1
  s = cfg.sigma_x
  if cfg.likelihood == "blend":      # not in the paper: N(x_i; sum_k m_ik C_ik, s^2 I)
    recon = np.sum(np.exp(log_masks)[..., None] * means, axis=1)      # [B, H, W, 3]
    loglik = component_log_likelihood(x, recon[:, None], s)[:, 0]
  else:
    log_n = component_log_likelihood(x, means, s)                     # [B, K, H, W]
    a = log_masks + log_n
    m = a.max(axis=1, keepdims=True)
    loglik = (m + np.log(np.exp(a - m).sum(axis=1, keepdims=True)))[:, 0]   # Eq 2
  nll = -loglik.sum(axis=(1, 2))
  kl_b = kl(lam, prior_lam).sum(axis=1)
  return FrameELBO(-nll - cfg.beta * kl_b, nll, kl_b, loglik, log_masks, means)


def elbo_gradient(params, x, lam, eps, cfg, prior_lam=None, h=1e-5):
  """d(-ELBO)/d lambda [B,K,2D] by central differences (each batch element's ELBO depends on
  its own lambda only)."""
  grad = np.zeros_like(lam)
  for k in range(lam.shape[1]):
    for j in range(lam.shape[2]):
      up, down = lam.copy(), lam.copy()
      up[:, k, j] += h
      down[:, k, j] -= h
      grad[:, k, j] = -(frame_elbo(params, x, up, eps, cfg, prior_lam).elbo -
                        frame_elbo(params, x, down, eps, cfg, prior_lam).elbo) / (2 * h)
  return grad


# --- section 3.2.2-3.2.3: encoder, Eqs 4-6, refinement (Eq 3) -----------------------------------
def refine(params, cfg, lam, x, action, grad, loglik_image, log_masks, means):
  """Eq 3's update: (delta lambda [B,K,2D], attention [B,K,H,W])."""
  b, k, _ = lam.shape
  _, h, w, _ = x.shape
  ll = loglik_image
  ll = (ll - ll.mean(axis=(1, 2), keepdims=True)) / np.sqrt(
      ll.var(axis=(1, 2), keepdims=True) + 1e-5)
  inputs = [x, ll[..., None]]
  if cfg.encoder.coord_channels:
    inputs.append(np.broadcast_to(coords(h, w), (b, h, w, 2)))
  o = conv_stack(np.concatenate(inputs, -1), params, "refiner/~/encoder/cnn",
                 len(cfg.encoder.channels))                            # bottom-up O
  o = layer_norm(o.reshape(b, h * w, -1), params["refiner/~/slot_attention/norm_inputs"])
  keys = o @ params["refiner/~/slot_attention/keys"]["w"]
  values = o @ params["refiner/~/slot_attention/values"]["w"]
  grad_n = layer_norm(grad)                                            # per slot, no parameters
  action_k = np.broadcast_to(action[:, None], (b, k, action.shape[-1]))
  s = np.concatenate([lam, action_k, grad_n], -1) if cfg.top_down else lam
  if cfg.query_layernorm:
    s = layer_norm(s, params["refiner/~/slot_attention/norm_queries"])
  q = s @ params["refiner/~/slot_attention/queries"]["w"]              # Eq 4
  logits = np.einsum("bnd,bkd->bnk", keys, q) / np.sqrt(q.shape[-1])
  bias = cfg.attention.logit_bias        # not in the paper: a given bias on Eq 5's logits
  if bias != "none":
    if bias == "log_responsibilities":
      log_n = component_log_likelihood(x, means, cfg.sigma_x)
      log_masks = log_softmax(log_masks + log_n, axis=1)              # log p(k | x_i)
    logits = logits + log_masks.reshape(b, k, h * w).transpose(0, 2, 1)
  attn = softmax(logits, axis=-1)                                      # Eq 5
  weights = attn / (attn.sum(axis=1, keepdims=True) + 1e-8)
  slots_out = np.einsum("bnk,bnd->bkd", weights, values)              # Eq 6
  hidden = [slots_out, grad_n, action_k] + ([lam] if cfg.refine_lambda_input else [])
  hid = np.concatenate(hidden, -1)
  for i in range(len(cfg.refine.mlp_hidden)):
    hid = relu(linear(hid, params[f"refiner/refine_mlp/linear_{i}"]))
  delta = linear(hid, params["refiner/refine_mlp/output"])
  return delta, attn.transpose(0, 2, 1).reshape(b, k, h, w)


def refine_iodine(params, cfg, lam, x, action, grad, loglik_image, log_masks, means):
  """The IODINE-style refiner of the S-IODINE / OP3 rows: per-slot image inputs through a
  strided CNN, mean-pooled, then an MLP with [features, lambda, grad, action]. Returns
  (delta lambda, responsibilities)."""
  b, k, _ = lam.shape
  _, h, w, _ = x.shape
  s = cfg.sigma_x
  log_n = component_log_likelihood(x, means, s)
  resp = softmax(log_masks + log_n, axis=1)                            # p(k | x_i)
  ll = loglik_image
  ll = (ll - ll.mean(axis=(1, 2), keepdims=True)) / np.sqrt(
      ll.var(axis=(1, 2), keepdims=True) + 1e-5)
  per_slot = [np.broadcast_to(x[:, None], (b, k, h, w, 3)), means, np.exp(log_masks)[..., None],
              log_masks[..., None], resp[..., None],
              np.broadcast_to(ll[:, None, ..., None], (b, k, h, w, 1)),
              np.broadcast_to(coords(h, w), (b, k, h, w, 2))]
  feats = np.concatenate(per_slot, -1).reshape(b * k, h, w, -1)
  feats = conv_stack(feats, params, "refiner/cnn", len(cfg.iodine.channels),
                     strides=cfg.iodine.strides, activate_final=True)
  feats = feats.mean(axis=(1, 2)).reshape(b, k, -1)
  hid = np.concatenate([feats, lam, layer_norm(grad),
                        np.broadcast_to(action[:, None], (b, k, action.shape[-1]))], -1)
  for i in range(len(cfg.refine.mlp_hidden)):
    hid = relu(linear(hid, params[f"refiner/refine_mlp/linear_{i}"]))
  return linear(hid, params["refiner/refine_mlp/output"]), resp


# --- section 3.2.1: prediction --------------------------------------------------------------
def predict(params, cfg, lam, action, state):
  """lambda_t^0 = lam + P(lam, a): transformer over slots, slot-wise LSTM. Returns (lam0, state)."""
  b, k, two_d = lam.shape
  pc = cfg.predictor
  x = np.concatenate([lam, np.broadcast_to(action[:, None], (b, k, action.shape[-1]))], -1)
  x = linear(x, params["predictor/embed"])
  if pc.kind == "transformer_lstm":
    for i in range(pc.num_layers):
      pre = f"predictor/block_{i}"
      y = layer_norm(x, params[f"{pre}/ln_attn"])
      heads, size = pc.num_heads, max(pc.model_size // pc.num_heads, 1)
      split = lambda a: a.reshape(b, k, heads, size)
      q, kk, v = (split(linear(y, params[f"{pre}/mha/{n}"])) for n in ("query", "key", "value"))
      a = softmax(np.einsum("bqhd,bkhd->bhqk", q, kk) / np.sqrt(size), axis=-1)
      y = np.einsum("bhqk,bkhd->bqhd", a, v).reshape(b, k, heads * size)
      x = x + linear(y, params[f"{pre}/mha/linear"])
      y = layer_norm(x, params[f"{pre}/ln_mlp"])
      y = linear(relu(linear(y, params[f"{pre}/mlp/~/linear_0"])), params[f"{pre}/mlp/~/linear_1"])
      x = x + y
  h, c = (s.reshape(b * k, -1) for s in state)
  gates = linear(np.concatenate([x.reshape(b * k, -1), h], -1), params["predictor/slot_lstm/linear"])
  i, g, f, o = np.split(gates, 4, axis=-1)
  c = sigmoid(f + 1.0) * c + sigmoid(i) * np.tanh(g)                   # forget-gate bias 1
  h = sigmoid(o) * np.tanh(c)
  delta = linear(h, params["predictor/output"]).reshape(b, k, two_d)
  lam0 = lam + delta if pc.residual else delta
  return lam0, (h.reshape(b, k, -1), c.reshape(b, k, -1))


# --- one time step (sections 3.2, 3.3) --------------------------------------------------------
def step(params: Params, cfg, carry: Carry, x: np.ndarray, action: np.ndarray,
         eps: Dict[int, np.ndarray], observe: bool) -> Tuple[Carry, Dict[str, np.ndarray]]:
  """One PARTS step. eps[n] is the noise of refinement iteration n (and eps[N] of the decoded
  refined posterior with the predictive prior). Returns the next carry and the step's outputs.

    lambda^0 = P(lambda_{t-1}^N, a_{t-1})
    lambda^n = lambda^{n-1} + E(lambda^{n-1}, x_t, a_{t-1}, dL/dlambda, log p(x_t | z))   (Eq 3)
    loss terms: the mean over the decoded iterates lambda^0..lambda^{N-1} (fixed prior; and
    lambda^N with decode_refined), or the ELBO of lambda^N against the prior N(lambda^0)
    (predictive prior, OP3-style).
  """
  lam0, state = predict(params, cfg, carry.lam, carry.action, carry.state)
  prior = lam0 if cfg.predictive_prior else None
  lam, decoded, attn = lam0, [], None
  for n in range(cfg.num_refine_steps):
    fe = frame_elbo(params, x, lam, eps[n], cfg, prior)
    grad = elbo_gradient(params, x, lam, eps[n], cfg, prior)
    if cfg.slot_attention:
      delta, attn = refine(params, cfg, lam, x, carry.action, grad, fe.loglik_image,
                           fe.log_masks, fe.means)
    else:
      delta, attn = refine_iodine(params, cfg, lam, x, carry.action, grad, fe.loglik_image,
                                  fe.log_masks, fe.means)
    decoded.append(fe)
    decoded_lam = lam                          # the lambda whose sample the masks decode
    if observe:
      lam = lam + delta
  if cfg.predictive_prior or cfg.decode_refined:
    decoded_lam = lam
  if cfg.predictive_prior:
    decoded = [frame_elbo(params, x, lam, eps[cfg.num_refine_steps], cfg, prior)]
  elif cfg.decode_refined:
    decoded.append(frame_elbo(params, x, lam, eps[cfg.num_refine_steps], cfg, prior))
  masks = np.exp(decoded[-1].log_masks)
  outputs = dict(elbo=np.mean([d.elbo for d in decoded], 0), kl=np.mean([d.kl for d in decoded], 0),
                 nll=np.mean([d.nll for d in decoded], 0), masks=masks,
                 recon=np.sum(masks[..., None] * decoded[-1].means, axis=1), posterior=lam,
                 decoded_posterior=decoded_lam, attention=attn,
                 prior=lam0 if cfg.predictive_prior else np.zeros_like(lam))
  return Carry(lam, state, action), outputs


def initial_carry(cfg, batch_size: int, action_dim: int) -> Carry:
  k, s = cfg.num_slots, cfg.predictor.lstm_size
  return Carry(np.zeros((batch_size, k, 2 * cfg.slot_dim)),
               (np.zeros((batch_size, k, s)), np.zeros((batch_size, k, s))),
               np.zeros((batch_size, action_dim)))
