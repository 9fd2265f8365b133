"""movi: Kubric MOVi-A..E videos from their published tfds build (local files).

Expected on disk, as published in gs://kubric-public/tfds/:
  <data.data_dir>/<dataset>/<resolution>/<version>/dataset_info.json
  <data.data_dir>/<dataset>/<resolution>/<version>/<dataset>-<split>.tfrecord-XXXXX-of-YYYYY
with dataset = data.variant (or data.dataset; default "movi_a" when data.name
is "movi", else data.name) in movi_a..movi_e, resolution =
data.get("movi_resolution", "128x128"), version = data.get("movi_version",
"1.0.0"). Copy one resolution (the destination folder must exist, or gsutil
names the copy after it, one level too few):
  mkdir -p <data_dir>/movi_a/128x128
  gsutil -m cp -r gs://kubric-public/tfds/movi_a/128x128/1.0.0 <data_dir>/movi_a/128x128/
Split "train" reads tfds split "train", "eval" reads "validation"; the shards
of a split and their record counts come from dataset_info.json
("splits"[i]["shardLengths"], file names from its "filepathTemplate" or the
tfds default "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}").

Each record is a serialised tf.train.Example (tfds features flattened with
"/"); only two features are decoded, the rest (depth, flows, normals, object
coordinates, instances/..., events/...) is skipped unread:
  video          bytes_list of T PNG frames, [H, W, 3] uint8 each
  segmentations  bytes_list of T PNG frames, [H, W, 1] uint8 each (0 =
                 background, k = instance k; MOVi-A/B up to 10, C..E up to 23)
and only the first data.num_frames frames of each. The records are read by
`datasets.tfrecord` (no TensorFlow; both CRCs checked: a truncated or corrupt
record is a DataError naming the shard and record), PNGs decoded by Pillow.
An example becomes an episode (see `datasets.base`) resized to
data.image_size (video area-averaged, masks nearest neighbour), with actions
of width A = 0 and segmentations [T, S, S] int32 (ids kept as in MOVi).
data.num_train / data.num_eval (when > 0) cap the number of episodes (the
first ones of the split; 0 = the whole split).

With data.cache (default True) the converted episodes are written once to the
array_record cache (data.cache_dir, default `cache.default_data_dir()`);
otherwise they are held in memory.
"""
import io
import json
import os
from typing import Dict, Iterator, List, Tuple

import numpy as np

from datasets import base
from datasets import resize
from datasets import sources
from datasets import tfrecord

VERSION = 1  # Of the conversion below; part of the cache key.
_TFDS_SPLITS = {"train": "train", "eval": "validation"}
_DEFAULT_TEMPLATE = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
KEYS = ("video", "segmentations")  # The only features decoded.


def example_to_episode(example: Dict[str, np.ndarray], image_size: int,
                       num_frames: int, origin: str = "movi") -> base.Episode:
  """A decoded MOVi example -> episode.

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
  return resize.fit_episode(episode, image_size, num_frames, origin)


def decode_png_frames(frames: List[memoryview], channels: int,
                      origin: str) -> np.ndarray:
  """PNG-encoded frames -> [T, H, W, channels] uint8 (DataError if not)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  out = []
  for t, data in enumerate(frames):
    try:
      with Image.open(io.BytesIO(data)) as image:
        if image.format != "PNG":
          raise ValueError(f"a {image.format} image")
        array = np.asarray(image)
    except (OSError, ValueError, SyntaxError) as e:
      raise base.DataError(f"{origin}: frame {t} is not a readable PNG "
                           f"({e})") from e
    if array.ndim == 2:
      array = array[..., None]
    if array.dtype != np.uint8 or array.shape[-1] != channels:
      raise base.DataError(f"{origin}: frame {t} is {array.dtype} "
                           f"{array.shape}, expected uint8 [H, W, {channels}]")
    out.append(array)
  if len({a.shape for a in out}) > 1:
    raise base.DataError(f"{origin}: frames differ in size "
                         f"{sorted({a.shape for a in out})}")
  return np.stack(out)


def record_to_example(path: str, index: int, data,
                      num_frames: int) -> Dict[str, np.ndarray]:
  """One MOVi record -> {"video": [T', H, W, 3], "segmentations": [T', H, W,
  1]} uint8 with T' = min(T, num_frames) (only those frames decoded)."""
  features = tfrecord.example_features(path, index, data, KEYS)
  origin = f"{path}: record {index}"
  try:
    video = features["video"].bytes_list()
    seg = features["segmentations"].bytes_list()
  except tfrecord.ProtoError as e:
    raise base.DataError(f"{origin}: unexpected feature type ({e})") from e
  if len(video) != len(seg):
    raise base.DataError(f"{origin}: {len(video)} video frames but "
                         f"{len(seg)} segmentation frames")
  return {"video": decode_png_frames(video[:num_frames], 3,
                                     f"{origin} video"),
          "segmentations": decode_png_frames(seg[:num_frames], 1,
                                             f"{origin} segmentations")}


