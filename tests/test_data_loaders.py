"""Tests for the public-dataset loaders: npz_episodes, movi, multi_object, clevrer.

Every test writes its own tiny files (tmp_path) and checks values.
"""
import json
import os
import sys

import ml_collections
import numpy as np
import pytest

from datasets import base
from datasets import clevrer
from datasets import movi
from datasets import multi_object
from datasets import npz_episodes


def _config(**kwargs):
  config = dict(name="test", data_dir="", image_size=8, num_frames=3,
                num_train=0, num_eval=0, seed=0, min_objects=1, max_objects=6,
                cache=False)
  config.update(kwargs)
  return ml_collections.ConfigDict(config)


def _block_mean(video, factor):
  """Independent area downscaling: mean over factor x factor blocks."""
  t, h, w, c = video.shape
  blocks = video.reshape(t, h // factor, factor, w // factor, factor, c)
  return blocks.astype(float).mean(axis=(2, 4))


def _episode(rng, t=4, size=8, action_dim=2, seg=True):
  episode = {"video": rng.integers(0, 256, (t, size, size, 3), dtype=np.uint8),
             "actions": rng.normal(size=(t, action_dim)).astype(np.float32)}
  if seg:
    episode["segmentations"] = rng.integers(0, 4, (t, size, size))
  return episode


# ----------------------------------------------------------------------------
# npz_episodes


def test_npz_source_values_crop_and_resize(tmp_path):
  rng = np.random.default_rng(0)
  episodes = [_episode(rng, t=5, size=8) for _ in range(3)]
  os.makedirs(tmp_path / "train")
  os.makedirs(tmp_path / "eval")
  for i, ep in enumerate(episodes):
    np.savez(tmp_path / "train" / f"ep_{i}.npz", **ep)
  np.savez_compressed(tmp_path / "eval" / "a.npz", **episodes[0])

  source = npz_episodes.build_source(
      _config(data_dir=str(tmp_path), image_size=8, num_frames=3), "train")
  assert len(source) == 3
  assert (source.action_dim, source.has_segmentations) == (2, True)
  for i in range(3):  # Sorted file order, first 3 frames, same size: exact.
    got = source[i]
    np.testing.assert_array_equal(got["video"], episodes[i]["video"][:3])
    np.testing.assert_array_equal(got["actions"], episodes[i]["actions"][:3])
    np.testing.assert_array_equal(got["segmentations"],
                                  episodes[i]["segmentations"][:3])
    assert got["segmentations"].dtype == np.int32

  # Resized to 4x4: video = 2x2 block means, ids = the pixel under each centre.
  small = npz_episodes.build_source(
      _config(data_dir=str(tmp_path), image_size=4, num_frames=2,
              num_eval=1), "eval")[0]
  np.testing.assert_allclose(small["video"],
                             _block_mean(episodes[0]["video"][:2], 2),
                             atol=0.51)
  np.testing.assert_array_equal(small["segmentations"],
                                episodes[0]["segmentations"][:2, 1::2, 1::2])
  # num_train caps the number of episodes.
  capped = npz_episodes.build_source(
      _config(data_dir=str(tmp_path), num_train=2), "train")
  assert len(capped) == 2


def test_resize_video_hand_computed():
  row = np.array([30, 90, 150], np.uint8)
  video = np.broadcast_to(row[None, None, :, None], (1, 2, 3, 3))
  # Width 3 -> 2 (area): (30 + 90 / 2) / 1.5 = 50, (90 / 2 + 150) / 1.5 = 130.
  out = npz_episodes.resize_video(video, 2, 2)
  np.testing.assert_array_equal(out[0, :, :, 0], [[50, 130], [50, 130]])
  # Width 2 -> 4 (bilinear, centres aligned): a, .75a + .25b, .25a + .75b, b.
  two = np.broadcast_to(np.array([40, 200], np.uint8)[None, None, :, None],
                        (1, 1, 2, 3))
  out = npz_episodes.resize_video(two, 1, 4)
  np.testing.assert_array_equal(out[0, 0, :, 1], [40, 80, 160, 200])
  one = npz_episodes.resize_video(np.full((1, 1, 1, 3), 7, np.uint8), 3, 2)
  np.testing.assert_array_equal(one, np.full((1, 3, 2, 3), 7))


def test_npz_without_actions_or_segmentations(tmp_path):
  rng = np.random.default_rng(1)
  os.makedirs(tmp_path / "train")
  video = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
  np.savez(tmp_path / "train" / "x.npz", video=video)
  source = npz_episodes.build_source(_config(data_dir=str(tmp_path)), "train")
  assert (source.action_dim, source.has_segmentations) == (0, False)
  episode = source[0]
  assert episode["actions"].shape == (3, 0)
  assert "segmentations" not in episode
  np.testing.assert_array_equal(episode["video"], video)


def test_npz_missing_folder_explains_playroom(tmp_path):
  with pytest.raises(base.DataError) as error:
    npz_episodes.build_source(_config(data_dir=str(tmp_path / "nowhere")),
                              "train")
  message = str(error.value)
  assert str(tmp_path / "nowhere") in message
  assert "never" in message and "room3d" in message
  assert "python -m datasets.npz_episodes" in message


@pytest.mark.parametrize("problem", ["empty", "shape", "nan", "truncated",
                                     "mixed_actions", "short"])
def test_npz_bad_data_names_the_file(tmp_path, problem):
  rng = np.random.default_rng(2)
  split = tmp_path / "train"
  os.makedirs(split)
  bad = split / "bad.npz"
  if problem != "empty":
    np.savez(split / "a_good.npz", **_episode(rng))
  if problem == "shape":
    np.savez(bad, video=np.zeros((4, 8, 8), np.uint8))  # No channel axis.
  elif problem == "nan":
    episode = _episode(rng)
    episode["actions"][2, 1] = np.nan
    np.savez(bad, **episode)
  elif problem == "truncated":
    np.savez(bad, **_episode(rng))
    data = bad.read_bytes()
    bad.write_bytes(data[:len(data) // 2])
  elif problem == "mixed_actions":
    np.savez(bad, **_episode(rng, action_dim=3))
  elif problem == "short":
    np.savez(bad, **_episode(rng, t=2))
  config = _config(data_dir=str(tmp_path), num_frames=3)
  with pytest.raises(base.DataError) as error:
    source = npz_episodes.build_source(config, "train")
    for i in range(len(source)):
      source[i]
  expected = str(split) if problem == "empty" else str(bad)
  assert expected in str(error.value)


def test_convert_folder_aliases_split_and_cli(tmp_path):
  rng = np.random.default_rng(3)
  src = tmp_path / "loose"
  os.makedirs(src / "day2")
  originals = {}
  for i in range(10):
    frames = rng.uniform(0, 1, (3, 8, 8, 3)).astype(np.float32)
    action = rng.normal(size=(3, 7)).astype(np.float64)
    masks = rng.integers(0, 3, (3, 8, 8)).astype(np.uint8)
    name = f"day2/run{i}" if i % 3 == 0 else f"run{i}"
    if i % 2:
      np.savez(src / f"{name}.npz", frames=frames, action=action, masks=masks)
    else:
      video = np.round(frames * 255).astype(np.uint8)
      np.savez(src / f"{name}.npz", images=video, actions=action,
               segmentations=masks)
    originals[name.replace("/", "__")] = (np.round(frames * 255), action,
                                          masks)
  dst = tmp_path / "out"
  npz_episodes.main([f"--src={src}", f"--dst={dst}", "--eval_fraction=0.3",
                     "--seed=5"])
  train = sorted(os.listdir(dst / "train"))
  evals = sorted(os.listdir(dst / "eval"))
  assert len(train) == 7 and len(evals) == 3
  # The split is the documented permutation of the sorted file list.
  names = sorted(originals, key=lambda n: n.replace("__", "/") + ".npz")
  expected_eval = sorted(names[i] + ".npz"
                         for i in np.random.default_rng(5).permutation(10)[:3])
  assert evals == expected_eval
  for folder, files in (("train", train), ("eval", evals)):
    for f in files:
      with np.load(dst / folder / f) as data:
        video, action, masks = originals[f[:-4]]
        np.testing.assert_array_equal(data["video"], video)
        assert data["video"].dtype == np.uint8
        np.testing.assert_allclose(data["actions"], action, rtol=1e-6)
        assert data["actions"].dtype == np.float32
        np.testing.assert_array_equal(data["segmentations"], masks)
  source = npz_episodes.build_source(_config(data_dir=str(dst)), "eval")
  assert len(source) == 3 and source.action_dim == 7
  # Deterministic: converting again gives the same split; never overwrites.
  npz_episodes.convert_folder(str(src), str(tmp_path / "again"), 0.3, seed=5)
  assert sorted(os.listdir(tmp_path / "again" / "eval")) == evals
  with pytest.raises(base.DataError, match="already contains"):
    npz_episodes.convert_folder(str(src), str(dst), 0.3, seed=5)


def test_convert_folder_rejects_bad_file(tmp_path):
  src = tmp_path / "loose"
  os.makedirs(src)
  np.savez(src / "ok.npz", video=np.zeros((2, 4, 4, 3), np.uint8))
  np.savez(src / "bad.npz", frames=np.full((2, 4, 4, 3), 2.0))  # Not in [0,1].
  with pytest.raises(base.DataError, match="bad.npz"):
    npz_episodes.convert_folder(str(src), str(tmp_path / "out"))


# ----------------------------------------------------------------------------
# movi


def test_movi_example_to_episode():
  rng = np.random.default_rng(4)
  video = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
  seg = rng.integers(0, 6, (5, 8, 8, 1)).astype(np.uint8)
  episode = movi.example_to_episode(
      {"video": video, "segmentations": seg, "depth": None}, image_size=4,
      num_frames=3)
  np.testing.assert_allclose(episode["video"], _block_mean(video[:3], 2),
                             atol=0.51)
  np.testing.assert_array_equal(episode["segmentations"],
                                seg[:3, 1::2, 1::2, 0])
  assert episode["segmentations"].dtype == np.int32
  assert episode["actions"].shape == (3, 0)
  same = movi.example_to_episode({"video": video, "segmentations": seg}, 8, 5)
  np.testing.assert_array_equal(same["video"], video)
  with pytest.raises(base.DataError, match="fewer than"):
    movi.example_to_episode({"video": video, "segmentations": seg}, 8, 6)
  with pytest.raises(base.DataError, match="segmentations"):
    movi.example_to_episode({"video": video, "segmentations": seg[:, :4]}, 8, 3)


def _movi_builder(videos, segs, tensor_features=False):
  """A tfds builder laid out like Kubric's movi_a/128x128/1.0.0, tiny."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  t, h, w = videos.shape[1:4]

  class MoviA(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """movi_a: video and segmentations (and some metadata)."""
    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name="128x128")]

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls):  # See datasets/cache.py.
      return None

    def _info(self):
      if tensor_features:  # Writable without TensorFlow.
        video = tfds.features.Tensor(shape=(t, h, w, 3), dtype=np.uint8)
        seg = tfds.features.Tensor(shape=(t, h, w, 1), dtype=np.uint8)
      else:  # As in MOVi.
        video = tfds.features.Video(shape=(t, h, w, 3))
        seg = tfds.features.Sequence(tfds.features.Image(shape=(h, w, 1)),
                                     length=t)
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.
                                   FeaturesDict({"video": video,
                                                 "segmentations": seg}))

    def _split_generators(self, dl_manager):
      return {"train": self._generate_examples(range(len(videos) - 1)),
              "validation": self._generate_examples([len(videos) - 1])}

    def _generate_examples(self, indices):
      for i in indices:
        yield i, {"video": videos[i], "segmentations": segs[i]}

  return MoviA


def test_movi_without_tensorflow_says_how_to_install(tmp_path, monkeypatch):
  config = _config(data_dir=str(tmp_path), name="movi", variant="movi_a",
                   num_train=2)
  with pytest.raises(base.DataError, match="dataset_info.json"):
    movi.build_source(config, "train")
  rng = np.random.default_rng(12)
  builder = _movi_builder(rng.integers(0, 9, (3, 2, 4, 4, 3), dtype=np.uint8),
                          rng.integers(0, 9, (3, 2, 4, 4, 1), dtype=np.uint8),
                          tensor_features=True)
  builder(data_dir=str(tmp_path), file_format="array_record"
          ).download_and_prepare()
  assert os.path.isfile(tmp_path / "movi_a/128x128/1.0.0/dataset_info.json")
  monkeypatch.setitem(sys.modules, "tensorflow", None)  # Import fails.
  with pytest.raises(base.DataError, match=r"pip install -e \.\[tf\]"):
    movi.build_source(config, "train")
  (tmp_path / "movi_a/128x128/1.0.0/dataset_info.json").write_text("{")
  with pytest.raises(base.DataError, match="size of split 'train'"):
    movi.build_source(config, "train")


def test_sequential_reader_random_access():
  opened = []

  def open_at(start):
    opened.append(start)
    for i in range(start, 5):
      yield {"i": i}

  reader = movi.SequentialReader(open_at, "test")
  assert [reader(i)["i"] for i in (0, 0, 1, 2, 4)] == [0, 0, 1, 2, 4]
  assert opened == [0]  # One pass.
  assert reader(1)["i"] == 1 and opened == [0, 1]  # Re-opened to go back.
  with pytest.raises(base.DataError, match="only 5"):
    reader(5)


# ----------------------------------------------------------------------------
# multi_object


def _expected_ids(mask, num_background):
  """Loop version of the documented rule (first maximal slot wins)."""
  t, k, h, w = mask.shape[:4]
  ids = np.zeros((t, h, w), int)
  for a in range(t):
    for y in range(h):
      for x in range(w):
        values = [mask[a, s, y, x, 0] for s in range(k)]
        slot = values.index(max(values))
        ids[a, y, x] = 0 if slot < num_background else slot - num_background + 1
  return ids


def test_masks_to_ids():
  rng = np.random.default_rng(5)
  slots = rng.integers(0, 5, (2, 6, 7))
  mask = (np.arange(5)[None, :, None, None] == slots[:, None]) * 255
  mask = mask[..., None].astype(np.uint8)
  np.testing.assert_array_equal(multi_object.masks_to_ids(mask), slots)
  np.testing.assert_array_equal(multi_object.masks_to_ids(mask, 1),
                                _expected_ids(mask, 1))
  np.testing.assert_array_equal(multi_object.masks_to_ids(mask, 3),
                                _expected_ids(mask, 3))
  soft = rng.integers(0, 256, (2, 5, 6, 7, 1)).astype(np.uint8)  # Ties too.
  soft[0, :, 0, 0] = 7
  np.testing.assert_array_equal(multi_object.masks_to_ids(soft, 2),
                                _expected_ids(soft, 2))


@pytest.mark.parametrize("hwk", [False, True])
def test_multi_object_arrays_to_episode(hwk):
  rng = np.random.default_rng(6)
  spec = multi_object.Spec(frames=3, height=4, width=6, slots=3, files="",
                           mask_hwk=hwk)
  image = rng.integers(0, 256, (3, 4, 6, 3), dtype=np.uint8)
  slots = rng.integers(0, 3, (3, 4, 6))
  mask = ((np.arange(3)[None, :, None, None] == slots[:, None]) * 255)
  stored = mask.transpose(0, 2, 3, 1) if hwk else mask  # [T,H,W,K] / [T,K,H,W]
  episode = multi_object.arrays_to_episode(
      np.frombuffer(image.tobytes(), np.uint8),
      np.frombuffer(stored.astype(np.uint8).tobytes(), np.uint8), spec,
      image_size=6, num_frames=2)
  # Non-square 4x6 squashed to 6x6: rows floor((i + .5) * 4 / 6).
  rows = ((np.arange(6) + 0.5) * 4 / 6).astype(int)
  np.testing.assert_array_equal(episode["segmentations"], slots[:2, rows])
  assert episode["video"].shape == (2, 6, 6, 3)
  assert episode["actions"].shape == (2, 0)
  with pytest.raises(base.DataError, match="data.variant"):
    multi_object.arrays_to_episode(image.ravel()[:-3], stored.ravel(), spec,
                                   6, 2)


def test_multi_object_objects_room_background_and_exact_pixels():
  spec = multi_object.SPECS["objects_room"]
  rng = np.random.default_rng(7)
  image = rng.integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
  slots = rng.integers(0, 7, (1, 64, 64))
  mask = (np.arange(7)[None, :, None, None] == slots[:, None]) * 255
  episode = multi_object.arrays_to_episode(image.ravel(),
                                           mask.astype(np.uint8).ravel(),
                                           spec, image_size=64, num_frames=1)
  np.testing.assert_array_equal(episode["video"], image)
  # Sky, floor and the two walls (slots 0..3) are background.
  np.testing.assert_array_equal(episode["segmentations"],
                                np.maximum(slots - 3, 0))


def test_multi_object_errors(tmp_path, monkeypatch):
  config = _config(data_dir=str(tmp_path), name="multi_object",
                   variant="tetrominoes", num_frames=1, num_train=4, num_eval=2)
  with pytest.raises(base.DataError, match="tetrominoes_train.tfrecords"):
    multi_object.build_source(config, "train")
  (tmp_path / "tetrominoes_train.tfrecords").write_bytes(b"\0" * 16)
  monkeypatch.setitem(sys.modules, "tensorflow", None)
  with pytest.raises(base.DataError, match=r"pip install -e \.\[tf\]"):
    multi_object.build_source(config, "train")
  with pytest.raises(base.DataError, match="num_frames <= 1"):
    multi_object.build_source(_config(data_dir=str(tmp_path),
                                      name="tetrominoes", num_frames=2,
                                      num_train=1), "train")
  with pytest.raises(base.DataError, match="unknown dataset"):
    multi_object.build_source(_config(name="multi_object", variant="nope",
                                      num_frames=1), "train")


# ----------------------------------------------------------------------------
# clevrer


def _rle_encode(mask, compressed=True):
  """Independent COCO RLE encoder (column-major runs starting with 0s)."""
  flat = np.asarray(mask, bool).T.ravel()  # Column-major order.
  counts, current, run = [], False, 0
  for value in flat:
    if value != current:
      counts.append(run)
      current, run = value, 0
    run += 1
  counts.append(run)
  rle = {"size": list(np.shape(mask)), "counts": counts}
  if not compressed:
    return rle
  chars = []
  for i, count in enumerate(counts):  # pycocotools rleToString.
    x = count - (counts[i - 2] if i > 2 else 0)
    more = True
    while more:
      c = x & 0x1F
      x >>= 5
      more = (x != -1) if (c & 0x10) else (x != 0)
      if more:
        c |= 0x20
      chars.append(chr(c + 48))
  rle["counts"] = "".join(chars)
  return rle


def test_rle_decode_known_and_roundtrip():
  # Hand-computed: columns (0,0), (1,1), (1,0) -> runs 2 zeros, 3 ones, 1 zero.
  mask = np.array([[0, 1, 1], [0, 1, 0]], bool)
  assert _rle_encode(mask)["counts"] == "231"
  np.testing.assert_array_equal(
      clevrer.rle_decode({"size": [2, 3], "counts": "231"}), mask)
  np.testing.assert_array_equal(
      clevrer.rle_decode({"size": [2, 3], "counts": [2, 3, 1]}), mask)
  rng = np.random.default_rng(8)
  cases = [np.zeros((5, 7), bool), np.ones((5, 7), bool),
           rng.uniform(size=(40, 60)) < 0.5]
  blob = np.zeros((50, 80), bool)
  blob[10:35, 20:70] = True  # Long runs: multi-character and negative deltas.
  cases.append(blob)
  for case in cases:
    for compressed in (True, False):
      np.testing.assert_array_equal(
          clevrer.rle_decode(_rle_encode(case, compressed)), case)
  # A real mask from CLEVRER's derender proposals (a sphere, 320x480).
  real = clevrer.rle_decode({
      "size": [320, 480],
      "counts": "jVc0`0^95K3N3M2M3N2N2O1N101N2N101N10000000000000000000000000000"
                "00000000001N101N2N101N2N2N2N2N3L3N3LYSd3"})
  rows, cols = np.nonzero(real)
  bbox = (np.ptp(rows) + 1) * (np.ptp(cols) + 1)
  assert 1000 < real.sum() < 3000 and 0.7 < real.sum() / bbox < 0.9
  assert all(np.all(np.diff(np.nonzero(real[:, c])[0]) == 1)
             for c in np.unique(cols))  # Convex: one run per column.
  with pytest.raises(ValueError):
    clevrer.rle_decode({"size": [2, 3], "counts": [2, 3]})


def _write_clevrer(root, num_frames=8, height=32, width=48):
  """One video (colour code per frame) and its proposals."""
  import cv2  # pylint: disable=g-import-not-at-top
  os.makedirs(root / "video_train" / "video_00000-01000")
  os.makedirs(root / "derender_proposals")
  writer = cv2.VideoWriter(
      str(root / "video_train" / "video_00000-01000" / "video_00007.mp4"),
      cv2.VideoWriter_fourcc(*"mp4v"), 25, (width, height))
  colours = []
  frames = []
  for t in range(num_frames):
    rgb = np.zeros((height, width, 3), np.uint8)
    left, right = (200, 40, 40), (20 * t + 40, 180, 60)
    rgb[:, :width // 2] = left
    rgb[:, width // 2:] = right
    colours.append((left, right))
    writer.write(rgb[..., ::-1].copy())  # OpenCV wants BGR.
    # Masks: A = a box in the top-left, B = a box in the bottom-right that in
    # frame 4 overlaps A's area (B has the higher score and wins there).
    a = np.zeros((height, width), bool)
    a[2:14, 3:21] = True
    b = np.zeros((height, width), bool)
    b[16:30, 24:45] = True
    if t == 4:
      b[8:14, 12:21] = True
    objs = [{"mask": _rle_encode(a, compressed=t % 2 == 0), "score": 0.8,
             "color": "red", "material": "rubber", "shape": "cube"},
            {"mask": _rle_encode(b), "score": 0.99, "color": "green",
             "material": "metal", "shape": "sphere"}]
    if t % 4 == 2:
      objs = objs[::-1]  # List order changes; ids must not.
    frames.append({"frame_index": t, "objects": objs, "a": a, "b": b})
  writer.release()
  proposals = {"frames": [{k: f[k] for k in ("frame_index", "objects")}
                          for f in frames]}
  (root / "derender_proposals" / "proposal_00007.json").write_text(
      json.dumps(proposals))
  return colours, frames


def test_clevrer_video_and_masks(tmp_path):
  pytest.importorskip("cv2")
  colours, frames = _write_clevrer(tmp_path)
  config = _config(data_dir=str(tmp_path), image_size=16, num_frames=3,
                   frame_stride=2)
  source = clevrer.build_source(config, "train")
  assert len(source) == 1 and source.has_segmentations
  episode = source[0]
  assert episode["video"].shape == (3, 16, 16, 3)
  assert episode["actions"].shape == (3, 0)
  for t, index in enumerate((0, 2, 4)):  # Stride 2.
    left, right = colours[index]
    # Lossy mp4: compare region interiors with a tolerance.
    np.testing.assert_allclose(episode["video"][t, 2:14, 1:6].mean((0, 1)),
                               left, atol=12)
    np.testing.assert_allclose(episode["video"][t, 2:14, 10:15].mean((0, 1)),
                               right, atol=12)
    # Expected ids at full size: A = 1 (first seen), B = 2, B painted last.
    full = np.zeros((32, 48), int)
    full[frames[index]["a"]] = 1
    full[frames[index]["b"]] = 2
    # Nearest resize 32x48 -> 16x16: rows 2i+1, cols floor((j+.5)*3).
    np.testing.assert_array_equal(episode["segmentations"][t],
                                  full[1::2][:, 3 * np.arange(16) + 1])
  assert (episode["segmentations"][2] == 2).sum() > (
      episode["segmentations"][0] == 2).sum()  # B covers part of A in frame 4.


def test_clevrer_proposals_identity_and_overlap_order():
  a = np.zeros((4, 4), bool)
  a[:2] = True
  b = np.zeros((4, 4), bool)
  b[1:3] = True
  obj = lambda m, s, colour: {"mask": _rle_encode(m), "score": s,
                              "color": colour, "material": "metal",
                              "shape": "cube"}
  proposals = {"frames": [
      {"frame_index": 0, "objects": [obj(a, .9, "red"), obj(b, .5, "blue")]},
      {"frame_index": 1, "objects": [obj(b, .5, "blue"), obj(a, .9, "red")]},
      {"frame_index": 2, "objects": [obj(a, .1, "red"), obj(b, .5, "blue")]},
  ]}
  ids = clevrer.proposals_to_ids(proposals, [0, 1, 2], 4, 4)
  # Red is id 1 everywhere (first seen); overlap row 1 goes to higher score.
  np.testing.assert_array_equal(ids[0][:, 0], [1, 1, 2, 0])
  np.testing.assert_array_equal(ids[1][:, 0], [1, 1, 2, 0])
  np.testing.assert_array_equal(ids[2][:, 0], [1, 2, 2, 0])
  dropped = clevrer.proposals_to_ids(proposals, [2], 4, 4, min_score=0.3)
  np.testing.assert_array_equal(dropped[0][:, 0], [0, 1, 1, 0])  # Blue first.
  with pytest.raises(base.DataError, match="frame 3"):
    clevrer.proposals_to_ids(proposals, [3], 4, 4, origin="p.json")


def test_clevrer_missing_files(tmp_path):
  pytest.importorskip("cv2")
  with pytest.raises(base.DataError, match="video_train"):
    clevrer.build_source(_config(data_dir=str(tmp_path)), "train")
  _write_clevrer(tmp_path)
  os.remove(tmp_path / "derender_proposals" / "proposal_00007.json")
  with pytest.raises(base.DataError, match="proposal_00007.json"):
    clevrer.build_source(_config(data_dir=str(tmp_path)), "train")
  os.rmdir(tmp_path / "derender_proposals")
  source = clevrer.build_source(_config(data_dir=str(tmp_path)), "train")
  assert not source.has_segmentations
  assert "segmentations" not in source[0]
  with pytest.raises(base.DataError, match="only 8 frames"):
    clevrer.build_source(_config(data_dir=str(tmp_path), num_frames=5,
                                 frame_stride=2), "train")[0]


# ----------------------------------------------------------------------------
# End to end through TensorFlow (an optional extra: skipped where it is absent).


def _tf_example(tf, image, mask, per_byte):
  """A tf.train.Example like the multi_object_datasets records."""
  def feature(array):
    data = array.astype(np.uint8).tobytes()
    values = [data[i:i + 1] for i in range(len(data))] if per_byte else [data]
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
  return tf.train.Example(features=tf.train.Features(feature={
      "image": feature(image), "mask": feature(mask),
      "x": tf.train.Feature(float_list=tf.train.FloatList(value=[0.5] * 4))}))


@pytest.mark.parametrize("cache", [False, True])
def test_multi_object_tfrecords_end_to_end(tmp_path, cache):
  tf = pytest.importorskip("tensorflow")
  rng = np.random.default_rng(9)
  images = rng.integers(0, 256, (5, 35, 35, 3), dtype=np.uint8)
  slots = rng.integers(0, 4, (5, 35, 35))
  masks = ((np.arange(4)[None, :, None, None] == slots[:, None]) * 255)[..., None]
  path = str(tmp_path / "tetrominoes_train.tfrecords")
  with tf.io.TFRecordWriter(path, options="GZIP") as writer:
    for image, mask in zip(images, masks):
      writer.write(_tf_example(tf, image, mask, True).SerializeToString())
  config = _config(data_dir=str(tmp_path), name="multi_object",
                   variant="tetrominoes", image_size=35, num_frames=1,
                   num_eval=2, num_train=3, cache=cache,
                   cache_dir=str(tmp_path / "cache"))
  for split, first in (("eval", 0), ("train", 2)):  # Eval: records 0, 1.
    source = multi_object.build_source(config, split)
    assert len(source) == (2 if split == "eval" else 3)
    for i in range(len(source)):
      episode = source[i]
      np.testing.assert_array_equal(episode["video"][0], images[first + i])
      np.testing.assert_array_equal(episode["segmentations"][0],
                                    slots[first + i])
      assert episode["actions"].shape == (1, 0)


def test_cater_tfrecords_end_to_end(tmp_path):
  tf = pytest.importorskip("tensorflow")
  rng = np.random.default_rng(10)
  video = rng.integers(0, 256, (33, 64, 64, 3), dtype=np.uint8)
  slots = rng.integers(0, 11, (33, 64, 64))
  mask = ((np.arange(11)[None, :, None, None] == slots[:, None]) * 255)[..., None]
  path = str(tmp_path / "cater_with_masks_train.tfrecords-00000-of-00001")
  with tf.io.TFRecordWriter(path, options="ZLIB") as writer:
    writer.write(_tf_example(tf, video, mask, False).SerializeToString())
  config = _config(data_dir=str(tmp_path), name="multi_object",
                   variant="cater_with_masks", image_size=32, num_frames=4,
                   num_eval=0, num_train=1)
  episode = multi_object.build_source(config, "train")[0]
  np.testing.assert_allclose(episode["video"], _block_mean(video[:4], 2),
                             atol=0.51)
  np.testing.assert_array_equal(episode["segmentations"],
                                slots[:4, 1::2, 1::2])


def test_movi_tfds_end_to_end(tmp_path):
  pytest.importorskip("tensorflow")
  rng = np.random.default_rng(11)
  videos = rng.integers(0, 256, (3, 6, 8, 8, 3), dtype=np.uint8)
  segs = rng.integers(0, 5, (3, 6, 8, 8, 1)).astype(np.uint8)
  _movi_builder(videos, segs)(data_dir=str(tmp_path)).download_and_prepare()
  config = _config(data_dir=str(tmp_path), name="movi", variant="movi_a",
                   image_size=4, num_frames=5, num_train=5, num_eval=0,
                   cache=True, cache_dir=str(tmp_path / "cache"))
  for split, indices in (("train", [0, 1]), ("eval", [2])):
    source = movi.build_source(config, split)  # num_train=5 is capped to 2.
    assert len(source) == len(indices)
    for i, k in enumerate(indices):
      episode = source[i]
      np.testing.assert_allclose(episode["video"],
                                 _block_mean(videos[k][:5], 2), atol=0.51)
      np.testing.assert_array_equal(episode["segmentations"],
                                    segs[k][:5, 1::2, 1::2, 0])
