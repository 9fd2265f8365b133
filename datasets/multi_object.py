"""multi_object: DeepMind multi_object_datasets TFRecords (local files only).

Supported datasets (data.variant, else data.dataset, else data.name), read
from data.data_dir or, as `gsutil cp -r gs://multi-object-datasets .` lays
them out, from data.data_dir/<folder>/ (override with data.files, a glob
relative to data_dir):

  variant                              T   H x W    K   C  file (folder)
  cater_with_masks                     33  64x64    11  3  cater_with_masks_train.tfrecords-*-of-* (cater_with_masks), ZLIB
  clevr_with_masks                     1   240x320  11  3  clevr_with_masks_train.tfrecords (clevr_with_masks)
  objects_room                         1   64x64    7   3  objects_room_train.tfrecords (objects_room)
  objects_room_empty_room              1   64x64    4   3  objects_room_test_empty_room.tfrecords (objects_room)
  objects_room_six_objects             1   64x64    10  3  objects_room_test_six_objects.tfrecords (objects_room)
  objects_room_identical_color         1   64x64    10  3  objects_room_test_identical_color.tfrecords (objects_room)
  multi_dsprites_binarized             1   64x64    4   1  multi_dsprites_binarized.tfrecords (multi_dsprites)
  multi_dsprites_colored_on_grayscale  1   64x64    6   3  multi_dsprites_colored_on_grayscale.tfrecords (multi_dsprites)
  multi_dsprites_colored_on_colored    1   64x64    5   3  multi_dsprites_colored_on_colored.tfrecords (multi_dsprites)
  tetrominoes                          1   35x35    4   3  tetrominoes_train.tfrecords (tetrominoes)

Files are GZIP-compressed TFRecords (CATER: ZLIB) of tf.train.Example, read
by `datasets.tfrecord` (no TensorFlow; both CRCs checked: a truncated or
corrupt record is a DataError naming the file and record). Only two features
are decoded (x, y, color, visibility, ... are skipped), both raw uint8 bytes
in a bytes_list: one value per byte for the image datasets (they were written
as FixedLenFeature(shape, tf.string)), one value for CATER:
  image  [T,] H, W, C uint8 (C = 1 for binarized: repeated to RGB)
  mask   [T,] K, H, W, 1 uint8 (multi_dsprites: H, W, K, 1), one slot per
         entity, 255 where the entity is visible.
The mask becomes per-pixel ids by argmax over slots; the first
`num_background` slots (1, or 4 for objects_room: sky, floor, two walls) are
background (id 0) and slot k >= num_background gets id k - num_background + 1.
Image datasets give episodes with T = 1 (set data.num_frames = 1); CATER gives
its first data.num_frames frames. Frames are resized to data.image_size (video
area-averaged, ids nearest neighbour); actions have width A = 0.

Splits: the files hold one split; the first data.num_eval records are "eval",
the following data.num_train records are "train" (disjoint, stable when
num_train changes).

With data.cache (default True) the converted episodes are written once to the
array_record cache (data.cache_dir, default `cache.default_data_dir()`);
otherwise they are held in memory.
"""
import dataclasses
import glob
import os
from typing import Iterator, List, Tuple

import numpy as np

from datasets import base
from datasets import resize
from datasets import sources
from datasets import tfrecord

VERSION = 1  # Of the conversion below; part of the cache key.


@dataclasses.dataclass(frozen=True)
class Spec:
  frames: int  # T, 1 for image datasets.
  height: int
  width: int
  slots: int  # K, entities (background included) per record.
  files: str  # Default glob, relative to data_dir or data_dir/folder.
  folder: str = ""  # The dataset's folder in gs://multi-object-datasets.
  compression: str = "GZIP"
  num_background: int = 1
  mask_hwk: bool = False  # multi_dsprites stores the mask as [H, W, K, 1].
  channels: int = 3  # 1 for multi_dsprites_binarized.


def _objects_room(slots: int, files: str) -> Spec:
  return Spec(1, 64, 64, slots, files, "objects_room", num_background=4)


def _dsprites(slots: int, variant: str, channels: int = 3) -> Spec:
  return Spec(1, 64, 64, slots, f"multi_dsprites_{variant}.tfrecords",
              "multi_dsprites", mask_hwk=True, channels=channels)


SPECS = {
    "cater_with_masks": Spec(
        33, 64, 64, 11, "cater_with_masks_train.tfrecords*",
        "cater_with_masks", compression="ZLIB"),
    "clevr_with_masks": Spec(1, 240, 320, 11,
                             "clevr_with_masks_train.tfrecords",
                             "clevr_with_masks"),
    "objects_room": _objects_room(7, "objects_room_train.tfrecords"),
    "objects_room_empty_room": _objects_room(
        4, "objects_room_test_empty_room.tfrecords"),
    "objects_room_six_objects": _objects_room(
        10, "objects_room_test_six_objects.tfrecords"),
    "objects_room_identical_color": _objects_room(
        10, "objects_room_test_identical_color.tfrecords"),
    "multi_dsprites_binarized": _dsprites(4, "binarized", channels=1),
    "multi_dsprites_colored_on_grayscale": _dsprites(6, "colored_on_grayscale"),
    "multi_dsprites_colored_on_colored": _dsprites(5, "colored_on_colored"),
    "tetrominoes": Spec(1, 35, 35, 4, "tetrominoes_train.tfrecords",
                        "tetrominoes"),
}


