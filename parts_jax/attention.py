"""Top-down slot attention, one step (section 3.2.3, Eqs 4-6).

  q_k = W_q s_k                                      (Eq 4)
  attn_ijk = softmax_k( k_ij^T q_k / sqrt(D_q) )     (Eq 5; softmax over slots per pixel)
  s_k^out = sum_ij attn_ijk v_ij / sum_ij attn_ijk   (Eq 6)

Not in the paper, a study candidate (`model.attention.logit_bias`): a given bias b_ijk added to the
logits of Eq 5, attn_ijk = softmax_k(k_ij^T q_k / sqrt(D_q) + b_ijk): with b = log r_k (the
mixture's responsibilities) the attention is r_k exp(k^T q) normalised, so a slot reads the
pixels the current decode gives it, outline included.
"""
from typing import Optional, Tuple

import chex
import haiku as hk
import jax
import jax.numpy as jnp


class TopDownSlotAttention(hk.Module):
  """(s [B, K, Cq], O [B, H, W, C], bias [B, K, H, W] or None) -> (slot outputs [B, K, Dv],
  attention [B, K, H, W])."""

  def __init__(self, qk_dim: int, value_dim: int, epsilon: float = 1e-8,
               query_layernorm: bool = False, name: str = "slot_attention"):
    super().__init__(name=name)
    self.qk_dim = qk_dim
    self.value_dim = value_dim
    self.epsilon = epsilon
    self.query_layernorm = query_layernorm

  def __call__(self, s: jnp.ndarray, features: jnp.ndarray,
               bias: Optional[jnp.ndarray] = None) -> Tuple[jnp.ndarray, jnp.ndarray]:
    chex.assert_rank([s, features], [3, 4])
    b, k, _ = s.shape
    _, h, w, _ = features.shape
    chex.assert_axis_dimension(features, 0, b)
    o = hk.LayerNorm(-1, True, True, name="norm_inputs")(features.reshape(b, h * w, -1))
    keys = hk.Linear(self.qk_dim, with_bias=False, name="keys")(o)       # [B, HW, Dq]
    values = hk.Linear(self.value_dim, with_bias=False, name="values")(o)  # [B, HW, Dv]
    if self.query_layernorm:
      s = hk.LayerNorm(-1, True, True, name="norm_queries")(s)
    queries = hk.Linear(self.qk_dim, with_bias=False, name="queries")(s)  # [B, K, Dq]  Eq 4
    logits = jnp.einsum("bnd,bkd->bnk", keys, queries) / jnp.sqrt(float(self.qk_dim))
    if bias is not None:
      chex.assert_shape(bias, (b, k, h, w))
      logits = logits + jnp.transpose(bias.reshape(b, k, h * w), (0, 2, 1))
    attn = jax.nn.softmax(logits, axis=-1)                                 # Eq 5, over K
    weights = attn / (jnp.sum(attn, axis=1, keepdims=True) + self.epsilon)
    slots_out = jnp.einsum("bnk,bnd->bkd", weights, values)               # Eq 6
    attn_maps = jnp.transpose(attn, (0, 2, 1)).reshape(b, k, h, w)
    return slots_out, attn_maps
