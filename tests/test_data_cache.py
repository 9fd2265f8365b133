"""Tests for the array_record cache (datasets/cache.py)."""
import glob
import json
import os
import shutil
import socket
import subprocess

import numpy as np
import pytest

from datasets import base
from datasets import cache
from datasets import sprites

PARAMS = dict(num_frames=4, image_size=16)
KEY = dict(PARAMS, seed=0, version=sprites.VERSION)


class Counter:
  """make_episode(split_id, index) for sprites that records its calls."""

  def __init__(self, fail_at=None):
    self.calls = []
    self.fail_at = fail_at

  def __call__(self, split_id, index):
    if index == self.fail_at:
      raise KeyboardInterrupt("simulated interruption")
    self.calls.append((split_id, index))
    return sprites.make_episode(0, split_id, index, **PARAMS)


def _build(data_dir, make=None, num=10, split="train", key=KEY):
  return cache.build_cached("sprites", key, make or Counter(), num,
                            str(data_dir), split=split, shard_size=4,
                            progress=False)


def _shard_bytes(path):
  files = sorted(glob.glob(os.path.join(path, "shard_*", "*", "*", "*.array_record-*")))
  return {os.path.relpath(f, path): open(f, "rb").read() for f in files}


def test_round_trip_and_layout(tmp_path):
  path = _build(tmp_path, num=10, split="eval")
  assert os.path.basename(path) == "eval_10_shard4"
  assert os.path.basename(os.path.dirname(path)).startswith("sprites_")
  source = cache.CachedSource(path)
  assert len(source) == 10 and source.action_dim == 2
  assert source.has_segmentations
  for i in (0, 3, 4, 9):  # Across shard boundaries (shards of 4).
    ep = source[i]
    ref = sprites.make_episode(0, 1, i, **PARAMS)
    for k in ref:
      assert ep[k].dtype == ref[k].dtype
      np.testing.assert_array_equal(ep[k], ref[k])
  with pytest.raises(IndexError):
    source[10]
  marker = json.load(open(os.path.join(path, cache.MARKER)))
  assert [s["count"] for s in marker["shards"]] == [4, 4, 2]
  params = json.load(open(os.path.join(os.path.dirname(path), "params.json")))
  assert params["params"]["seed"] == 0


def test_directory_encodes_params(tmp_path):
  a = cache.cache_dir("sprites", KEY, str(tmp_path))
  assert a == cache.cache_dir("sprites", dict(reversed(list(KEY.items()))),
                              str(tmp_path))
  assert a != cache.cache_dir("sprites", dict(KEY, seed=1), str(tmp_path))
  assert a != cache.cache_dir("sprites", dict(KEY, image_size=32), str(tmp_path))
  assert a != cache.cache_dir("room3d", KEY, str(tmp_path))


def test_same_seed_same_bytes(tmp_path):
  a = _build(tmp_path / "a")
  b = _build(tmp_path / "b")
  bytes_a, bytes_b = _shard_bytes(a), _shard_bytes(b)
  assert len(bytes_a) == 3 and bytes_a == bytes_b


def test_rerun_skips_complete_and_regenerates_missing_shard(tmp_path):
  first = Counter()
  path = _build(tmp_path, first)
  before = _shard_bytes(path)
  again = Counter()
  _build(tmp_path, again)
  assert again.calls == []  # Complete: nothing regenerated.
  shutil.rmtree(os.path.join(path, "shard_00001"))
  with pytest.raises(base.DataError, match="shard_00001"):
    cache.CachedSource(path)
  resumed = Counter()
  _build(tmp_path, resumed)
  # Only shard 1 (episodes 4..7), plus episode 0 to get the feature spec.
  assert sorted(set(i for _, i in resumed.calls)) == [0, 4, 5, 6, 7]
  assert _shard_bytes(path) == before
  source = cache.CachedSource(path)
  np.testing.assert_array_equal(
      source[5]["video"], sprites.make_episode(0, 0, 5, **PARAMS)["video"])


