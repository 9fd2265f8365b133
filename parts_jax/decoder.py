"""Soft spatial-broadcast decoder (paper section 3.1, Eq 1 left).

Each slot z_k is decoded independently: a coordinate grid is linearly projected to D channels
(the spatial basis), added to z_k tiled over the image, and a size-preserving CNN maps the result
to 4 channels: component mean C_k (3) and mask logits m_hat_k (1).
"""
from typing import Sequence, Tuple

import chex
import haiku as hk
import jax.numpy as jnp

from parts_jax import layers


class SoftSpatialBroadcastDecoder(hk.Module):
  """z [B, K, D] -> (means [B, K, H, W, 3], mask_logits [B, K, H, W])."""

  def __init__(self, image_size: Tuple[int, int], channels: Sequence[int], kernel_size: int,
               conv_impl: str = "xla", name: str = "decoder"):
    super().__init__(name=name)
    self.image_size = tuple(image_size)
    self.channels = tuple(channels)
    self.kernel_size = kernel_size
    self.conv_impl = conv_impl

  def __call__(self, z: jnp.ndarray) -> Tuple[jnp.ndarray, jnp.ndarray]:
    chex.assert_rank(z, 3)
    b, k, d = z.shape
    h, w = self.image_size
    basis = hk.Linear(d, name="spatial_basis")(layers.coordinate_grid(h, w))  # [H, W, D]
    x = z.reshape(b * k, 1, 1, d) + basis[None]                                # [BK, H, W, D]
    x = layers.ConvStack(self.channels + (4,), self.kernel_size, impl=self.conv_impl,
                         activate_final=False, name="cnn")(x)
    x = x.reshape(b, k, h, w, 4)
    means, mask_logits = x[..., :3], x[..., 3]
    chex.assert_shape(mask_logits, (b, k, h, w))
    return means, mask_logits
