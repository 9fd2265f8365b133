"""Fields shared by every experiment config. Dataset configs start from `base_config()`.

Field names under seed/train/data/model/eval are an API (launch scripts and sweeps use them).
`model.image_size` is set from `data.image_size` when the model is built.
"""
import ml_collections

from parts_jax.config import get_model_config


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.name = "sprites"
  c.data.data_dir = ""                # "" / None: $PARTS_JAX_DATA_DIR or ~/.cache/parts_jax
  c.data.image_size = 32
  c.data.num_frames = 8
  c.data.num_train = 5000
  c.data.num_eval = 256
  c.data.seed = 0
  c.data.min_objects = 3
  c.data.max_objects = 6
  c.data.cache = True

  c.model = get_model_config()

  c.train = ml_collections.ConfigDict()
  c.train.num_steps = 20_000
  c.train.batch_size = 8             # global batch, split over all devices
  c.train.host_devices = 0           # XLA:CPU devices; 0 = one per core, batch split over
                                     # them (experiments/host_devices.py); no effect on GPU/TPU
  c.train.learning_rate = 3e-4       # chosen (not given in the paper)
  c.train.warmup_steps = 500         # chosen (linear warm-up)
  c.train.decay_start = -1           # chosen (not in the paper): -1 = the rate stays constant
  c.train.decay_steps = 0            # after the warm-up; else from step decay_start it falls
  c.train.decay_final_fraction = 0.0   # linearly over decay_steps steps to this fraction of itself
  c.train.rmsprop_decay = 0.9        # chosen
  c.train.rmsprop_eps = 1e-6         # chosen
  c.train.grad_clip_norm = 5.0       # paper: global norm 5.0
  c.train.checkpoint_every = 500
  c.train.max_checkpoints = 3
  c.train.log_every = 20
  c.train.eval_every = 500           # held-out batch: FG-ARI and images to TensorBoard
  c.train.skip_nonfinite = False     # True: skip steps with NaN/Inf loss or grads, count them

  c.eval = ml_collections.ConfigDict()
  c.eval.num_sequences = 256
  c.eval.batch_size = 16
  c.eval.num_slots = -1              # -1: same K as training; else re-instantiate with this K
  c.eval.burn_in = 0                 # > 0: roll-out evaluation (4.2)
  c.eval.rollout_steps = 0
  c.eval.static_steps = 0             # > 0: also the Fig 7 static unroll (evaluate.py)
  c.eval.average_checkpoints = 1     # chosen (not in the paper): > 1 evaluates the mean of the
                                     # parameters of the last N kept checkpoints (checkpoint
                                     # averaging, SWA); train.max_checkpoints must keep N
  c.eval.max_ids = 24                # upper bound on ground-truth ids (MOVi has <= 23 objects)
  c.eval.seed = 0
  c.eval.split = "eval"              # "train": experiments.evaluate scores the first episodes of
                                     # the training split instead (are they fitted better than
                                     # held-out ones?); the held-out eval during training and
                                     # the headline use "eval"
  return c


def set_fields(config: ml_collections.ConfigDict, fields) -> ml_collections.ConfigDict:
  """Sets {"group.field": value, ...} in `config` (in place; new fields are added) and returns
  it: the presets of study.py and the accelerator kit's overrides."""
  for path, value in fields.items():
    *parents, field = path.split(".")
    node = config
    for key in parents:
      node = node[key]
    node[field] = value
  return config
