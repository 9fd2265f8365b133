"""Tests for datasets/room3d.py (MuJoCo rendering through EGL)."""
import ctypes.util

import ml_collections
import numpy as np
import pytest

from datasets import base
from datasets import room3d


GL_FREE = ("test_camera_path_matches_actions_and_stays_in_room",
           "test_missing_egl_gives_clear_error")


@pytest.fixture(autouse=True)
def _needs_gl(request):
  """Tests that render skip only where the EGL library is absent; a machine that has libEGL but
  cannot make a MuJoCo context is a failure (a GL regression), not a skip."""
  if request.node.originalname in GL_FREE:
    return
  try:
    room3d._gl_context()  # pylint: disable=protected-access
  except base.DataError as e:
    if ctypes.util.find_library("EGL") is None:
      pytest.skip(f"no EGL library here: {e}")
    pytest.fail(f"libEGL is installed but MuJoCo cannot render through it: {e}")


def _config(**kwargs):
  config = dict(name="room3d", data_dir="", image_size=32, num_frames=4,
                num_train=5, num_eval=3, seed=7, min_objects=3, max_objects=6,
                cache=False)
  config.update(kwargs)
  return ml_collections.ConfigDict(config)


def _static_scene(objects, pose, actions=None, pitch=0.0, height=0.5):
  """A scene with a hand-placed camera path (pose then `actions`)."""
  actions = np.zeros((1, 3)) if actions is None else np.asarray(actions)
  poses = [np.asarray(pose, float)]
  for a in actions[:-1]:
    poses.append(room3d.apply_action(poses[-1], a))
  return room3d.Scene(objects=objects, camera_poses=np.array(poses),
                      actions=actions.astype(np.float32), camera_height=height,
                      camera_pitch=pitch)


def _box(pos_xy, half, rgba):
  return room3d.Primitive(kind="box", size=(half, half, half),
                          pos=(pos_xy[0], pos_xy[1], half), yaw=0.0, rgba=rgba)


def test_deterministic_random_access_and_disjoint_splits():
  train = room3d.build_source(_config(), "train")
  evals = room3d.build_source(_config(), "eval")
  assert (len(train), len(evals)) == (5, 3)
  assert (train.action_dim, train.has_segmentations) == (3, True)
  a = train[2]
  b = room3d.build_source(_config(), "train")[2]  # Fresh source, same item.
  for key in ("video", "actions", "segmentations"):
    assert a[key].tobytes() == b[key].tobytes(), key
  assert a["video"].shape == (4, 32, 32, 3) and a["video"].dtype == np.uint8
  assert a["actions"].shape == (4, 3) and a["actions"].dtype == np.float32
  assert a["segmentations"].shape == (4, 32, 32)
  assert a["segmentations"].dtype == np.int32
  assert not np.array_equal(a["video"], train[3]["video"])
  assert not np.array_equal(a["video"], evals[2]["video"])
  assert not np.array_equal(a["video"],
                            room3d.build_source(_config(seed=8), "train")[2]
                            ["video"])
  with pytest.raises(IndexError):
    train[5]


def test_camera_path_matches_actions_and_stays_in_room():
  rng = np.random.default_rng(0)
  for _ in range(20):
    poses, actions = room3d.sample_camera_path(rng, 16)
    for t in range(15):
      np.testing.assert_allclose(room3d.apply_action(poses[t], actions[t]),
                                 poses[t + 1], atol=1e-5)
    dist = np.hypot(poses[:, 0], poses[:, 1])
    assert dist.min() >= room3d.CAMERA_RING[0] - 1e-6
    assert dist.max() <= room3d.CAMERA_RING[1] + 1e-6
    assert np.abs(actions).max() < 0.5  # Smooth, small steps.
  # Hand-computed: facing +y, forward 1 and left 2 goes to (-2, 1).
  np.testing.assert_allclose(
      room3d.apply_action(np.array([0, 0, np.pi / 2]), np.array([1, 2, .3])),
      [-2, 1, np.pi / 2 + .3], atol=1e-12)


def test_mask_ids_are_scene_objects_with_their_colours():
  kwargs = dict(num_frames=4, min_objects=3, max_objects=6)
  seen = 0
  for index in range(3):
    scene = room3d.episode_scene(11, "train", index, **kwargs)
    episode = room3d.generate_episode(11, "train", index, image_size=64,
                                      **kwargs)
    num = len(scene.objects)
    ids = np.unique(episode["segmentations"])
    assert set(ids.tolist()) <= set(range(num + 1))
    # Each object's pixels have the object's colour (direction in RGB space,
    # so independent of shading): the mask is aligned with the image.
    colours = np.array([o.rgba[:3] for o in scene.objects])
    colours /= np.linalg.norm(colours, axis=1, keepdims=True)
    for t in range(4):
      seg, image = episode["segmentations"][t], episode["video"][t] / 255.0
      for k in range(1, num + 1):
        inner = seg == k  # Interior: all 4 neighbours have the same id.
        inner[1:-1, 1:-1] &= ((seg[:-2, 1:-1] == k) & (seg[2:, 1:-1] == k)
                              & (seg[1:-1, :-2] == k) & (seg[1:-1, 2:] == k))
        if inner.sum() < 12:
          continue
        mean = image[inner].mean(0)
        sims = colours @ (mean / np.linalg.norm(mean))
        assert np.argmax(sims) == k - 1, (index, t, k, sims)
        seen += 1
  assert seen >= 10


