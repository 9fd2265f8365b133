"""movi: Kubric MOVi-A..E videos from a local tfds build (never downloaded here).

Expected on disk (the layout `gsutil -m cp -r gs://kubric-public/tfds/movi_a
<data_dir>/` produces):
  <data.data_dir>/<dataset>/<resolution>/<version>/dataset_info.json, *.tfrecord*
with dataset = data.variant (or data.dataset; default "movi_a" when data.name
is "movi", else data.name) in movi_a..movi_e, resolution =
data.get("movi_resolution", "128x128"), version = data.get("movi_version",
"1.0.0"). Split "train" reads tfds split "train", "eval" reads "validation".

Each tfds example has `video` [T, H, W, 3] uint8 and `segmentations`
[T, H, W, 1] uint8 (0 = background, k = instance k). It becomes an episode
(see `datasets.base`) with the first data.num_frames frames, resized to
data.image_size (video area-averaged, masks nearest neighbour), actions of
width A = 0 and segmentations [T, H, W] int32 (ids kept as in MOVi).
data.num_train / data.num_eval (when > 0) cap the number of episodes (the
first ones of the split; 0 = the whole split).

Reading the TFRecords needs TensorFlow, an optional extra
(`pip install -e .[tf]`); it is imported only here, lazily. With data.cache
(default True) the converted episodes are written once to the array_record
cache (data.cache_dir, default `cache.default_data_dir()`), after which
TensorFlow is no longer needed; otherwise they are held in memory.

Also holds the helpers multi_object.py shares: import_tensorflow,
SequentialReader, ListSource and cached_or_in_memory.
"""
import json
import os
from typing import Callable, Dict, Iterator

import numpy as np

from datasets import base
from datasets import npz_episodes

VERSION = 1  # Of the conversion below; part of the cache key.
_TFDS_SPLITS = {"train": "train", "eval": "validation"}


def import_tensorflow(what: str):
  """Imports TensorFlow or raises a DataError saying how to install it."""
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise base.DataError(
        f"{what} needs TensorFlow to read TFRecords, an optional extra: "
        f"`pip install -e .[tf]` (or `pip install tensorflow`). ({e})") from e
  return tf


def example_to_episode(example: Dict[str, np.ndarray], image_size: int,
                       num_frames: int, origin: str = "movi") -> base.Episode:
  """A MOVi tfds example (NumPy) -> episode.

  Args:
    example: {"video": [T, H, W, 3] uint8, "segmentations": [T, H, W, 1]
      uint8}; other keys are ignored.
    image_size: output H = W.
    num_frames: output T (the first frames); DataError if the video is shorter.
    origin: named in error messages.

  Returns:
    {"video": [num_frames, S, S, 3] uint8, "actions": [num_frames, 0] float32,
     "segmentations": [num_frames, S, S] int32}, S = image_size.
  """
  video = np.asarray(example["video"])
  seg = np.asarray(example["segmentations"])
  if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
    raise base.DataError(f"{origin}: video has shape {video.shape} and dtype "
                         f"{video.dtype}, expected [T, H, W, 3] uint8")
  if seg.ndim == 4 and seg.shape[-1] == 1:
    seg = seg[..., 0]
  if seg.shape != video.shape[:3]:
    raise base.DataError(f"{origin}: segmentations have shape "
                         f"{np.shape(example['segmentations'])}, expected "
                         f"{video.shape[:3] + (1,)}")
  episode = {"video": video,
             "actions": np.zeros((len(video), 0), np.float32),
             "segmentations": seg}
  return npz_episodes.fit_episode(episode, image_size, num_frames, origin)


def _dataset_dir(data_config) -> str:
  name = (data_config.get("variant", None) or data_config.get("dataset", None)
          or ("movi_a" if data_config.name == "movi" else data_config.name))
  return os.path.join(str(data_config.data_dir or ""), name,
                      data_config.get("movi_resolution", "128x128"),
                      data_config.get("movi_version", "1.0.0"))


def _split_size(directory: str, split: str) -> int:
  """Examples in `split`, from the build's dataset_info.json (no TF needed)."""
  path = os.path.join(directory, "dataset_info.json")
  try:
    with open(path) as f:
      splits = {s["name"]: s for s in json.load(f)["splits"]}
    return sum(int(n) for n in splits[split]["shardLengths"])
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise base.DataError(f"{path}: cannot read the size of split {split!r} "
                         f"({type(e).__name__}: {e}); is the tfds build "
                         f"complete?") from e


