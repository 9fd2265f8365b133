"""CLEVRER: 25-step sequences, no actions (section 4.1). Needs the user's copy of CLEVRER
(mp4 videos + derender-proposal masks) under --config.data.data_dir."""
from experiments.configs import playroom


def get_config():
  c = playroom.get_config()
  c.data.name = "clevrer"
  c.data.dataset_label = "CLEVRER"
  c.data.num_frames = 25             # paper
  c.data.frame_stride = 2            # chosen
  c.model.use_actions = False        # paper: no actions on CLEVRER
  c.model.num_slots = 7
  return c
