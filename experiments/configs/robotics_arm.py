"""Robotics Arm: 8-step sequences with 7-D arm actions (section 4.1), npz format.

The dataset was not released; bring your own recordings in the npz format of
`datasets/npz_episodes.py`. It has no ground-truth masks, so FG-ARI is not reported."""
from experiments.configs import playroom


def get_config():
  c = playroom.get_config()
  c.data.dataset_label = "Robotics Arm"
  c.data.num_frames = 8              # paper
  c.data.action_dim = 7              # paper: 7-D arm movement
  return c