def _read_examples(directory: str, split: str, start: int,
                   count: int) -> Iterator[Dict[str, np.ndarray]]:
  """Examples start..start+count-1 of a tfds split, as NumPy (needs TF)."""
  import_tensorflow(directory)
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    builder = tfds.builder_from_directory(directory)
    dataset = builder.as_dataset(split=f"{split}[{start}:{start + count}]",
                                 shuffle_files=False)
  except Exception as e:  # pylint: disable=broad-except
    raise base.DataError(f"{directory}: cannot open the tfds split {split!r} "
                         f"({type(e).__name__}: {e})") from e
  dataset = dataset.map(lambda ex: {"video": ex["video"],
                                    "segmentations": ex["segmentations"]})
  yield from tfds.as_numpy(dataset)


class SequentialReader:
  """Random access, for `cache.build_cached`, over a sequential reader.

  build_cached asks for episodes 0, 0, 1, 2, ... (and a resumed run starts at
  a later index); `open_at(i)` must return an iterator of episodes i, i+1, ...
  It is re-opened only when going backwards.
  """

  def __init__(self, open_at: Callable[[int], Iterator[base.Episode]],
               origin: str):
    self._open_at, self._origin = open_at, origin
    self._iterator, self._next, self._last = None, 0, (None, None)

  def __call__(self, index: int) -> base.Episode:
    if self._last[0] == index:
      return self._last[1]
    if self._iterator is None or index < self._next:
      self._iterator, self._next = self._open_at(index), index
    while self._next <= index:
      try:
        episode = next(self._iterator)
      except StopIteration:
        raise base.DataError(f"{self._origin}: has only {self._next} "
                             f"examples; lower data.num_train / "
                             f"data.num_eval") from None
      self._next += 1
    self._last = (index, episode)
    return episode


class ListSource(base.EpisodeSource):
  """Episodes held in memory."""

  has_segmentations = True

  def __init__(self, episodes, origin: str):
    self._episodes, self.origin = list(episodes), origin
    if self._episodes:
      self.action_dim = self._episodes[0]["actions"].shape[-1]

  def __len__(self) -> int:
    return len(self._episodes)

  def __getitem__(self, index: int) -> base.Episode:
    return self._episodes[index]


def cached_or_in_memory(data_config, split: str, name: str, params: dict,
                        open_at, num: int, origin: str) -> base.EpisodeSource:
  """The `num` episodes of `open_at(0)`: cached (data.cache) or in memory."""
  reader = SequentialReader(open_at, origin)
  if not data_config.get("cache", True):
    return ListSource([reader(i) for i in range(num)], origin)
  from datasets import cache  # pylint: disable=g-import-not-at-top
  path = cache.build_cached(
      name, params, lambda split_id, index: reader(index), num,
      data_dir=data_config.get("cache_dir", None) or None, split=split)
  return cache.CachedSource(path)


def build_source(data_config, split: str) -> base.EpisodeSource:
  """MOVi episodes of `split` ("train" or "eval"); see the module docstring."""
  if split not in _TFDS_SPLITS:
    raise base.DataError(f"movi: unknown split {split!r}; valid: "
                         f"{sorted(_TFDS_SPLITS)}")
  directory = _dataset_dir(data_config)
  if not os.path.isfile(os.path.join(directory, "dataset_info.json")):
    raise base.DataError(
        f"{directory}: no MOVi tfds build here (dataset_info.json missing). "
        f"Copy it there yourself, e.g. `gsutil -m cp -r "
        f"gs://kubric-public/tfds/<movi_x>/<resolution> "
        f"<data_dir>/<movi_x>/`, and set data.data_dir / data.variant / "
        f"data.movi_resolution accordingly.")
  tfds_split = _TFDS_SPLITS[split]
  available = _split_size(directory, tfds_split)
  num = int(data_config.get(f"num_{split}", 0) or 0)
  num = min(num, available) if num > 0 else available
  image_size, num_frames = int(data_config.image_size), int(
      data_config.num_frames)
  origin = f"{directory}[{tfds_split}]"

  def open_at(start):
    for i, example in enumerate(_read_examples(directory, tfds_split, start,
                                               num - start)):
      yield example_to_episode(example, image_size, num_frames,
                               f"{origin}[{start + i}]")

  params = dict(version=VERSION, directory=os.path.abspath(directory),
                split=tfds_split, image_size=image_size, num_frames=num_frames)
  return cached_or_in_memory(data_config, split, "movi", params, open_at, num,
                             origin)
