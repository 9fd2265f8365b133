"""Tests for the public-dataset loaders: npz_episodes, movi, multi_object, clevrer.

Every test writes its own files (tmp_path) and checks values. MOVi and
multi_object files are written byte for byte in the published formats by
tests/published_formats.py (its own CRC, protobuf and PNG writers), and read
without TensorFlow: none of these tests skips.
"""
import gzip
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
from datasets import resize
from datasets import sources
from datasets import tfrecord
from tests import published_formats as formats


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
  out = resize.resize_video(video, 2, 2)
  np.testing.assert_array_equal(out[0, :, :, 0], [[50, 130], [50, 130]])
  # Width 2 -> 4 (bilinear, centres aligned): a, .75a + .25b, .25a + .75b, b.
  two = np.broadcast_to(np.array([40, 200], np.uint8)[None, None, :, None],
                        (1, 1, 2, 3))
  out = resize.resize_video(two, 1, 4)
  np.testing.assert_array_equal(out[0, 0, :, 1], [40, 80, 160, 200])
  one = resize.resize_video(np.full((1, 1, 1, 3), 7, np.uint8), 3, 2)
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


def test_first_sequences_are_the_split_in_order(tmp_path, capsys):
  """registry.first_sequences: episodes 0..n-1 of the source, all of them (with a message) when
  n exceeds the split, and a DataError naming the caller when segmentations are required and
  absent."""
  from datasets import registry
  rng = np.random.default_rng(3)
  os.makedirs(tmp_path / "with" / "eval")
  for i in range(3):
    np.savez(tmp_path / "with" / "eval" / f"ep_{i}.npz", **_episode(rng))
  config = _config(name="npz", data_dir=str(tmp_path / "with"))
  source = npz_episodes.build_source(config, "eval")
  batch = registry.first_sequences(config, "eval", 2, require_segmentations=True)
  for i in range(2):
    np.testing.assert_allclose(batch["video"][i], source[i]["video"] / 255.0, atol=1e-6)
    np.testing.assert_array_equal(batch["segmentations"][i], source[i]["segmentations"])
  assert len(registry.first_sequences(config, "eval", 5, what="probe")["video"]) == 3
  assert "probe: the eval split has 3 sequences, using all of them" in capsys.readouterr().out
  os.makedirs(tmp_path / "without" / "eval")
  np.savez(tmp_path / "without" / "eval" / "x.npz", video=rng.integers(0, 256, (3, 8, 8, 3),
                                                                        dtype=np.uint8))
  bare = _config(name="npz", data_dir=str(tmp_path / "without"))
  assert registry.first_sequences(bare, "eval", 1).get("segmentations") is None
  with pytest.raises(base.DataError, match="probe: the eval split of 'npz' has no ground-truth"):
    registry.first_sequences(bare, "eval", 1, require_segmentations=True, what="probe")


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


def _assert_halved_movi_episode(episode, video, seg, t):
  """`episode` is the first t frames of (video, seg) at half size: area-averaged frames (to
  within uint8 rounding), nearest-neighbour int32 ids, no actions."""
  np.testing.assert_allclose(episode["video"], _block_mean(video[:t], 2), atol=0.51)
  np.testing.assert_array_equal(episode["segmentations"], seg[:t, 1::2, 1::2, 0])
  assert episode["segmentations"].dtype == np.int32
  assert episode["actions"].shape == (t, 0)


def test_movi_example_to_episode():
  rng = np.random.default_rng(4)
  video = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
  seg = rng.integers(0, 6, (5, 8, 8, 1)).astype(np.uint8)
  episode = movi.example_to_episode(
      {"video": video, "segmentations": seg, "depth": None}, image_size=4,
      num_frames=3)
  _assert_halved_movi_episode(episode, video, seg, 3)
  same = movi.example_to_episode({"video": video, "segmentations": seg}, 8, 5)
  np.testing.assert_array_equal(same["video"], video)
  with pytest.raises(base.DataError, match="fewer than"):
    movi.example_to_episode({"video": video, "segmentations": seg}, 8, 6)
  with pytest.raises(base.DataError, match="segmentations"):
    movi.example_to_episode({"video": video, "segmentations": seg[:, :4]}, 8, 3)


