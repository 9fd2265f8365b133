"""The refinement network E_phi of Eq 3: lambda^n = lambda^{n-1} + E(lambda^{n-1}, x_t, a_{t-1},
grad_lambda L, log p(x_t | z_t)).

Two variants, chosen by `model.slot_attention`:
  True  (PARTS): bottom-up CNN -> top-down slot attention (queries from
        s_k = concat[lambda_k, a_{t-1}, grad_k], or lambda_k alone with `top_down` off) ->
        slot-wise MLP on concat[slot output, grad_k, a_{t-1}] (and lambda_k with
        `refine_lambda_input`) -> delta lambda_k. With `attention.logit_bias` the attention logits
        get log m_k ("log_masks") or log p(k | x_i) ("log_responsibilities") of the decode at
        lambda^{n-1} added (not in the paper; gradients stopped: a given input, like grad_k).
  False (S-IODINE / OP3 baselines): an IODINE-style refinement network that sees image-sized
        inputs per slot (frame, component mean, mask, mask logits, responsibilities, per-pixel
        log-likelihood, coordinates) through a strided CNN, pooled, then an MLP with
        concat[lambda_k, grad_k, a_{t-1}].
"""
from typing import Sequence

import chex
import haiku as hk
import jax
import jax.numpy as jnp

from parts_jax import layers, likelihood
from parts_jax.attention import TopDownSlotAttention
from parts_jax.encoder import BottomUpEncoder


class SlotAttentionRefiner(hk.Module):
  """PARTS refinement: returns (delta lambda [B,K,2D], attention [B,K,H,W])."""

  def __init__(self, encoder_channels: Sequence[int], kernel_size: int, coord_channels: bool,
               qk_dim: int, value_dim: int, mlp_hidden: Sequence[int], top_down: bool,
               conv_impl: str = "xla", lambda_input: bool = False,
               query_layernorm: bool = False, logit_bias: str = "none", sigma_x: float = 0.1,
               name: str = "refiner"):
    super().__init__(name=name)
    self.encoder = BottomUpEncoder(encoder_channels, kernel_size, coord_channels, conv_impl)
    self.attention = TopDownSlotAttention(qk_dim, value_dim, query_layernorm=query_layernorm)
    self.mlp_hidden = tuple(mlp_hidden)
    self.top_down = top_down
    self.lambda_input = lambda_input
    self.logit_bias = logit_bias
    self.sigma_x = sigma_x

  def __call__(self, lam, x, action, grad, loglik_image, log_masks, means):
    b, k, two_d = lam.shape
    action_k = jnp.broadcast_to(action[:, None], (b, k, action.shape[-1]))
    o = self.encoder(x, loglik_image)
    s = jnp.concatenate([lam, action_k, grad], -1) if self.top_down else lam   # Eq 4 input
    bias = None
    if self.logit_bias == "log_masks":
      bias = jax.lax.stop_gradient(log_masks)
    elif self.logit_bias == "log_responsibilities":
      bias = jax.lax.stop_gradient(
          likelihood.log_responsibilities(x, means, log_masks, self.sigma_x))
    slots_out, attn = self.attention(s, o, bias)
    h = [slots_out, grad, action_k] + ([lam] if self.lambda_input else [])
    h = jnp.concatenate(h, -1)
    delta = layers.DeltaMLP(self.mlp_hidden, two_d, name="refine_mlp")(h)
    return delta, attn


class IodineRefiner(hk.Module):
  """IODINE-style refinement (slot_attention off): returns (delta lambda, responsibilities)."""

  def __init__(self, channels: Sequence[int], kernel_size: int, strides: Sequence[int],
               mlp_hidden: Sequence[int], sigma_x: float, conv_impl: str = "xla",
               name: str = "refiner"):
    super().__init__(name=name)
    self.sigma_x = sigma_x
    self.channels = tuple(channels)
    self.kernel_size = kernel_size
    self.strides = tuple(strides)
    self.mlp_hidden = tuple(mlp_hidden)
    self.conv_impl = conv_impl

  def __call__(self, lam, x, action, grad, loglik_image, log_masks, means):
    b, k, two_d = lam.shape
    _, h, w, _ = x.shape
    chex.assert_shape(log_masks, (b, k, h, w))
    resp = likelihood.responsibilities(x, means, log_masks, self.sigma_x)  # p(k | x_i)
    loglik_image = layers.standardize_image(loglik_image)
    per_slot = [
        jnp.broadcast_to(x[:, None], (b, k, h, w, 3)), means, jnp.exp(log_masks)[..., None],
        log_masks[..., None], resp[..., None],
        jnp.broadcast_to(loglik_image[:, None, ..., None], (b, k, h, w, 1)),
        jnp.broadcast_to(layers.coordinate_grid(h, w), (b, k, h, w, 2)),
    ]
    feats = jnp.concatenate(per_slot, -1).reshape(b * k, h, w, -1)
    feats = layers.ConvStack(self.channels, self.kernel_size, self.strides, self.conv_impl,
                             name="cnn")(feats)
    feats = jnp.mean(feats, axis=(1, 2)).reshape(b, k, -1)
    action_k = jnp.broadcast_to(action[:, None], (b, k, action.shape[-1]))
    hidden = jnp.concatenate([feats, lam, grad, action_k], -1)
    delta = layers.DeltaMLP(self.mlp_hidden, two_d, name="refine_mlp")(hidden)
    return delta, jax.lax.stop_gradient(resp)


def make_refiner(cfg, conv_impl: str) -> hk.Module:
  """Builds the refinement network selected by `cfg.slot_attention` (cfg = model config)."""
  if cfg.slot_attention:
    return SlotAttentionRefiner(
        encoder_channels=cfg.encoder.channels, kernel_size=cfg.encoder.kernel_size,
        coord_channels=cfg.encoder.coord_channels, qk_dim=cfg.attention.qk_dim,
        value_dim=cfg.attention.value_dim, mlp_hidden=cfg.refine.mlp_hidden,
        top_down=cfg.top_down, conv_impl=conv_impl, lambda_input=cfg.refine_lambda_input,
        query_layernorm=cfg.query_layernorm, logit_bias=cfg.attention.logit_bias,
        sigma_x=cfg.sigma_x)
  return IodineRefiner(
      channels=cfg.iodine.channels, kernel_size=cfg.iodine.kernel_size,
      strides=cfg.iodine.strides, mlp_hidden=cfg.refine.mlp_hidden, sigma_x=cfg.sigma_x,
      conv_impl=conv_impl)
