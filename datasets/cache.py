"""Write a generated dataset to disk once, read it back with random access.

Storage: tensorflow-datasets array_record datasets (no TensorFlow needed). One
split of a generator is a directory of shards; each shard is a small tfds
dataset of `shard_size` consecutive episodes, written by a
`tfds.core.GeneratorBasedBuilder` into a temporary directory and renamed into
place when complete. A rerun skips complete shards (resumable after an
interruption) and a final COMPLETE.json marker lists the shards.

Layout:
  <data_dir>/<generator>_<hash of params>/params.json
  <data_dir>/<generator>_<hash of params>/<split>_<N>_shard<S>/shard_00000/...
  <data_dir>/<generator>_<hash of params>/<split>_<N>_shard<S>/COMPLETE.json
(N episodes in shards of S; shard_00000 is a tfds dataset directory
episodes/1.0.0/ with dataset_info.json, features.json and one
episodes-train.array_record-00000-of-00001 file.)

The hash covers every generation parameter (include the seed and a generator
version in `params`), so a different config never reads a stale cache.
"""
import contextlib
import glob
import hashlib
import io
import json
import os
import shutil
import socket
from typing import Callable, Dict, Optional

import numpy as np
import tensorflow_datasets as tfds
import tqdm

from datasets import base
from datasets import validation

SPLIT_IDS = base.SPLIT_IDS
MARKER = "COMPLETE.json"
_BUILDER = "episodes"
_VERSION = "1.0.0"
_ENCODING = "bytes"  # Raw bytes; the default would upcast uint8 to int64.


def default_data_dir() -> str:
  """$PARTS_JAX_DATA_DIR, else ~/.cache/parts_jax."""
  return os.environ.get("PARTS_JAX_DATA_DIR") or os.path.join(
      os.path.expanduser("~"), ".cache", "parts_jax")


def cache_dir(generator_name: str, params: Dict[str, object],
              data_dir: Optional[str] = None) -> str:
  """The directory holding all splits of `generator_name` with `params`."""
  text = json.dumps(params, sort_keys=True, default=str)
  digest = hashlib.sha256(f"{generator_name}:{text}".encode()).hexdigest()[:16]
  return os.path.join(data_dir or default_data_dir(),
                      f"{generator_name}_{digest}")


class _ShardBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """One shard: a tfds dataset (split "train") of consecutive episodes."""

  name = _BUILDER
  VERSION = tfds.core.Version(_VERSION)

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls):
    # Only used to look for download checksums (we download nothing). tfds's
    # default needs the `importlib_resources` backport for builders defined
    # inside a package, which is not installed on Python >= 3.9.
    return None

  def __init__(self, *, features, examples, **kwargs):
    self._features = features
    self._examples = examples
    super().__init__(**kwargs)

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self, features=tfds.features.FeaturesDict(self._features),
        disable_shuffling=True)  # Keep episode order: record i = episode i.

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    yield from self._examples


def _features(episode: base.Episode) -> Dict[str, object]:
  """tfds feature spec (plain Tensors, no TF needed) from one episode."""
  video = episode["video"]
  features = {"video": tfds.features.Tensor(shape=video.shape, dtype=np.uint8,
                                            encoding=_ENCODING),
              "actions": tfds.features.Tensor(shape=episode["actions"].shape,
                                              dtype=np.float32)}
  if "segmentations" in episode:
    features["segmentations"] = tfds.features.Tensor(
        shape=episode["segmentations"].shape, dtype=np.uint8,
        encoding=_ENCODING)
  return features


def _record(episode: base.Episode, origin: str) -> base.Episode:
  """The stored form of an episode (uint8 video and masks, float32 actions)."""
  validation.validate_episode(episode, origin)
  record = {"video": np.asarray(episode["video"], np.uint8),
            "actions": np.asarray(episode["actions"], np.float32)}
  if "segmentations" in episode:
    seg = np.asarray(episode["segmentations"])
    if seg.size and (seg.min() < 0 or seg.max() > 255):
      raise base.DataError(f"{origin}: segmentation ids must be in [0, 255] "
                           f"to be cached, got [{seg.min()}, {seg.max()}]")
    record["segmentations"] = seg.astype(np.uint8)
  return record


