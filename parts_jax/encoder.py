"""Bottom-up encoder (section 3.2.2): a stride-1, size-preserving CNN over
concat[x_t, log p(x_t | z_t)] (plus optional coordinate channels) -> O [B, H, W, C]."""
from typing import Sequence

import chex
import haiku as hk
import jax.numpy as jnp

from parts_jax import layers


class BottomUpEncoder(hk.Module):
  """(x [B,H,W,3], loglik_image [B,H,W]) -> O [B,H,W,C]."""

  def __init__(self, channels: Sequence[int], kernel_size: int, coord_channels: bool = True,
               conv_impl: str = "xla", name: str = "encoder"):
    super().__init__(name=name)
    self.channels = tuple(channels)
    self.kernel_size = kernel_size
    # Not in the paper: (y, x) coordinate channels let keys carry position (slot attention
    # adds a position embedding for the same reason).
    self.coord_channels = coord_channels
    self.conv_impl = conv_impl

  def __call__(self, x: jnp.ndarray, loglik_image: jnp.ndarray) -> jnp.ndarray:
    chex.assert_rank(x, 4)
    b, h, w, _ = x.shape
    chex.assert_shape(loglik_image, (b, h, w))
    inputs = [x, layers.standardize_image(loglik_image)[..., None]]
    if self.coord_channels:
      inputs.append(jnp.broadcast_to(layers.coordinate_grid(h, w), (b, h, w, 2)))
    out = layers.ConvStack(self.channels, self.kernel_size, impl=self.conv_impl,
                           activate_final=False, name="cnn")(jnp.concatenate(inputs, -1))
    chex.assert_shape(out, (b, h, w, self.channels[-1]))
    return out
