"""MOVi-A..E (Kubric tfds builds) from the user's copy; reading needs `pip install -e .[tf]`."""
from experiments.configs import playroom


def get_config():
  c = playroom.get_config()
  c.data.name = "movi"
  c.data.dataset_label = "MOVi"
  c.data.variant = "movi_a"          # movi_a .. movi_e
  c.data.num_frames = 24
  c.model.use_actions = False        # MOVi has no actions
  c.model.num_slots = 11             # chosen: up to 10 objects + background
  return c