def build_cached(generator_name: str, params: Dict[str, object],
                 make_episode: Callable[[int, int], base.Episode],
                 num_episodes: int, data_dir: Optional[str] = None, *,
                 split: str = "train", shard_size: int = 256,
                 progress: bool = True) -> str:
  """Generates one split into the cache (if not there yet) and returns its path.

  Args:
    generator_name: short name, e.g. "sprites"; first part of the directory name.
    params: every parameter the episodes depend on (JSON-serialisable; include
      the seed and a generator version). Hashed into the directory name.
    make_episode: make_episode(split_id, index) -> Episode, a pure function;
      split_id = SPLIT_IDS[split] (train 0, eval 1). Episodes must all have
      the same shapes; video uint8 [T,H,W,3], actions [T,A] (A may be 0),
      optional segmentations [T,H,W] with ids in [0, 255].
    num_episodes: episodes in this split (indices 0..num_episodes-1).
    data_dir: cache root (default: default_data_dir()).
    split: "train" or "eval".
    shard_size: episodes per shard (the unit of resumption).
    progress: show a tqdm progress bar while generating.

  Returns:
    The split directory; read it with CachedSource(path).
  """
  base.check_split(split, generator_name)
  if num_episodes <= 0:
    raise base.DataError(f"{generator_name}: num_episodes for split {split!r} "
                         f"is {num_episodes}; set data.num_{split} > 0")
  root = cache_dir(generator_name, params, data_dir)
  path = os.path.join(root, f"{split}_{num_episodes}_shard{shard_size}")
  os.makedirs(path, exist_ok=True)
  params_file = os.path.join(root, "params.json")
  if not os.path.exists(params_file):
    _write_atomic(params_file, json.dumps(
        {"generator": generator_name, "params": params}, indent=1,
        sort_keys=True, default=str))
  _remove_stale_tmp(path)

  split_id = SPLIT_IDS[split]
  starts = range(0, num_episodes, shard_size)
  shards = [dict(dir=f"shard_{k:05d}", start=s,
                 count=min(shard_size, num_episodes - s))
            for k, s in enumerate(starts)]
  todo = [s for s in shards if not os.path.isdir(os.path.join(path, s["dir"]))]
  if todo:
    features = None
    bar = tqdm.tqdm(total=num_episodes, disable=not progress, unit="ep",
                    initial=num_episodes - sum(s["count"] for s in todo),
                    desc=f"{generator_name} {split} -> {path}")
    for shard in todo:
      def examples(shard=shard):
        for i in range(shard["start"], shard["start"] + shard["count"]):
          yield i, _record(make_episode(split_id, i), f"{generator_name}[{i}]")
          bar.update(1)
      if features is None:
        features = _features(_record(make_episode(split_id, 0), generator_name))
      _write_shard(os.path.join(path, shard["dir"]), features, examples())
    bar.close()

  marker = os.path.join(path, MARKER)
  recorded = _recorded_sizes(marker)
  written = {s["dir"] for s in todo}
  for shard in shards:
    if shard["dir"] not in written and shard["dir"] in recorded:
      # Keep the sizes recorded when the shard was written: a file truncated or deleted
      # since then must fail CachedSource's size check, not be re-recorded as it is now.
      shard["sizes"] = recorded[shard["dir"]]
      continue
    files = glob.glob(os.path.join(path, shard["dir"], _BUILDER, _VERSION,
                                   "*.array_record-*"))
    shard["sizes"] = {os.path.basename(f): os.path.getsize(f) for f in files}
  text = json.dumps({"generator": generator_name, "split": split,
                     "num_episodes": num_episodes, "shards": shards}, indent=1)
  if not os.path.exists(marker) or open(marker).read() != text:
    _write_atomic(marker, text)  # (Not rewritten: the cache may be read-only.)
  return path


def _recorded_sizes(marker: str) -> Dict[str, Dict[str, int]]:
  """Shard dir -> file sizes from an existing, readable marker ({} if none or garbled)."""
  try:
    with open(marker) as f:
      return {s["dir"]: s["sizes"] for s in json.load(f)["shards"] if s.get("sizes")}
  except (OSError, ValueError, KeyError, TypeError):
    return {}


def _tmp_suffix() -> str:
  return f".tmp-{socket.gethostname()}-{os.getpid()}"


