"""multi_object: DeepMind multi_object_datasets TFRecords (never downloaded here).

Supported datasets (data.variant, else data.dataset, else data.name), with the
files looked for in data.data_dir (override with data.files, a glob relative
to data_dir):

  variant                              T   H x W    K   default files
  cater_with_masks                     33  64x64    11  cater_with_masks_train.tfrecords*
  clevr_with_masks                     1   240x320  11  clevr_with_masks_train.tfrecords
  objects_room                         1   64x64    7   objects_room_train.tfrecords
  multi_dsprites_colored_on_colored    1   64x64    5   <variant>.tfrecords
  multi_dsprites_colored_on_grayscale  1   64x64    6   <variant>.tfrecords
  tetrominoes                          1   35x35    4   tetrominoes_train.tfrecords

Each record has `image` ([T,] H, W, 3 uint8) and `mask` ([T,] K, H, W, 1 uint8,
one slot per entity, 255 where the entity is visible; multi_dsprites stores
H, W, K, 1). The mask becomes per-pixel ids by argmax over slots; the first
`num_background` slots (1, or 4 for objects_room: sky, floor, two walls) are
background (id 0) and slot k >= num_background gets id k - num_background + 1.
Image datasets give episodes with T = 1 (set data.num_frames = 1); CATER gives
its first data.num_frames frames. Frames are resized to data.image_size (video
area-averaged, ids nearest neighbour); actions have width A = 0.

Splits: the files hold one split; the first data.num_eval records are "eval",
the following data.num_train records are "train" (disjoint, stable when
num_train changes).

Reading TFRecords needs TensorFlow, an optional extra (`pip install -e .[tf]`),
imported lazily. With data.cache (default True) the converted episodes are
written once to the array_record cache (data.cache_dir, default
`cache.default_data_dir()`); afterwards TensorFlow is no longer needed.
"""
import dataclasses
import glob
import os
from typing import Iterator, Tuple

import numpy as np

from datasets import base
from datasets import movi
from datasets import npz_episodes

VERSION = 1  # Of the conversion below; part of the cache key.


@dataclasses.dataclass(frozen=True)
class Spec:
  frames: int  # T, 1 for image datasets.
  height: int
  width: int
  slots: int  # K, entities (background included) per record.
  files: str  # Default glob, relative to data_dir.
  compression: str = "GZIP"
  num_background: int = 1
  mask_hwk: bool = False  # multi_dsprites stores the mask as [H, W, K, 1].


SPECS = {
    "cater_with_masks": Spec(33, 64, 64, 11, "cater_with_masks_train.tfrecords*",
                             compression="ZLIB"),
    "clevr_with_masks": Spec(1, 240, 320, 11, "clevr_with_masks_train.tfrecords"),
    "objects_room": Spec(1, 64, 64, 7, "objects_room_train.tfrecords",
                         num_background=4),
    "multi_dsprites_colored_on_colored": Spec(
        1, 64, 64, 5, "multi_dsprites_colored_on_colored.tfrecords",
        mask_hwk=True),
    "multi_dsprites_colored_on_grayscale": Spec(
        1, 64, 64, 6, "multi_dsprites_colored_on_grayscale.tfrecords",
        mask_hwk=True),
    "tetrominoes": Spec(1, 35, 35, 4, "tetrominoes_train.tfrecords"),
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
    image: uint8 array with spec.frames * H * W * 3 values (any shape).
    mask: uint8 array with spec.frames * K * H * W values, laid out [T, K, H,
      W, 1] (or [T, H, W, K, 1] when spec.mask_hwk).
    spec: the dataset's Spec.
    image_size, num_frames: output size and length (first frames).
    origin: named in error messages.
  """
  t, h, w, k = spec.frames, spec.height, spec.width, spec.slots
  image, mask = np.asarray(image, np.uint8), np.asarray(mask, np.uint8)
  if image.size != t * h * w * 3 or mask.size != t * k * h * w:
    raise base.DataError(
        f"{origin}: image has {image.size} and mask {mask.size} values, "
        f"expected {t * h * w * 3} and {t * k * h * w} for [T={t}, H={h}, "
        f"W={w}, K={k}]; is data.variant right?")
  video = image.reshape(t, h, w, 3)
  if spec.mask_hwk:
    mask = mask.reshape(t, h, w, k).transpose(0, 3, 1, 2)
  else:
    mask = mask.reshape(t, k, h, w)
  episode = {"video": video, "actions": np.zeros((t, 0), np.float32),
             "segmentations": masks_to_ids(mask, spec.num_background)}
  return npz_episodes.fit_episode(episode, image_size, num_frames, origin)


def _files(data_config, spec: Spec) -> Tuple[str, list]:
  pattern = os.path.join(str(data_config.data_dir or ""),
                         data_config.get("files", None) or spec.files)
  files = sorted(glob.glob(pattern))
  if not files:
    raise base.DataError(
        f"{pattern}: no TFRecord files. Copy the dataset there yourself (from "
        f"gs://multi-object-datasets/), or set data.data_dir / data.files.")
  return pattern, files


def _read_records(files, spec: Spec, start: int, count: int
                  ) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
  """(image bytes, mask bytes) of records start..start+count-1 (needs TF)."""
  tf = movi.import_tensorflow(files[0])
  dataset = tf.data.TFRecordDataset(files, compression_type=spec.compression)
  for raw in dataset.skip(start).take(count).as_numpy_iterator():
    example = tf.train.Example.FromString(raw)
    arrays = []
    for key in ("image", "mask"):
      # One bytes value (CATER) or one per element (the image datasets).
      values = example.features.feature[key].bytes_list.value
      arrays.append(np.frombuffer(b"".join(values), np.uint8))
    yield tuple(arrays)


def build_source(data_config, split: str) -> base.EpisodeSource:
  """Episodes of `split` ("train" or "eval"); see the module docstring."""
  if split not in ("train", "eval"):
    raise base.DataError(f"multi_object: unknown split {split!r}; valid: "
                         f"['eval', 'train']")
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
  pattern, files = _files(data_config, spec)
  num_eval, num_train = int(data_config.num_eval), int(data_config.num_train)
  start, num = (0, num_eval) if split == "eval" else (num_eval, num_train)
  if num <= 0:
    raise base.DataError(f"multi_object {name}: set data.num_{split} > 0 (the "
                         f"number of records to use)")

  def open_at(first):
    records = _read_records(files, spec, start + first, num - first)
    for i, (image, mask) in enumerate(records):
      yield arrays_to_episode(image, mask, spec, image_size, num_frames,
                              f"{pattern}[record {start + first + i}]")

  params = dict(version=VERSION, dataset=name, start=start,
                files=[os.path.abspath(f) for f in files],
                image_size=image_size, num_frames=num_frames)
  return movi.cached_or_in_memory(data_config, split, f"multi_object_{name}",
                                  params, open_at, num, pattern)
