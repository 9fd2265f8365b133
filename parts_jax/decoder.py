"""Soft spatial-broadcast decoder (paper section 3.1, Eq 1 left).

Each slot z_k is decoded independently: a coordinate grid is linearly projected to D channels
(the spatial basis), added to z_k tiled over the image, and a size-preserving CNN maps the result
to 4 channels: component mean C_k (3) and mask logits m_hat_k (1).

The spatial basis is a config value (`model.decoder.basis`):
  "linear":   the paper's: Linear(D) of the (y, x) grid, the same for every slot (3.1).
  "mlp":      an MLP (basis_hidden, D) of the (y, x) grid: a non-linear basis, still absolute.
  "relative": slot-centric: each slot reads a position p_k = Linear(2)(z_k) and its basis is
              the MLP of (grid - p_k), so a shape is drawn in the slot's own frame and moved by
              p_k (as Invariant Slot Attention's decoder, Biza et al. 2023, without the scale).
"""
from typing import Sequence, Tuple

import chex
import haiku as hk
import jax.numpy as jnp

from parts_jax import layers
from parts_jax.config import DECODER_BASES as BASES


class SoftSpatialBroadcastDecoder(hk.Module):
  """z [B, K, D] -> (means [B, K, H, W, 3], mask_logits [B, K, H, W])."""

  def __init__(self, image_size: Tuple[int, int], channels: Sequence[int], kernel_size: int,
               conv_impl: str = "xla", basis: str = "linear", basis_hidden: int = 64,
               name: str = "decoder"):
    super().__init__(name=name)
    if basis not in BASES:
      raise ValueError(f"decoder basis must be one of {BASES}, got {basis!r}")
    self.image_size = tuple(image_size)
    self.channels = tuple(channels)
    self.kernel_size = kernel_size
    self.conv_impl = conv_impl
    self.basis = basis
    self.basis_hidden = basis_hidden

  def __call__(self, z: jnp.ndarray) -> Tuple[jnp.ndarray, jnp.ndarray]:
    chex.assert_rank(z, 3)
    b, k, d = z.shape
    h, w = self.image_size
    z = z.reshape(b * k, d)
    grid = layers.coordinate_grid(h, w)                                       # [H, W, 2]
    if self.basis == "linear":
      basis = hk.Linear(d, name="spatial_basis")(grid)                        # [H, W, D]
    elif self.basis == "mlp":
      basis = hk.nets.MLP((self.basis_hidden, d), name="spatial_basis")(grid)
    else:
      position = hk.Linear(2, name="position")(z)                             # p_k [BK, 2]
      basis = hk.nets.MLP((self.basis_hidden, d), name="spatial_basis")(
          grid[None] - position[:, None, None, :])                            # [BK, H, W, D]
    x = z[:, None, None, :] + basis                                           # [BK, H, W, D]
    x = layers.ConvStack(self.channels + (4,), self.kernel_size, impl=self.conv_impl,
                         activate_final=False, name="cnn")(x)
    x = x.reshape(b, k, h, w, 4)
    means, mask_logits = x[..., :3], x[..., 3]
    chex.assert_shape(mask_logits, (b, k, h, w))
    return means, mask_logits