def _dataset_dir(data_config) -> str:
  name = (data_config.get("variant", None) or data_config.get("dataset", None)
          or ("movi_a" if data_config.name == "movi" else data_config.name))
  return os.path.join(str(data_config.data_dir or ""), name,
                      data_config.get("movi_resolution", "128x128"),
                      data_config.get("movi_version", "1.0.0"))


def split_shards(directory: str, split: str) -> Tuple[List[str], List[int]]:
  """(shard paths, records per shard) of a tfds `split`, from the build's
  dataset_info.json; DataError if it is unreadable or a shard is missing."""
  path = os.path.join(directory, "dataset_info.json")
  try:
    with open(path) as f:
      info = json.load(f)
    splits = {s["name"]: s for s in info["splits"]}
    lengths = [int(n) for n in splits[split]["shardLengths"]]
    template = splits[split].get("filepathTemplate") or _DEFAULT_TEMPLATE
    name, file_format = info["name"], info.get("fileFormat") or "tfrecord"
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise base.DataError(f"{path}: cannot read the shards of split {split!r} "
                         f"({type(e).__name__}: {e}); is the tfds build "
                         f"complete?") from e
  if file_format != "tfrecord":
    raise base.DataError(f"{path}: the build's files are {file_format!r}; "
                         f"only the published TFRecord format is read")
  files = []
  for i in range(len(lengths)):
    shard = (template.replace("{DATASET}", name).replace("{SPLIT}", split)
             .replace("{FILEFORMAT}", file_format)
             .replace("{SHARD_X_OF_Y}", f"{i:05d}-of-{len(lengths):05d}")
             .replace("{SHARD_INDEX}", f"{i:05d}")
             .replace("{NUM_SHARDS}", f"{len(lengths):05d}"))
    files.append(os.path.join(directory, shard))
    if not os.path.isfile(files[-1]):
      raise base.DataError(f"{files[-1]}: missing ({len(lengths)} shards "
                           f"listed in {path}); copy the whole build")
  return files, lengths


def read_examples(files: List[str], lengths: List[int], start: int,
                  num_frames: int) -> Iterator[Dict[str, np.ndarray]]:
  """Examples start, start + 1, ... of the shards (see record_to_example);
  the shard holding `start` is found from the shard lengths."""
  first = 0
  while first < len(files) and start >= lengths[first]:
    start -= lengths[first]
    first += 1
  for path, index, data in tfrecord.read_files(files[first:], "", start):
    yield record_to_example(path, index, data, num_frames)


def missing_build_message(directory: str) -> str:
  dataset, resolution = directory.rstrip(os.sep).split(os.sep)[-3:-1]
  parent = os.path.dirname(directory.rstrip(os.sep))
  return (f"{directory}: no MOVi tfds build here (dataset_info.json "
          f"missing). Copy it there yourself: `mkdir -p {parent} && gsutil -m "
          f"cp -r gs://kubric-public/tfds/{dataset}/{resolution}/"
          f"{os.path.basename(directory.rstrip(os.sep))} {parent}/` (the "
          f"folder must exist first), or set data.data_dir / data.variant / "
          f"data.movi_resolution / data.movi_version.")


def build_source(data_config, split: str) -> base.EpisodeSource:
  """MOVi episodes of `split` ("train" or "eval"); see the module docstring."""
  base.check_split(split, "movi")
  directory = _dataset_dir(data_config)
  if not os.path.isfile(os.path.join(directory, "dataset_info.json")):
    raise base.DataError(missing_build_message(directory))
  tfds_split = _TFDS_SPLITS[split]
  files, lengths = split_shards(directory, tfds_split)
  available = sum(lengths)
  num = int(data_config.get(f"num_{split}", 0) or 0)
  num = min(num, available) if num > 0 else available
  image_size, num_frames = int(data_config.image_size), int(
      data_config.num_frames)
  origin = f"{directory}[{tfds_split}]"

  def open_at(start):
    examples = read_examples(files, lengths, start, num_frames)
    for i, example in enumerate(examples):
      if start + i >= num:
        return
      yield example_to_episode(example, image_size, num_frames,
                               f"{origin}[{start + i}]")

  params = dict(version=VERSION, directory=os.path.abspath(directory),
                split=tfds_split, image_size=image_size, num_frames=num_frames)
  return sources.cached_or_in_memory(data_config, split, "movi", params,
                                     open_at, num, origin)
