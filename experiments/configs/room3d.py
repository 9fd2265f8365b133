"""room3d: the Playroom-like MuJoCo stand-in (rendered once, cached). Actions = camera motion."""
from experiments.configs import common


def get_config():
  c = common.base_config()
  c.data.name = "room3d"
  c.data.image_size = 32
  c.data.num_frames = 8
  c.data.num_train = 2000
  c.data.num_eval = 128
  c.data.min_objects = 3
  c.data.max_objects = 6
  c.model.num_slots = 7
  c.model.slot_dim = 16
  c.train.num_steps = 50_000
  c.train.batch_size = 8
  return c