def masks_to_ids(mask: np.ndarray, num_background: int = 1) -> np.ndarray:
  """[T, K, H, W, 1] (or [T, K, H, W]) slot masks -> [T, H, W] int32 ids.

  id = argmax over slots (first slot wins ties), then slots < num_background
  map to 0 and slot k >= num_background to k - num_background + 1.
  """
  mask = np.asarray(mask)
  if mask.ndim == 5:
    mask = mask[..., 0]
  if mask.ndim != 4:
    raise base.DataError(f"mask has shape {mask.shape}, expected "
                         f"[T, K, H, W, 1]")
  slot = np.argmax(mask, axis=1)
  return np.maximum(slot - num_background + 1, 0).astype(np.int32)


def arrays_to_episode(image: np.ndarray, mask: np.ndarray, spec: Spec,
                      image_size: int, num_frames: int,
                      origin: str = "multi_object") -> base.Episode:
  """Flat uint8 `image` / `mask` bytes of one record -> episode.

  Args:
    image: uint8 array with spec.frames * H * W * C values (any shape).
    mask: uint8 array with spec.frames * K * H * W values, laid out [T, K, H,
      W, 1] (or [T, H, W, K, 1] when spec.mask_hwk).
    spec: the dataset's Spec.
    image_size, num_frames: output size and length (first frames).
    origin: named in error messages.

  Returns:
    {"video": [num_frames, S, S, 3] uint8, "actions": [num_frames, 0] float32,
     "segmentations": [num_frames, S, S] int32}, S = image_size.
  """
  t, h, w, k, c = spec.frames, spec.height, spec.width, spec.slots, spec.channels
  image, mask = np.asarray(image, np.uint8), np.asarray(mask, np.uint8)
  if image.size != t * h * w * c or mask.size != t * k * h * w:
    raise base.DataError(
        f"{origin}: image has {image.size} and mask {mask.size} values, "
        f"expected {t * h * w * c} and {t * k * h * w} for [T={t}, H={h}, "
        f"W={w}, C={c}, K={k}]; is data.variant right?")
  video = image.reshape(t, h, w, c)
  if c == 1:
    video = np.repeat(video, 3, axis=-1)
  if spec.mask_hwk:
    mask = mask.reshape(t, h, w, k).transpose(0, 3, 1, 2)
  else:
    mask = mask.reshape(t, k, h, w)
  episode = {"video": video, "actions": np.zeros((t, 0), np.float32),
             "segmentations": masks_to_ids(mask, spec.num_background)}
  return resize.fit_episode(episode, image_size, num_frames, origin)


def find_files(data_config, spec: Spec) -> Tuple[str, List[str]]:
  """(the pattern, the sorted files) of a dataset; DataError if none.

  Looks in data_dir, then in data_dir/<spec.folder> (the bucket's layout);
  data.files (a glob relative to data_dir) overrides both.
  """
  root = str(data_config.data_dir or "")
  custom = data_config.get("files", None)
  patterns = ([os.path.join(root, custom)] if custom else
              [os.path.join(root, spec.files),
               os.path.join(root, spec.folder, spec.files)])
  for pattern in patterns:
    files = sorted(glob.glob(pattern))
    if files:
      return pattern, files
  raise base.DataError(
      f"{' or '.join(patterns)}: no TFRecord files. Copy the dataset there "
      f"yourself (e.g. `gsutil -m cp -r gs://multi-object-datasets/"
      f"{spec.folder} <data_dir>/`), or set data.data_dir / data.files.")


def read_arrays(files: List[str], spec: Spec, start: int
                ) -> Iterator[Tuple[str, int, np.ndarray, np.ndarray]]:
  """(path, record index, flat image bytes, flat mask bytes) of the records
  from `start` (counted over all files) on, as uint8 arrays."""
  for path, index, data in tfrecord.read_files(files, spec.compression, start):
    features = tfrecord.example_features(path, index, data, ("image", "mask"))
    try:
      yield (path, index, features["image"].concatenated_bytes(),
             features["mask"].concatenated_bytes())
    except tfrecord.ProtoError as e:
      raise base.DataError(f"{path}: record {index}: unexpected feature type "
                           f"({e})") from e


def build_source(data_config, split: str) -> base.EpisodeSource:
  """Episodes of `split` ("train" or "eval"); see the module docstring."""
  base.check_split(split, "multi_object")
  name = (data_config.get("variant", None) or data_config.get("dataset", None)
          or data_config.name)
  if name not in SPECS:
    raise base.DataError(f"multi_object: unknown dataset {name!r}; valid: "
                         f"{sorted(SPECS)} (set data.variant)")
  spec = SPECS[name]
  image_size, num_frames = int(data_config.image_size), int(
      data_config.num_frames)
  if num_frames > spec.frames:
    raise base.DataError(
        f"multi_object {name}: records have {spec.frames} frame(s); set "
        f"data.num_frames <= {spec.frames}")
  pattern, files = find_files(data_config, spec)
  num_eval, num_train = int(data_config.num_eval), int(data_config.num_train)
  start, num = (0, num_eval) if split == "eval" else (num_eval, num_train)
  if num <= 0:
    raise base.DataError(f"multi_object {name}: set data.num_{split} > 0 (the "
                         f"number of records to use)")

  def open_at(first):
    records = read_arrays(files, spec, start + first)
    for i, (path, index, image, mask) in enumerate(records):
      if first + i >= num:
        return
      yield arrays_to_episode(image, mask, spec, image_size, num_frames,
                              f"{path}: record {index}")

  params = dict(version=VERSION, dataset=name, start=start,
                files=[os.path.abspath(f) for f in files],
                image_size=image_size, num_frames=num_frames)
  return sources.cached_or_in_memory(data_config, split,
                                     f"multi_object_{name}", params, open_at,
                                     num, pattern)