@pytest.mark.parametrize("name", ["movi_a", "movi_e"])
@pytest.mark.parametrize("cache", [False, True])
def test_movi_published_build(tmp_path, name, cache):
  rng = np.random.default_rng(20)
  scenes = [formats.movi_scene(rng, max_objects=formats.MOVI_OBJECTS[name])
            for _ in range(4)]
  records = [formats.movi_record(name, v, s, rng, str(i))
             for i, (v, s) in enumerate(scenes)]
  # Train: records 0, 1 | 2 in two shards; validation: record 3.
  formats.write_movi_build(tmp_path, name, {
      "train": [records[:2], records[2:3]], "validation": [records[3:]]},
      new_tfds=name == "movi_e")
  config = _config(data_dir=str(tmp_path), name="movi", variant=name,
                   image_size=64, num_frames=5, num_train=0, num_eval=0,
                   cache=cache, cache_dir=str(tmp_path / "cache"))
  for split, indices in (("train", [0, 1, 2]), ("eval", [3])):
    source = movi.build_source(config, split)
    assert len(source) == len(indices) and source.has_segmentations
    for i, k in enumerate(indices):
      video, seg = scenes[k]
      episode = source[i]
      _assert_halved_movi_episode(episode, video, seg, 5)
  capped = movi.build_source(_config(data_dir=str(tmp_path), name=name,
                                     num_train=2, image_size=128,
                                     num_frames=24), "train")
  assert len(capped) == 2
  episode = capped[1]  # Full size and length: exact.
  np.testing.assert_array_equal(episode["video"], scenes[1][0])
  np.testing.assert_array_equal(episode["segmentations"], scenes[1][1][..., 0])
  if name == "movi_e":
    assert episode["segmentations"].max() <= 23


def test_movi_reads_only_video_and_segmentations(tmp_path):
  rng = np.random.default_rng(21)
  video, seg = formats.movi_scene(rng, num_frames=3, size=16)
  record = formats.movi_record("movi_a", video, seg, rng)
  features = tfrecord.parse_example(record, movi.KEYS)
  assert sorted(features) == ["segmentations", "video"]
  example = movi.record_to_example("x", 0, record, num_frames=2)
  np.testing.assert_array_equal(example["video"], video[:2])
  np.testing.assert_array_equal(example["segmentations"], seg[:2])
  everything = tfrecord.parse_example(record)
  assert everything["metadata/num_frames"].int64s().tolist() == [3]
  assert everything["forward_flow"].int64s().shape == (3 * 16 * 16 * 2,)
  # A build whose video frames are not PNG.
  bad = formats.example({"video": formats.bytes_feature([b"GIF89a"] * 3),
                         "segmentations": formats.bytes_feature(
                             [formats.png(f) for f in seg])})
  with pytest.raises(base.DataError, match="record 7 video: frame 0"):
    movi.record_to_example("x", 7, bad, 3)
  only_video = formats.example({"video": formats.bytes_feature([b"x"])})
  with pytest.raises(base.DataError, match=r"no feature 'segmentations' "
                     r"\(found \['video'\]\)"):
    movi.record_to_example("x", 7, only_video, 3)


def test_movi_missing_or_broken_build(tmp_path):
  config = _config(data_dir=str(tmp_path), name="movi", variant="movi_c",
                   num_train=2)
  with pytest.raises(base.DataError) as error:
    movi.build_source(config, "train")
  message = str(error.value)
  parent = str(tmp_path / "movi_c" / "128x128")
  # The hint creates the destination first, so gsutil copies 1.0.0 into it.
  assert f"mkdir -p {parent} && gsutil -m cp -r " in message
  assert f"gs://kubric-public/tfds/movi_c/128x128/1.0.0 {parent}/" in message
  rng = np.random.default_rng(22)
  video, seg = formats.movi_scene(rng, num_frames=3, size=16)
  records = [formats.movi_record("movi_c", video, seg, rng)] * 3
  directory = formats.write_movi_build(tmp_path, "movi_c", {
      "train": [records[:2], records[2:]], "validation": [records[:1]]})
  os.remove(os.path.join(directory, "movi_c-train.tfrecord-00001-of-00002"))
  with pytest.raises(base.DataError, match="00001-of-00002: missing"):
    movi.build_source(config, "train")
  (tmp_path / "movi_c/128x128/1.0.0/dataset_info.json").write_text("{")
  with pytest.raises(base.DataError, match="shards of split 'train'"):
    movi.build_source(config, "train")


def test_sequential_reader_random_access():
  opened = []

  def open_at(start):
    opened.append(start)
    for i in range(start, 5):
      yield {"i": i}

  reader = sources.SequentialReader(open_at, "test")
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
  monkeypatch.setitem(sys.modules, "tensorflow", None)  # Never needed.
  with pytest.raises(base.DataError,
                     match=r"tetrominoes_train.tfrecords: record 0: broken GZIP"):
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


