"""Test helpers: a tiny model config and generated frames (no data files needed)."""
import os

import numpy as np

from experiments.configs.common import set_fields
from parts_jax import get_model_config


# The XLA:CPU option tests/conftest.py sets for the suite (off: the older, faster-compiling
# emitters; see there).
FUSION_EMITTERS = "--xla_cpu_use_fusion_emitters"


def compile_flags() -> str:
  """The compile-time options tests/conftest.py put in XLA_FLAGS (the fusion emitters' setting),
  for the subprocesses whose XLA_FLAGS a test writes itself."""
  return " ".join(f for f in os.environ.get("XLA_FLAGS", "").split()
                  if f.startswith(FUSION_EMITTERS))


def tiny_model_config(**overrides):
  c = get_model_config()
  c.image_size = (8, 8)
  c.time_loop = "scan"   # the jax.lax.scan design; test_model compares it with the others
  c.num_slots = 3
  c.slot_dim = 4
  c.decoder.channels = (8,)
  c.encoder.channels = (8,)
  c.attention.qk_dim = 8
  c.attention.value_dim = 8
  c.refine.mlp_hidden = (16,)
  c.iodine.channels = (8,)
  c.iodine.strides = (2,)
  c.predictor.model_size = 16
  c.predictor.mlp_size = 16
  c.predictor.lstm_size = 16
  return set_fields(c, overrides)


def moving_squares(rng: np.random.Generator, batch: int, steps: int, size: int,
                   num_objects: int = 2, action_dim: int = 2):
  """Coloured squares moving on a grey background: {"video", "actions"} as float32."""
  video = np.full((batch, steps, size, size, 3), 0.3, np.float32)
  actions = rng.uniform(-1, 1, (batch, steps, action_dim)).astype(np.float32)
  side = max(size // 4, 2)
  for b in range(batch):
    for _ in range(num_objects):
      colour = rng.uniform(0.5, 1.0, 3)
      y, x = rng.integers(0, size - side, 2)
      vy, vx = rng.integers(-1, 2, 2)
      for t in range(steps):
        yy = int(np.clip(y + vy * t, 0, size - side))
        xx = int(np.clip(x + vx * t, 0, size - side))
        video[b, t, yy:yy + side, xx:xx + side] = colour
  return {"video": video, "actions": actions}
