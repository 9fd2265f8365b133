"""Builds an episode source or a batch iterator from the `data` config.

`data_config` (an ml_collections.ConfigDict, or any mapping with .get) keys:
  name:        'sprites', 'room3d', 'movi', 'clevrer', 'multi_object' or 'npz'.
  data_dir:    cache root / dataset location (None: $PARTS_JAX_DATA_DIR or
               ~/.cache/parts_jax for generators).
  image_size:  frames are image_size x image_size.
  num_frames:  episode length T.
  num_train, num_eval: episode counts (generators).
  seed, min_objects, max_objects: generator settings.
  cache:       generators only; True (default) writes the episodes once to an
               array_record cache under data_dir, False generates them in memory.
Generator-specific extras are read with .get(...) defaults (for sprites see
`sprites.episode_params`).
Every module other than sprites is imported only when named, and provides
`build_source(data_config, split)`.
"""
import importlib
from typing import Optional

from datasets import base
from datasets import pipeline

NAMES = ("sprites", "room3d", "movi", "clevrer", "multi_object", "npz")
_MODULES = {"npz": "npz_episodes"}
SPLITS = ("train", "eval")


def _check_split(split: str) -> None:
  if split not in SPLITS:
    raise base.DataError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")


def build_sprites(data_config, split: str) -> base.EpisodeSource:
  """The sprites split: cached on disk (data.cache=True) or in memory."""
  from datasets import sprites  # pylint: disable=g-import-not-at-top
  _check_split(split)
  params = sprites.episode_params(data_config)
  seed = int(data_config.get("seed", 0))
  num = data_config.get(f"num_{split}")
  if num is None:
    raise base.DataError(f"sprites: data.num_{split} is not set; set the "
                         "number of episodes to generate")
  num = int(num)
  if not data_config.get("cache", True):
    return sprites.SpritesSource(split, num, seed=seed, **params)
  from datasets import cache  # pylint: disable=g-import-not-at-top
  key = dict(params, seed=seed, version=sprites.VERSION)
  split_id = cache.SPLIT_IDS[split]
  assert split_id == sprites.SPLIT_IDS[split]
  path = cache.build_cached(
      "sprites", key, lambda s, i: sprites.make_episode(seed, s, i, **params),
      num, data_config.get("data_dir"), split=split)
  return cache.CachedSource(path)


def build_source(data_config, split: str) -> base.EpisodeSource:
  """The EpisodeSource for `split` ('train' or 'eval') of data_config.name."""
  name = data_config.get("name")
  if name not in NAMES:
    raise base.DataError(f"unknown data.name {name!r}; valid names: "
                         f"{', '.join(NAMES)}")
  _check_split(split)
  if name == "sprites":
    return build_sprites(data_config, split)
  module = importlib.import_module(f"datasets.{_MODULES.get(name, name)}")
  return module.build_source(data_config, split)


def get_iterator(data_config, split: str, batch_size: int, *, seed: int,
                 start_step: int = 0, shuffle: Optional[bool] = None,
                 process_index: int = 0, process_count: int = 1,
                 prefetch: int = 2) -> pipeline.BatchIterator:
  """Batches of `split`; shuffle defaults to True for train, False for eval."""
  source = build_source(data_config, split)
  return pipeline.BatchIterator(
      source, batch_size, seed=seed, start_step=start_step,
      shuffle=(split == "train") if shuffle is None else shuffle,
      process_index=process_index, process_count=process_count,
      num_frames=data_config.get("num_frames"),
      image_size=data_config.get("image_size"), prefetch=prefetch)