def _write_clevrer(root, num_frames=8, height=32, width=48, number=7,
                   videos="video_train"):
  """One video (colour code per frame) and its proposals, in
  <root>/<videos>/video_<thousands>/ (videos="": the zips' own layout)."""
  import cv2  # pylint: disable=g-import-not-at-top
  low = number // 1000 * 1000
  folder = root / videos / f"video_{low:05d}-{low + 1000:05d}"
  os.makedirs(folder, exist_ok=True)
  os.makedirs(root / "derender_proposals", exist_ok=True)
  writer = cv2.VideoWriter(
      str(folder / f"video_{number:05d}.mp4"),
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
  (root / "derender_proposals" / f"proposal_{number:05d}.json").write_text(
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
  with pytest.raises(base.DataError, match="no video_XXXXX.mp4 files "
                     "numbered 0..9999"):
    clevrer.build_source(_config(data_dir=str(tmp_path)), "train")
  _write_clevrer(tmp_path)
  os.remove(tmp_path / "derender_proposals" / "proposal_00007.json")
  with pytest.raises(base.DataError, match="proposal_00007.json"):
    clevrer.build_source(_config(data_dir=str(tmp_path)), "train")
  os.rmdir(tmp_path / "derender_proposals")
  # A missing proposals folder is an error, unless masks are not wanted.
  with pytest.raises(base.DataError, match="data.segmentations=False"):
    clevrer.build_source(_config(data_dir=str(tmp_path)), "train")
  config = _config(data_dir=str(tmp_path), segmentations=False)
  source = clevrer.build_source(config, "train")
  assert not source.has_segmentations
  assert "segmentations" not in source[0]
  with pytest.raises(base.DataError, match="only 8 frames"):
    clevrer.build_source(_config(data_dir=str(tmp_path), num_frames=5,
                                 frame_stride=2, segmentations=False),
                         "train")[0]


def test_clevrer_zip_layout_and_known_broken_videos(tmp_path):
  pytest.importorskip("cv2")
  # As video_train.zip / video_validation.zip unpack: no top-level folder.
  for number in (7, 7648, 9777, 10003, 10800):
    _write_clevrer(tmp_path, number=number, videos="")
  config = _config(data_dir=str(tmp_path), image_size=16, num_frames=3)
  with pytest.warns(UserWarning, match=r"skipped 2 known broken video\(s\)"
                    r".*7648 \(104 frames.*9777"):
    train = clevrer.build_source(config, "train")
  assert len(train) == 1 and sorted(train.skipped) == [7648, 9777]
  assert train[0]["segmentations"].shape == (3, 16, 16)
  with pytest.warns(UserWarning, match="skipped 1 known broken"):
    evals = clevrer.build_source(config, "eval")
  assert len(evals) == 1 and list(evals.skipped) == [10800]
  assert "video_10003.mp4" in evals._videos[0]  # pylint: disable=protected-access


# ----------------------------------------------------------------------------
# TFRecord reading (datasets/tfrecord.py) and the multi_object files.


def test_crc32c_published_vector_and_independent_writer():
  assert tfrecord.crc32c(b"123456789") == 0xE3069283  # RFC 3720 check value.
  assert tfrecord.crc32c(b"") == 0
  rng = np.random.default_rng(30)
  for n in (1, 31, 8 * 1024 - 1, 8 * 1024, 9 * 1024 + 3, 70001):
    data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    assert tfrecord.crc32c(data) == formats.crc32c(data), n
    assert tfrecord.masked_crc32c(data) == formats.masked_crc(data), n


def test_example_and_sequence_example_decoding():
  data = formats.example({
      "b": formats.bytes_feature([b"ab", b"", b"c"]),
      "f": formats.float_feature([0.5, -2.0]),
      "i": formats.int64_feature([0, 1, 300, -1, 2**40]),
      "skipped": formats.bytes_feature([b"x" * 1000])})
  features = tfrecord.parse_example(data, ["b", "f", "i", "absent"])
  assert sorted(features) == ["b", "f", "i"]
  assert [bytes(v) for v in features["b"].bytes_list()] == [b"ab", b"", b"c"]
  assert features["b"].concatenated_bytes().tobytes() == b"abc"
  np.testing.assert_array_equal(features["f"].floats(), [0.5, -2.0])
  np.testing.assert_array_equal(features["i"].int64s(),
                                [0, 1, 300, -1, 2**40])
  with pytest.raises(tfrecord.ProtoError, match="float_list"):
    features["f"].bytes_list()
  sequence = formats.sequence_example(
      {"length": formats.int64_feature([2])},
      {"frames": [formats.bytes_feature([b"one"]),
                  formats.bytes_feature([b"two"])]})
  context, lists = tfrecord.parse_sequence_example(sequence)
  assert context["length"].int64s().tolist() == [2]
  assert [bytes(f.bytes_list()[0]) for f in lists["frames"]] == [b"one",
                                                                 b"two"]
  with pytest.raises(base.DataError, match="f: record 3: not a tf.train"):
    tfrecord.example_features("f", 3, data[:-5], ["b"])


@pytest.mark.parametrize("compression", ["", "GZIP", "ZLIB"])
def test_tfrecord_files_and_start(tmp_path, compression):
  records = [bytes([i]) * (i * 5000) for i in range(5)]  # Record 0 is empty.
  formats.write_tfrecord(tmp_path / "a", records[:3], compression)
  formats.write_tfrecord(tmp_path / "b", records[3:], compression)
  files = [str(tmp_path / "a"), str(tmp_path / "b")]
  for start in range(6):
    got = [(os.path.basename(p), i, bytes(d))
           for p, i, d in tfrecord.read_files(files, compression, start)]
    expected = [("a", i, r) for i, r in enumerate(records[:3])]
    expected += [("b", i, r) for i, r in enumerate(records[3:])]
    assert got == expected[start:]


@pytest.mark.parametrize("compression", ["", "GZIP"])
@pytest.mark.parametrize("damage", ["data_crc", "length_crc", "truncated",
                                    "header"])
def test_tfrecord_corrupt_or_truncated_names_file_and_record(
    tmp_path, compression, damage):
  records = [bytes(range(256)) * 40 for _ in range(4)]
  plain = bytearray(formats.tfrecord_bytes(records))
  record = len(records[0]) + 16
  if damage == "data_crc":
    plain[2 * record + 12 + 100] ^= 1  # A data byte of record 2.
  elif damage == "length_crc":
    plain[2 * record + 1] ^= 0x40  # The length of record 2.
  elif damage == "truncated":
    plain = plain[:2 * record + 12 + 500]  # Inside record 2's data.
  else:
    plain = plain[:2 * record + 5]  # Inside record 2's header.
  path = tmp_path / "shard.tfrecords"
  path.write_bytes(gzip.compress(bytes(plain)) if compression else plain)
  reader = tfrecord.read_records(str(path), compression)
  assert [i for i, _ in zip(range(2), reader)] == [0, 1]
  with pytest.raises(base.DataError) as error:
    next(reader)
  message = str(error.value)
  assert message.startswith(f"{path}: record 2: ")
  expected = {"data_crc": "corrupt (CRC of the 10240 data bytes",
              "length_crc": "corrupt (CRC of the length field",
              "truncated": "truncated", "header": "truncated"}[damage]
  assert expected in message
  # Skipping over the damaged record fails there too, except a data CRC,
  # which is only checked for records that are read.
  skipping = tfrecord.read_files([str(path)], compression, start=3)
  if damage == "data_crc":
    assert [i for _, i, _ in skipping] == [3]
  else:
    with pytest.raises(base.DataError, match="record 2: "):
      list(skipping)


def test_tfrecord_truncated_gzip_stream(tmp_path):
  records = [np.random.default_rng(i).bytes(3000) for i in range(3)]
  path = tmp_path / "cut.tfrecords"
  formats.write_tfrecord(path, records, "GZIP")
  data = path.read_bytes()
  path.write_bytes(data[:len(data) - 20])  # The gzip trailer and some data.
  with pytest.raises(base.DataError, match=r"cut.tfrecords: record 2: "):
    list(tfrecord.read_records(str(path), "GZIP"))
  path.write_bytes(data)
  with pytest.raises(base.DataError, match="starts like GZIP"):
    list(tfrecord.read_records(str(path), ""))


def _multi_object_expected(name, image, slots, image_size, num_frames):
  spec = multi_object.SPECS[name]
  video = image[:num_frames]
  if video.shape[-1] == 1:
    video = np.repeat(video, 3, axis=-1)
  ids = np.maximum(slots[:num_frames] - spec.num_background + 1, 0)
  fy, fx = spec.height // image_size, spec.width // image_size
  t, h, w = video.shape[:3]
  blocks = video.reshape(t, h // fy, fy, w // fx, fx, 3).astype(float)
  return blocks.mean(axis=(2, 4)), ids[:, fy // 2::fy, fx // 2::fx]


@pytest.mark.parametrize("name", sorted(formats.MULTI_OBJECT))
def test_multi_object_published_files(tmp_path, monkeypatch, name):
  monkeypatch.setitem(sys.modules, "tensorflow", None)  # Never needed.
  t, h, w, _, _, _, folder, pattern, compression = formats.MULTI_OBJECT[name]
  rng = np.random.default_rng(sorted(formats.MULTI_OBJECT).index(name))
  num = 2 if h * w > 10000 else 4  # CLEVR and CATER records are large.
  scenes = [formats.multi_object_scene(name, rng) for _ in range(num)]
  records = [formats.multi_object_record(name, image, slots, rng)
             for image, slots in scenes]
  # In <data_dir>/<folder>/, as `gsutil cp -r gs://multi-object-datasets .`.
  root = tmp_path / "multi-object-datasets"
  if name == "cater_with_masks":  # Sharded: records 0 | 1, 2, 3.
    for i, shard in enumerate((records[:1], records[1:])):
      formats.write_tfrecord(root / folder / pattern.format(i, 2), shard,
                             compression)
  else:
    formats.write_tfrecord(root / folder / pattern, records, compression)
  image_size = {240: 40, 35: 35}.get(h, 32)
  num_frames = 4 if t > 1 else 1
  config = _config(data_dir=str(root), name="multi_object", variant=name,
                   image_size=image_size, num_frames=num_frames, num_eval=1,
                   num_train=num - 1)
  for split, first in (("eval", 0), ("train", 1)):
    source = multi_object.build_source(config, split)
    assert len(source) == (1 if split == "eval" else num - 1)
    for i in range(len(source)):
      episode = source[i]
      video, ids = _multi_object_expected(name, *scenes[first + i],
                                          image_size, num_frames)
      np.testing.assert_allclose(episode["video"], video, atol=0.51)
      np.testing.assert_array_equal(episode["segmentations"], ids)
      assert episode["actions"].shape == (num_frames, 0)


def test_multi_object_cache_and_corrupt_record(tmp_path):
  name = "tetrominoes"
  rng = np.random.default_rng(31)
  scenes = [formats.multi_object_scene(name, rng) for _ in range(5)]
  records = [formats.multi_object_record(name, i, s, rng) for i, s in scenes]
  path = tmp_path / "tetrominoes_train.tfrecords"  # Directly in data_dir.
  formats.write_tfrecord(path, records, "GZIP")
  config = _config(data_dir=str(tmp_path), name=name, image_size=35,
                   num_frames=1, num_eval=2, num_train=3, cache=True,
                   cache_dir=str(tmp_path / "cache"))
  for split, first in (("eval", 0), ("train", 2)):
    source = multi_object.build_source(config, split)
    for i in range(len(source)):
      image, slots = scenes[first + i]
      np.testing.assert_array_equal(source[i]["video"], image)
      np.testing.assert_array_equal(source[i]["segmentations"], slots)
  # One flipped bit in record 3 of a fresh copy: a DataError naming it.
  plain = bytearray(formats.tfrecord_bytes(records))
  plain[3 * (len(records[0]) + 16) + 12 + 40] ^= 4
  os.makedirs(tmp_path / "bad")
  (tmp_path / "bad" / path.name).write_bytes(gzip.compress(bytes(plain)))
  config = _config(data_dir=str(tmp_path / "bad"), name=name, image_size=35,
                   num_frames=1, num_eval=2, num_train=3)
  with pytest.raises(base.DataError, match=r"tetrominoes_train.tfrecords: "
                     r"record 3: corrupt \(CRC of the"):
    multi_object.build_source(config, "train")


def test_registry_checks_action_dim_where_the_config_sets_it(tmp_path):
  from datasets import registry  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(40)
  os.makedirs(tmp_path / "train")
  np.savez(tmp_path / "train" / "a.npz", **_episode(rng, action_dim=3))
  config = _config(name="npz", data_dir=str(tmp_path), action_dim=7)
  with pytest.raises(base.DataError, match=r"3 action dimensions but the "
                     r"config sets data.action_dim=7"):
    registry.build_source(config, "train")
  config.action_dim = 3
  assert registry.build_source(config, "train").action_dim == 3
  del config["action_dim"]  # Unset: any width.
  assert registry.build_source(config, "train").action_dim == 3
