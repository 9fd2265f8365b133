"""Prediction model P (section 3.2.1): lambda_t^0 = P(lambda_{t-1}^N, a_{t-1}).

The action is concatenated to every slot, a transformer mixes slots (no positional encoding, so
it is permutation-equivariant over slots), then an LSTM with weights shared across slots updates
each slot's recurrent state. kind="lstm" drops the transformer (the ablation / OP3-style row).
"""
from typing import Tuple

import chex
import haiku as hk
import jax
import jax.numpy as jnp


class TransformerBlock(hk.Module):
  """Pre-LayerNorm self-attention block over slots. [B, K, M] -> [B, K, M]."""

  def __init__(self, num_heads: int, mlp_size: int, name=None):
    super().__init__(name=name)
    self.num_heads = num_heads
    self.mlp_size = mlp_size

  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    m = x.shape[-1]
    y = hk.LayerNorm(-1, True, True, name="ln_attn")(x)
    y = hk.MultiHeadAttention(self.num_heads, key_size=max(m // self.num_heads, 1),
                              w_init=hk.initializers.VarianceScaling(1.0), name="mha")(y, y, y)
    x = x + y
    y = hk.LayerNorm(-1, True, True, name="ln_mlp")(x)
    y = hk.nets.MLP((self.mlp_size, m), activation=jax.nn.relu, name="mlp")(y)
    return x + y


class Predictor(hk.Module):
  """(lambda [B,K,2D], action [B,A], state (h, c) each [B,K,S]) -> (lambda^0 [B,K,2D], state)."""

  def __init__(self, kind: str, model_size: int, num_layers: int, num_heads: int,
               mlp_size: int, lstm_size: int, residual: bool = True, name: str = "predictor"):
    super().__init__(name=name)
    if kind not in ("transformer_lstm", "lstm"):
      raise ValueError(f"predictor kind must be 'transformer_lstm' or 'lstm', got {kind!r}")
    self.kind = kind
    self.model_size = model_size
    self.num_layers = num_layers
    self.num_heads = num_heads
    self.mlp_size = mlp_size
    self.lstm_size = lstm_size
    self.residual = residual

  def __call__(self, lam: jnp.ndarray, action: jnp.ndarray,
               state: Tuple[jnp.ndarray, jnp.ndarray]) -> Tuple[jnp.ndarray, Tuple]:
    chex.assert_rank([lam, action], [3, 2])
    b, k, two_d = lam.shape
    x = jnp.concatenate([lam, jnp.broadcast_to(action[:, None], (b, k, action.shape[-1]))], -1)
    x = hk.Linear(self.model_size, name="embed")(x)
    if self.kind == "transformer_lstm":
      for i in range(self.num_layers):
        x = TransformerBlock(self.num_heads, self.mlp_size, name=f"block_{i}")(x)
    h, c = state
    lstm = hk.LSTM(self.lstm_size, name="slot_lstm")        # shared across slots
    out, new_state = lstm(x.reshape(b * k, -1),
                          hk.LSTMState(h.reshape(b * k, -1), c.reshape(b * k, -1)))
    delta = hk.Linear(two_d, w_init=jnp.zeros, name="output")(out).reshape(b, k, two_d)
    lam0 = lam + delta if self.residual else delta
    new_state = (new_state.hidden.reshape(b, k, -1), new_state.cell.reshape(b, k, -1))
    return lam0, new_state

  def initial_state(self, batch_size: int, num_slots: int) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """All-zero recurrent state (section 4)."""
    zeros = jnp.zeros((batch_size, num_slots, self.lstm_size), jnp.float32)
    return zeros, zeros
