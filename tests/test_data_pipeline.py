"""Tests for batching, validation and the registry (datasets/pipeline.py, ...)."""
import ml_collections
import numpy as np
import pytest

from datasets import base
from datasets import cache
from datasets import pipeline
from datasets import registry
from datasets import sprites


class ToySource(base.EpisodeSource):
  """Episode i: every pixel = i (so batches reveal their indices)."""

  action_dim = 2
  has_segmentations = True

  def __init__(self, num=10, t=5, size=8, broken=None):
    self.num, self.t, self.size = num, t, size
    self.broken = broken or {}  # index -> function(episode) -> episode
    self.origin = "toy.npz"

  def __len__(self):
    return self.num

  def __getitem__(self, i):
    t, s = self.t, self.size
    ep = {"video": np.full((t, s, s, 3), i, np.uint8),
          "actions": np.full((t, 2), i + 0.5, np.float32),
          "segmentations": np.full((t, s, s), i % 3, np.int32)}
    return self.broken.get(i, lambda e: e)(ep)


def _ids(batch):
  return batch["video"][:, 0, 0, 0, 0] * 255


def _take(it, n):
  return [next(it) for _ in range(n)]


def test_batch_format_and_values():
  it = pipeline.BatchIterator(ToySource(), 4, seed=0, shuffle=False)
  batch = next(it)
  assert batch["video"].dtype == np.float32
  assert batch["video"].shape == (4, 5, 8, 8, 3)
  assert batch["actions"].dtype == np.float32 and batch["actions"].shape == (4, 5, 2)
  assert batch["segmentations"].dtype == np.int32
  np.testing.assert_allclose(batch["video"][:, 0, 0, 0, 0], np.arange(4) / 255.0,
                             rtol=1e-6)
  np.testing.assert_array_equal(batch["actions"][:, 0, 0], np.arange(4) + 0.5)
  np.testing.assert_array_equal(batch["segmentations"][:, 0, 0, 0], np.arange(4) % 3)
  assert it.step == 1


def test_epochs_are_the_documented_permutations():
  n, b, seed = 12, 4, 7
  it = pipeline.BatchIterator(ToySource(num=n), b, seed=seed, prefetch=0)
  seen = np.concatenate([_ids(x) for x in _take(it, 3 * n // b)]).astype(int)
  for e in range(3):
    expected = np.random.default_rng([seed, e]).permutation(n)
    np.testing.assert_array_equal(seen[e * n:(e + 1) * n], expected)
  assert len(set(seen[:n])) == n  # Each epoch visits every episode once.
  assert not np.array_equal(seen[:n], seen[n:2 * n])


def test_batch_spanning_epochs_and_no_shuffle():
  it = pipeline.BatchIterator(ToySource(num=5), 3, seed=0, shuffle=False)
  seen = np.concatenate([_ids(x) for x in _take(it, 4)]).astype(int)
  np.testing.assert_array_equal(seen, [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1])
  assert it.steps_per_epoch == 1


def test_determinism_and_resume():
  source = ToySource(num=11)
  full = _take(pipeline.BatchIterator(source, 4, seed=3), 9)
  again = _take(pipeline.BatchIterator(source, 4, seed=3), 9)
  other = _take(pipeline.BatchIterator(source, 4, seed=4), 9)
  resumed = _take(pipeline.BatchIterator(source, 4, seed=3, start_step=5), 4)
  for a, b in zip(full, again):
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])
  for a, b in zip(full[5:], resumed):
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])
  assert any(not np.array_equal(_ids(a), _ids(b)) for a, b in zip(full, other))


