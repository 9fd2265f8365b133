"""MOVi-A..E (Kubric tfds builds, read without TensorFlow) from the user's copy.

  --config=experiments/configs/movi.py            MOVi-A (K = 11)
  --config=experiments/configs/movi.py:movi_e     MOVi-E (K = 24)
MOVi-A/B have up to 10 objects, MOVi-C..E up to 23: K = objects + background.
Copy the build as `datasets/movi.py` describes and set --config.data.data_dir.
"""
from experiments.configs import playroom

MAX_OBJECTS = {"movi_a": 10, "movi_b": 10, "movi_c": 23, "movi_d": 23,
               "movi_e": 23}


def get_config(variant: str = "movi_a"):
  if variant not in MAX_OBJECTS:
    raise ValueError(f"unknown MOVi variant {variant!r}; valid: "
                     f"{', '.join(MAX_OBJECTS)}")
  c = playroom.get_config()
  c.data.name = "movi"
  c.data.dataset_label = "MOVi"
  c.data.variant = variant
  c.data.num_frames = 24
  c.model.use_actions = False        # MOVi has no actions
  c.model.num_slots = MAX_OBJECTS[variant] + 1  # chosen: objects + background
  return c
