"""Shared building blocks: a convolution with a choice of lowering, coordinate grids, MLPs.

`Conv2D` keeps hk.Conv2D's parameter names ("w" [kh, kw, Cin, Cout], "b" [Cout]) so checkpoints
do not depend on the lowering. Lowerings (config `model.conv_impl`):
  "xla":    lax.conv_general_dilated (fast on accelerators and on CPU outside loops).
  "im2col": patches @ weights. XLA:CPU runs convolution *gradients* inside a while loop
            (lax.scan) with slow generic kernels (10-50x slower); matmuls stay fast, so this
            lowering keeps the scan-over-time practical on CPU.
The model resolves "auto" with `config.resolve_lowering`.
"""
from typing import Sequence

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np


def _im2col_conv(x: jnp.ndarray, w: jnp.ndarray, stride: int) -> jnp.ndarray:
  """SAME-padded conv as one matmul. x: [N,H,W,Cin], w: [kh,kw,Cin,Cout] -> [N,H',W',Cout]."""
  kh, kw, cin, cout = w.shape
  _, h, wd, _ = x.shape
  out_h, out_w = -(-h // stride), -(-wd // stride)
  pad_h = max((out_h - 1) * stride + kh - h, 0)
  pad_w = max((out_w - 1) * stride + kw - wd, 0)
  xp = jnp.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2),
                   (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
  patches = [xp[:, i:i + (out_h - 1) * stride + 1:stride,
                j:j + (out_w - 1) * stride + 1:stride, :]
             for i in range(kh) for j in range(kw)]
  patches = jnp.concatenate(patches, axis=-1)  # [N, H', W', kh*kw*Cin]
  return patches @ w.reshape(kh * kw * cin, cout)


class Conv2D(hk.Module):
  """SAME-padded 2D convolution, NHWC, with a configurable lowering."""

  def __init__(self, output_channels: int, kernel_size: int, stride: int = 1,
               impl: str = "xla", name=None):
    super().__init__(name=name)
    self.output_channels = output_channels
    self.kernel_size = kernel_size
    self.stride = stride
    if impl not in ("xla", "im2col"):
      raise ValueError(f"conv impl must be 'xla' or 'im2col', got {impl!r}")
    self.impl = impl

  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    cin = x.shape[-1]
    k = self.kernel_size
    w_init = hk.initializers.VarianceScaling(1.0, "fan_avg", "uniform")
    w = hk.get_parameter("w", [k, k, cin, self.output_channels], x.dtype, init=w_init)
    b = hk.get_parameter("b", [self.output_channels], x.dtype, init=jnp.zeros)
    if self.impl == "xla":
      y = jax.lax.conv_general_dilated(
          x, w, (self.stride, self.stride), "SAME",
          dimension_numbers=("NHWC", "HWIO", "NHWC"))
    else:
      y = _im2col_conv(x, w, self.stride)
    return y + b


class ConvStack(hk.Module):
  """Conv -> ReLU layers. channels[i] output channels at layer i; no activation after the last
  layer if `activate_final` is False."""

  def __init__(self, channels: Sequence[int], kernel_size: int, strides: Sequence[int] = (),
               impl: str = "xla", activate_final: bool = True, name=None):
    super().__init__(name=name)
    self.channels = tuple(channels)
    self.kernel_size = kernel_size
    self.strides = tuple(strides) or (1,) * len(self.channels)
    self.impl = impl
    self.activate_final = activate_final

  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    for i, (c, s) in enumerate(zip(self.channels, self.strides)):
      x = Conv2D(c, self.kernel_size, s, self.impl, name=f"conv_{i}")(x)
      if i < len(self.channels) - 1 or self.activate_final:
        x = jax.nn.relu(x)
    return x


def coordinate_grid(height: int, width: int) -> jnp.ndarray:
  """[H, W, 2] grid of (y, x) coordinates in [-1, 1]."""
  ys = np.linspace(-1.0, 1.0, height, dtype=np.float32)
  xs = np.linspace(-1.0, 1.0, width, dtype=np.float32)
  return jnp.asarray(np.stack(np.meshgrid(ys, xs, indexing="ij"), axis=-1))


class DeltaMLP(hk.Module):
  """MLP whose last layer starts at zero, so an update head (delta lambda) starts as identity:
  the posterior starts at the all-zero initial state instead of drifting over time."""

  def __init__(self, hidden: Sequence[int], output_size: int, name: str):
    super().__init__(name=name)
    self.hidden = tuple(hidden)
    self.output_size = output_size

  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    for i, h in enumerate(self.hidden):
      x = jax.nn.relu(hk.Linear(h, name=f"linear_{i}")(x))
    return hk.Linear(self.output_size, w_init=jnp.zeros, name="output")(x)


def normalize_features(x: jnp.ndarray, eps: float = 1e-5) -> jnp.ndarray:
  """Parameter-free layer normalisation over the last axis (as IODINE normalises gradient
  inputs): zero mean, unit variance per slot."""
  mean = jnp.mean(x, axis=-1, keepdims=True)
  var = jnp.var(x, axis=-1, keepdims=True)
  return (x - mean) * jax.lax.rsqrt(var + eps)


def standardize_image(x: jnp.ndarray, eps: float = 1e-5) -> jnp.ndarray:
  """Zero mean, unit variance over the spatial axes of [B, H, W] maps (parameter-free).

  Used on the per-pixel log-likelihood input, whose scale grows as 1/sigma_x^2."""
  mean = jnp.mean(x, axis=(1, 2), keepdims=True)
  var = jnp.var(x, axis=(1, 2), keepdims=True)
  return (x - mean) * jax.lax.rsqrt(var + eps)