def test_process_slices_are_disjoint_and_cover_global_batch():
  source = ToySource(num=13)
  for count in (2, 4):
    glob = pipeline.BatchIterator(source, 8, seed=1, prefetch=0)
    parts = [pipeline.BatchIterator(source, 8, seed=1, process_index=p,
                                    process_count=count, prefetch=0)
             for p in range(count)]
    for step in range(5):
      whole = glob.episode_indices(step)
      pieces = [p.episode_indices(step) for p in parts]
      assert all(len(x) == 8 // count for x in pieces)
      np.testing.assert_array_equal(np.concatenate(pieces), whole)
      batches = [next(p) for p in parts]
      np.testing.assert_array_equal(
          np.concatenate([_ids(x) for x in batches]), _ids(next(glob)))
    # Positions (not only indices) are disjoint: a global batch of 8 from 13
    # distinct episodes within one epoch has no repeats.
    assert len(set(glob.episode_indices(0))) == 8
  with pytest.raises(base.DataError, match="not divisible by process_count=3"):
    pipeline.BatchIterator(source, 8, seed=0, process_count=3)
  with pytest.raises(base.DataError, match="process_index"):
    pipeline.BatchIterator(source, 8, seed=0, process_index=2, process_count=2)


def test_crop_frames_and_image_size_check():
  it = pipeline.BatchIterator(ToySource(t=5), 2, seed=0, num_frames=3,
                              image_size=8)
  batch = next(it)
  assert batch["video"].shape[1] == 3 and batch["actions"].shape[1] == 3
  assert batch["segmentations"].shape[1] == 3
  with pytest.raises(base.DataError) as err:
    next(pipeline.BatchIterator(ToySource(), 2, seed=0, image_size=32))
  assert "frames are 8x8 but config data.image_size=32" in str(err.value)
  assert "toy.npz" in str(err.value)
  with pytest.raises(base.DataError, match="data.num_frames=9"):
    next(pipeline.BatchIterator(ToySource(), 2, seed=0, num_frames=9))


def _set(key, value):
  def f(ep):
    ep[key] = value
    return ep
  return f


BAD = {
    "NaN": _set("video", np.full((5, 8, 8, 3), np.nan, np.float32)),
    r"\[0, 1\]": _set("video", np.full((5, 8, 8, 3), 2.0, np.float32)),
    "actions have shape": _set("actions", np.zeros((4, 2), np.float32)),
    "actions contain NaN": _set("actions", np.full((5, 2), np.nan, np.float32)),
    "segmentations have shape": _set("segmentations", np.zeros((5, 8, 7), np.int32)),
    "negative": _set("segmentations", np.full((5, 8, 8), -1, np.int32)),
    r"expected \[T, H, W, 3\]": _set("video", np.zeros((5, 8, 8), np.uint8)),
    "dtype is int64": _set("video", np.zeros((5, 8, 8, 3), np.int64)),
    "differ from earlier": lambda ep: ToySource(size=4)[1],
}


@pytest.mark.parametrize("message", list(BAD))
def test_bad_episodes_raise_data_error_naming_origin(message):
  source = ToySource(num=4, broken={1: BAD[message]})
  it = pipeline.BatchIterator(source, 4, seed=0, shuffle=False)
  with pytest.raises(base.DataError, match=message) as err:
    next(it)
  assert "toy.npz episode 1" in str(err.value)
  with pytest.raises(base.DataError):  # Keeps failing, does not hang.
    next(it)


def test_float_video_in_range_is_accepted():
  video = np.linspace(0, 1, 5 * 8 * 8 * 3).reshape(5, 8, 8, 3)
  source = ToySource(num=2, broken={0: _set("video", video)})
  batch = next(pipeline.BatchIterator(source, 2, seed=0, shuffle=False))
  np.testing.assert_allclose(batch["video"][0], video, rtol=1e-6)


def test_empty_and_bad_arguments():
  with pytest.raises(base.DataError, match="no episodes"):
    pipeline.BatchIterator(ToySource(num=0), 2, seed=0)
  with pytest.raises(base.DataError):
    pipeline.BatchIterator(ToySource(), 0, seed=0)


def _config(**overrides):
  cfg = ml_collections.ConfigDict(dict(
      name="sprites", data_dir=None, image_size=16, num_frames=4, num_train=6,
      num_eval=3, seed=0, min_objects=2, max_objects=3, cache=False))
  cfg.update(overrides)
  return cfg


def test_registry_sprites_in_memory_and_cached(tmp_path):
  mem = registry.build_source(_config(), "train")
  assert isinstance(mem, sprites.SpritesSource) and len(mem) == 6
  cached = registry.build_source(_config(cache=True, data_dir=str(tmp_path)),
                                 "eval")
  assert isinstance(cached, cache.CachedSource) and len(cached) == 3
  ref = sprites.make_episode(0, 1, 2, num_frames=4, image_size=16,
                             min_objects=2, max_objects=3)
  for k in ref:
    np.testing.assert_array_equal(cached[2][k], ref[k])
  np.testing.assert_array_equal(registry.build_source(_config(), "eval")[2]["video"],
                                ref["video"])
  it = registry.get_iterator(_config(), "train", 4, seed=0)
  batch = next(it)
  assert batch["video"].shape == (4, 4, 16, 16, 3)
  np.testing.assert_allclose(batch["video"][0],
                             mem[int(it.episode_indices(0)[0])]["video"] / 255.0,
                             rtol=1e-6)
  with pytest.raises(base.DataError, match="data.image_size=32"):
    next(pipeline.BatchIterator(mem, 2, seed=0, image_size=32))


def test_registry_errors():
  with pytest.raises(base.DataError) as err:
    registry.build_source(_config(name="mnist"), "train")
  assert "sprites" in str(err.value) and "room3d" in str(err.value)
  assert "\n" not in str(err.value)
  with pytest.raises(base.DataError, match="split"):
    registry.build_source(_config(), "test")