def _remove_stale_tmp(path: str) -> None:
  """Deletes temporary shards left by dead processes of this host."""
  prefix = f".tmp-{socket.gethostname()}-"
  for tmp in glob.glob(os.path.join(path, f"*{prefix}*")):
    pid = tmp.rsplit(prefix, 1)[1]
    try:
      os.kill(int(pid), 0)  # Still running (another build): leave it.
    except (ValueError, ProcessLookupError):
      shutil.rmtree(tmp, ignore_errors=True)
    except PermissionError:
      pass


def _write_shard(final_dir: str, features, examples) -> None:
  """Writes a tfds shard into a temporary directory, then renames it.

  Several processes may build the same cache at once: each writes its own
  temporary directory and the first rename wins (the contents are identical).
  """
  tmp = final_dir + _tmp_suffix()
  shutil.rmtree(tmp, ignore_errors=True)
  was_shown = _progress_bar_enabled()
  tfds.display_progress_bar(False)
  try:
    with contextlib.redirect_stdout(io.StringIO()):  # tfds prints per dataset.
      builder = _ShardBuilder(features=features, examples=examples,
                              data_dir=tmp, file_format="array_record")
      builder.download_and_prepare(download_dir=os.path.join(tmp, "downloads"))
    shutil.rmtree(os.path.join(tmp, "downloads"), ignore_errors=True)
    try:
      os.rename(tmp, final_dir)
    except OSError:
      if not os.path.isdir(final_dir):
        raise
  finally:
    tfds.display_progress_bar(was_shown)
    shutil.rmtree(tmp, ignore_errors=True)  # Interrupted, or lost the race.


def _progress_bar_enabled() -> bool:
  try:
    return bool(tfds.core.utils.tqdm_utils._active)  # pylint: disable=protected-access
  except AttributeError:
    return True


def _write_atomic(filename: str, text: str) -> None:
  tmp = filename + _tmp_suffix()
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, filename)


class CachedSource(base.EpisodeSource):
  """Random access to a split written by build_cached."""

  has_segmentations = True

  def __init__(self, path: str):
    self.origin = path
    marker = os.path.join(path, MARKER)
    fix = f"delete {os.path.dirname(path.rstrip(os.sep))} to regenerate it"
    if not os.path.exists(marker):
      raise base.DataError(f"{path}: no {MARKER}; the cache is missing or "
                           f"incomplete. Rerun the build (it resumes) or {fix}.")
    try:
      with open(marker) as f:
        info = json.load(f)
    except (OSError, ValueError) as e:
      raise base.DataError(f"{marker}: unreadable ({e}); {fix}.") from e
    self._num = int(info["num_episodes"])
    self._starts = np.array([s["start"] for s in info["shards"]])
    self._shards = []
    self._files = []
    for shard in info["shards"]:
      shard_dir = os.path.join(path, shard["dir"], _BUILDER, _VERSION)
      for name, size in shard["sizes"].items():
        filename = os.path.join(shard_dir, name)
        actual = os.path.getsize(filename) if os.path.exists(filename) else None
        if actual != size:
          raise base.DataError(
              f"{filename}: expected {size} bytes, found "
              f"{'no file' if actual is None else actual}; the cache is "
              f"truncated or corrupt, {fix}.")
      self._files.append(", ".join(os.path.join(shard_dir, n)
                                   for n in sorted(shard["sizes"])))
      try:
        source = tfds.builder_from_directory(shard_dir).as_data_source()["train"]
      except Exception as e:  # pylint: disable=broad-except
        raise base.DataError(f"{shard_dir}: cannot open shard ({e}); "
                             f"{fix}.") from e
      if len(source) != shard["count"]:
        raise base.DataError(f"{shard_dir}: {len(source)} episodes, expected "
                             f"{shard['count']}; {fix}.")
      self._shards.append(source)
    self._fix = fix
    first = self[0]
    self.action_dim = first["actions"].shape[-1]
    self.has_segmentations = "segmentations" in first

  def __len__(self) -> int:
    return self._num

  def __getitem__(self, index: int) -> base.Episode:
    index = base.check_index(self, index)
    k = int(np.searchsorted(self._starts, index, side="right")) - 1
    try:
      record = self._shards[k][int(index - self._starts[k])]
    except Exception as e:  # pylint: disable=broad-except
      raise base.DataError(f"{self._files[k]}: cannot read episode {index} "
                           f"({e}); the cache is corrupt, {self._fix}.") from e
    episode = {"video": record["video"], "actions": record["actions"]}
    if "segmentations" in record:
      episode["segmentations"] = record["segmentations"].astype(np.int32)
    return episode
