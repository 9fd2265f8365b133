"""Builds an episode source or a batch iterator from the `data` config.

`data_config` (an ml_collections.ConfigDict, or any mapping with .get) keys:
  name:        'sprites', 'room3d', 'movi', 'clevrer', 'multi_object' or 'npz'.
  data_dir:    cache root / dataset location (None: $PARTS_JAX_DATA_DIR or
               ~/.cache/parts_jax for generators).
  image_size:  frames are image_size x image_size.
  num_frames:  episode length T.
  num_train, num_eval: episode counts (generators).
  seed, min_objects, max_objects: generator settings.
  action_dim:  optional; when set, the source's action width A must equal it
               (e.g. 7 for the Robotics Arm), else build_source raises.
  cache:       True (default) writes generated or converted episodes once to an
               array_record cache under data_dir, False generates them in memory.
Generator-specific extras are read with .get(...) defaults (for sprites see
`sprites.episode_params`).
Every loader module is imported only when named, and provides
`build_source(data_config, split)`.
"""
import importlib
from typing import Any, Dict, Optional

from datasets import base
from datasets import pipeline

NAMES = ("sprites", "room3d", "movi", "clevrer", "multi_object", "npz")
_MODULES = {"npz": "npz_episodes"}


def build_source(data_config, split: str) -> base.EpisodeSource:
  """The EpisodeSource for `split` ('train' or 'eval') of data_config.name."""
  name = data_config.get("name")
  if name not in NAMES:
    raise base.DataError(f"unknown data.name {name!r}; valid names: "
                         f"{', '.join(NAMES)}")
  base.check_split(split)
  module = importlib.import_module(f"datasets.{_MODULES.get(name, name)}")
  source = module.build_source(data_config, split)
  expected = data_config.get("action_dim", None)
  if expected is not None and source.action_dim != int(expected):
    raise base.DataError(
        f"{source.origin or name}: episodes have {source.action_dim} action "
        f"dimensions but the config sets data.action_dim={expected}; record "
        f"actions of that width or change data.action_dim")
  return source


def get_iterator(data_config, split: str, batch_size: int, *, seed: int,
                 start_step: int = 0, shuffle: Optional[bool] = None,
                 process_index: int = 0, process_count: int = 1,
                 prefetch: int = 2, source: Optional[base.EpisodeSource] = None
                 ) -> pipeline.BatchIterator:
  """Batches of `split`; shuffle defaults to True for train, False for eval. `source`: the
  split's source if already built (else built here)."""
  source = build_source(data_config, split) if source is None else source
  return pipeline.BatchIterator(
      source, batch_size, seed=seed, start_step=start_step,
      shuffle=(split == "train") if shuffle is None else shuffle,
      process_index=process_index, process_count=process_count,
      num_frames=data_config.get("num_frames"),
      image_size=data_config.get("image_size"), prefetch=prefetch)


def first_sequences(data_config, split: str, num: int, *, seed: int = 0,
                    require_segmentations: bool = False, what: str = "") -> Dict[str, Any]:
  """One batch of the first min(num, available) sequences of `split`, in order (analyses that
  read a fixed set of episodes). require_segmentations: raise DataError, naming `what` (the
  caller), if the split has no ground-truth segmentations."""
  source = build_source(data_config, split)
  if num > len(source):
    print(f"{what or 'data'}: the {split} split has {len(source)} sequences, using all of them")
  it = get_iterator(data_config, split, min(num, len(source)), seed=seed, shuffle=False,
                    prefetch=0, source=source)
  try:
    batch = next(it)
  finally:
    it.close()
  if require_segmentations and batch.get("segmentations") is None:
    raise base.DataError(f"{what or 'data'}: the {split} split of {data_config.get('name')!r} "
                         "has no ground-truth segmentations")
  return batch