def test_interrupted_generation_resumes(tmp_path):
  with pytest.raises(KeyboardInterrupt):
    _build(tmp_path, Counter(fail_at=6))
  path = os.path.join(cache.cache_dir("sprites", KEY, str(tmp_path)), "train_10_shard4")
  assert os.listdir(path) == ["shard_00000"]  # No partial shard, no marker.
  with pytest.raises(base.DataError, match="incomplete"):
    cache.CachedSource(path)
  resumed = Counter()
  _build(tmp_path, resumed)
  assert min(i for _, i in resumed.calls if i > 0) == 4  # Shard 0 kept.
  assert not [d for d in os.listdir(path) if ".tmp-" in d]
  assert _shard_bytes(path) == _shard_bytes(_build(tmp_path / "fresh"))


def test_stale_temporary_shard_of_dead_process_is_removed(tmp_path):
  path = os.path.join(cache.cache_dir("sprites", KEY, str(tmp_path)), "train_10_shard4")
  dead = subprocess.Popen(["true"])
  dead.wait()
  stale = os.path.join(path, f"shard_00001.tmp-{socket.gethostname()}-{dead.pid}")
  alive = os.path.join(path, f"shard_00002.tmp-{socket.gethostname()}-{os.getppid()}")
  for d in (stale, alive):
    os.makedirs(os.path.join(d, "junk"))
  cache.build_cached("sprites", KEY, Counter(), 10, str(tmp_path),
                     shard_size=4, progress=False)
  assert not os.path.exists(stale)
  assert os.path.exists(alive)  # Could be another build in progress.


def test_corrupt_shard_names_file(tmp_path):
  path = _build(tmp_path)
  (name,) = glob.glob(os.path.join(path, "shard_00002", "*", "*", "*.array_record-*"))
  data = bytearray(open(name, "rb").read())
  # Flip bits inside the records (the file is mostly zero padding).
  nonzero = np.flatnonzero(np.frombuffer(bytes(data), np.uint8))
  data[nonzero[len(nonzero) // 2]] ^= 0xFF
  open(name, "wb").write(bytes(data))
  source = cache.CachedSource(path)  # Same size: only reading can tell.
  source[0]
  with pytest.raises(base.DataError) as err:
    for i in (8, 9):
      source[i]
  assert name in str(err.value) and "delete" in str(err.value)


def test_truncated_shard_names_file(tmp_path):
  path = _build(tmp_path)
  (name,) = glob.glob(os.path.join(path, "shard_00001", "*", "*", "*.array_record-*"))
  data = open(name, "rb").read()
  open(name, "wb").write(data[:len(data) // 2])
  with pytest.raises(base.DataError) as err:
    cache.CachedSource(path)
  assert name in str(err.value) and "delete" in str(err.value)


def test_generic_episodes_without_actions_or_masks(tmp_path):
  def make(split_id, index):
    video = np.full((3, 8, 8, 3), 10 * index + split_id, np.uint8)
    return {"video": video, "actions": np.zeros((3, 0), np.float32)}
  path = cache.build_cached("toy", {"v": 1}, make, 5, str(tmp_path),
                            split="train", shard_size=2, progress=False)
  source = cache.CachedSource(path)
  assert source.action_dim == 0 and not source.has_segmentations
  assert source[3]["actions"].shape == (3, 0)
  assert np.all(source[3]["video"] == 30) and "segmentations" not in source[3]
  with pytest.raises(base.DataError, match="num_episodes"):
    cache.build_cached("toy", {"v": 1}, make, 0, str(tmp_path), progress=False)


def test_default_data_dir(monkeypatch):
  monkeypatch.setenv("PARTS_JAX_DATA_DIR", "/some/where")
  assert cache.default_data_dir() == "/some/where"
  monkeypatch.delenv("PARTS_JAX_DATA_DIR")
  assert cache.default_data_dir() == os.path.expanduser("~/.cache/parts_jax")