def test_projection_of_a_sphere_matches_pinhole_camera():
  # Camera at (-2, 0.3) looking along +x (yaw 0), pitched 20 deg down.
  size, pitch, height = 64, -20.0, 1.0
  centre = np.array([0.2, -0.2, 0.15])
  sphere = room3d.Primitive(kind="sphere", size=(0.15,), pos=tuple(centre),
                            yaw=0.0, rgba=(1, 0, 0, 1))
  scene = _static_scene([sphere], (-2.0, 0.3, 0.0), pitch=pitch,
                        height=height)
  seg = room3d.render_scene(scene, size)["segmentations"][0]
  # Independent pinhole projection.
  th = np.radians(pitch)
  forward = np.array([np.cos(th), 0, np.sin(th)])
  right = np.array([0, -1, 0])
  up = np.cross(right, forward)
  d = centre - np.array([-2.0, 0.3, height])
  focal = (size / 2) / np.tan(np.radians(room3d.FOVY) / 2)
  col = size / 2 + focal * (d @ right) / (d @ forward)
  row = size / 2 - focal * (d @ up) / (d @ forward)
  rows, cols = np.nonzero(seg == 1)
  assert np.unique(seg).tolist() == [0, 1]
  assert abs(rows.mean() + 0.5 - row) < 1.0 and abs(cols.mean() + 0.5 - col) < 1.0
  # Area of the projected disc (radius ~ focal * r / depth).
  expected_area = np.pi * (focal * 0.15 / np.linalg.norm(d))**2
  assert 0.8 < len(rows) / expected_area < 1.25


def test_occluded_object_mask_shrinks():
  back = _box((1.0, 0.0), 0.25, (0.1, 0.3, 0.9, 1))
  front = _box((-0.5, 0.0), 0.2, (0.9, 0.2, 0.1, 1))
  pose = (-2.0, 0.0, 0.0)  # Looking along +x: `front` hides `back`.
  alone = room3d.render_scene(_static_scene([back], pose), 64)
  both = room3d.render_scene(_static_scene([back, front], pose), 64)
  area_alone = (alone["segmentations"][0] == 1).sum()
  area_both = (both["segmentations"][0] == 1).sum()
  assert area_alone > 80  # ~10 x 10 px.
  assert area_both < 0.5 * area_alone
  # The hidden pixels now belong to the front object.
  hidden = (alone["segmentations"][0] == 1) & (both["segmentations"][0] != 1)
  assert (both["segmentations"][0][hidden] == 2).all()


def _shift(row_a, row_b, max_shift=12):
  """Integer s maximising the correlation of row_b[x] with row_a[x - s]."""
  a = row_a - row_a.mean(0)
  b = row_b - row_b.mean(0)
  width = len(a)
  scores = {s: (a[max_shift - s:width - max_shift - s]
                * b[max_shift:width - max_shift]).sum()
            for s in range(-max_shift, max_shift + 1)}
  return max(scores, key=scores.get)


@pytest.mark.parametrize("turn", [0.1, -0.1])
def test_turning_left_shifts_background_right(turn):
  # Empty room, level camera facing a (checkered) wall; turn between frames.
  scene = _static_scene([], (0.0, 0.0, 0.3), actions=[[0, 0, turn]] * 2,
                        height=0.9)
  video = room3d.render_scene(scene, 64)["video"].astype(float)
  rows = slice(20, 44)  # Rows of the wall around the horizon.
  shifts = [_shift(video[0, r], video[1, r]) for r in range(rows.start,
                                                             rows.stop)]
  shift = np.median(shifts)
  focal = 32 / np.tan(np.radians(room3d.FOVY) / 2)
  expected = focal * np.tan(turn)  # Pure rotation: ~5.5 px at the centre.
  assert np.sign(shift) == np.sign(turn)
  assert abs(shift - expected) <= 1.5, (shift, expected)


def test_missing_egl_gives_clear_error(monkeypatch):
  mujoco = room3d._mujoco()  # pylint: disable=protected-access

  def broken(*args, **kwargs):
    raise ImportError("libEGL.so.1: cannot open shared object file")

  monkeypatch.setattr(mujoco, "GLContext", broken)
  fresh = type(room3d._LOCAL)()  # pylint: disable=protected-access
  monkeypatch.setattr(room3d, "_LOCAL", fresh)  # No context in this thread.
  with pytest.raises(base.DataError, match="libEGL.so.1.*libegl1"):
    room3d.generate_episode(0, "train", 0, image_size=16, num_frames=1)


@pytest.mark.parametrize("workers", [1, 2])
def test_cached_source_matches_generation(tmp_path, workers):
  config = _config(cache=True, data_dir=str(tmp_path), num_train=3,
                   image_size=16, num_frames=2, render_workers=workers)
  cached = room3d.build_source(config, "train")
  assert len(cached) == 3 and cached.action_dim == 3
  for i in (0, 2):
    expected = room3d.generate_episode(7, "train", i, image_size=16,
                                       num_frames=2)
    for key in ("video", "actions", "segmentations"):
      np.testing.assert_array_equal(cached[i][key], expected[key])
