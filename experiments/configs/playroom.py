"""The paper's Playroom setting (K = 7, 16-step sequences, actions, beta 0.5), for accelerators.

The Playroom was never released: convert your own episodes to the npz format of
`datasets/npz_episodes.py` and pass --config.data.data_dir=..., or train on room3d.
Sizes not given in the paper are chosen here (marked "chosen").
"""
from experiments.configs import common


def get_config():
  c = common.base_config()
  c.data.name = "npz"
  c.data.data_dir = ""               # required: folder with train/ and eval/ npz episodes
  c.data.dataset_label = "Playroom"
  c.data.image_size = 64             # chosen
  c.data.num_frames = 16             # paper
  c.model.num_slots = 7              # paper
  c.model.slot_dim = 32              # chosen
  c.model.beta = 0.5                 # paper
  c.model.tbptt = 4                  # paper
  c.model.use_actions = True         # paper
  c.model.decoder.channels = (64, 64, 64, 64)   # chosen
  c.model.encoder.channels = (64, 64, 64)       # chosen
  c.model.attention.qk_dim = 64                 # chosen
  c.model.attention.value_dim = 64              # chosen
  c.model.refine.mlp_hidden = (256, 256)        # chosen
  c.model.predictor.model_size = 128            # chosen
  c.model.predictor.num_layers = 2              # chosen
  c.model.predictor.num_heads = 4               # chosen
  c.model.predictor.mlp_size = 256              # chosen
  c.model.predictor.lstm_size = 256             # chosen
  c.train.batch_size = 32            # chosen
  c.train.num_steps = 1_000_000      # chosen (the ablations ran "up to 400,000 steps")
  c.eval.num_sequences = 64          # Table 1: "a minibatch of 64 sequences"
  return c
