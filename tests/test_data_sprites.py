"""Tests for the sprites generator (datasets/sprites.py)."""
import numpy as np
import pytest

from datasets import base
from datasets import montage
from datasets import sprites

SMALL = dict(num_frames=6, image_size=32)


def _episode(index, split_id=0, seed=0, **kwargs):
  return sprites.make_episode(seed, split_id, index, **dict(SMALL, **kwargs))


def test_format_and_sizes():
  for kwargs, (t, s) in [(dict(num_frames=16, image_size=64), (16, 64)),
                         (dict(num_frames=8, image_size=32), (8, 32))]:
    ep = sprites.make_episode(0, 0, 3, **kwargs)
    assert ep["video"].dtype == np.uint8 and ep["video"].shape == (t, s, s, 3)
    assert ep["actions"].dtype == np.float32 and ep["actions"].shape == (t, 2)
    assert ep["segmentations"].dtype == np.int32
    assert ep["segmentations"].shape == (t, s, s)
    ids = np.unique(ep["segmentations"])
    assert ids.min() == 0 and ids.max() <= 6 and len(ids) >= 2


def test_same_seed_same_bytes_other_seed_or_split_differs():
  a, b = _episode(5), _episode(5)
  for key in a:
    assert a[key].tobytes() == b[key].tobytes()
  assert _episode(5, seed=1)["video"].tobytes() != a["video"].tobytes()
  train = {_episode(i, 0)["video"].tobytes() for i in range(30)}
  evals = {_episode(i, 1)["video"].tobytes() for i in range(30)}
  assert len(train) == 30 and len(evals) == 30
  assert not train & evals


def test_source_random_access_matches_generator():
  source = sprites.SpritesSource("eval", 7, seed=3, **SMALL)
  assert len(source) == 7 and source.action_dim == 2
  ep = source[4]
  ref = sprites.generate_episode(np.random.default_rng([3, 1, 4]), **SMALL)
  assert all(np.array_equal(ep[k], ref[k]) for k in ref)
  with pytest.raises(IndexError):
    source[7]
  with pytest.raises(base.DataError):
    sprites.SpritesSource("test", 3)


def _reference_render(info, image_size, num_frames):
  """Naive per-pixel renderer from the scene description (independent code)."""
  bg, colours, stamps = info["background"], info["colours"], info["stamps"]
  video = np.zeros((num_frames, image_size, image_size, 3), np.uint8)
  seg = np.zeros((num_frames, image_size, image_size), np.int32)
  for t in range(num_frames):
    cy, cx = info["camera"][t]
    for y in range(image_size):
      for x in range(image_size):
        wy, wx = cy + y, cx + x  # World pixel.
        video[t, y, x] = bg[wy, wx]
        for j, stamp in enumerate(stamps):  # Later sprites are on top.
          h = (stamp.shape[0] - 1) // 2
          sy, sx = wy - info["centers"][t, j, 0] + h, wx - info["centers"][t, j, 1] + h
          if 0 <= sy < stamp.shape[0] and 0 <= sx < stamp.shape[1] and stamp[sy, sx]:
            video[t, y, x] = colours[j]
            seg[t, y, x] = j + 1
  return video, seg


def test_render_matches_naive_reference_with_occlusion():
  overlaps = 0
  for i in range(5):
    # Integer radii: circles, diamonds and crosses touch the stamp border.
    radius = dict(min_radius=4.0, max_radius=4.0) if i == 4 else {}
    ep, info = sprites.generate_episode(
        np.random.default_rng([9, i]), num_frames=4, image_size=24,
        min_objects=5, max_objects=6, return_info=True, **radius)
    video, seg = _reference_render(info, 24, 4)
    np.testing.assert_array_equal(ep["segmentations"], seg)
    np.testing.assert_array_equal(ep["video"], video)
    # Count pixels covered by >= 2 sprites, to be sure occlusion was tested.
    for t in range(4):
      cover = np.zeros((24, 24), int)
      for j, stamp in enumerate(info["stamps"]):
        h = (stamp.shape[0] - 1) // 2
        top, left = info["centers"][t, j] - h - info["camera"][t]
        for sy, sx in zip(*np.nonzero(stamp)):
          if 0 <= top + sy < 24 and 0 <= left + sx < 24:
            cover[top + sy, left + sx] += 1
      overlaps += (cover >= 2).sum()
  assert overlaps > 0


def test_masks_agree_with_colours():
  for i in range(10):
    ep = _episode(i, min_objects=4, max_objects=6)
    video, seg = ep["video"], ep["segmentations"]
    colours = {}
    for j in np.unique(seg):
      pixels = np.unique(video[seg == j], axis=0)
      if j > 0:  # Flat colour per sprite, fully saturated.
        assert len(pixels) == 1, (i, j, pixels)
        colours[j] = pixels[0]
        assert pixels[0].max() == 255 and pixels[0].min() == 0
    values = list(colours.values())
    assert len({tuple(c) for c in values}) == len(values)  # Distinct.
    background = video[seg == 0]
    assert background.min() >= sprites.BG_MIN and background.max() <= sprites.BG_MAX
    for colour in values:  # No background pixel has a sprite colour.
      assert not np.all(background == colour, axis=-1).any()


def test_actions_move_the_camera_exactly():
  moved = np.zeros(2, bool)
  for i in range(6):
    ep = _episode(i, max_speed=0.0, num_frames=8)
    video, seg, actions = ep["video"], ep["segmentations"], ep["actions"]
    assert np.all(actions == np.round(actions))
    assert np.abs(actions).max() <= 3  # default max_camera_step = 32 // 10
    for t in range(7):
      dy, dx = actions[t].astype(int)
      moved |= actions[t] != 0
      # frame[t+1][y, x] == frame[t][y + dy, x + dx] where both exist.
      n = 32
      new = (slice(max(0, -dy), n - max(0, dy)), slice(max(0, -dx), n - max(0, dx)))
      old = (slice(max(0, dy), n - max(0, -dy)), slice(max(0, dx), n - max(0, -dx)))
      np.testing.assert_array_equal(video[t + 1][new], video[t][old])
      np.testing.assert_array_equal(seg[t + 1][new], seg[t][old])
      # A shift one pixel off does not match (the background is textured).
      wrong = (slice(max(0, dy + 1), n - max(0, -dy - 1)), old[1])
      new_wrong = (slice(max(0, -dy - 1), n - max(0, dy + 1)), new[1])
      assert not np.array_equal(video[t + 1][new_wrong], video[t][wrong])
  assert moved.all()


def test_camera_is_clipped_to_the_world():
  # World == view: the camera cannot move, so all applied actions are 0.
  ep = _episode(1, world_scale=1.0, max_speed=0.0)
  assert np.all(ep["actions"] == 0)
  assert np.all(ep["video"] == ep["video"][0])
  # Default world: camera corners stay inside and actions are the differences.
  for i in range(5):
    ep, info = sprites.generate_episode(np.random.default_rng(i), num_frames=30,
                                        image_size=32, return_info=True)
    cam = info["camera"]
    assert cam.min() >= 0 and cam.max() <= 64 - 32
    np.testing.assert_array_equal(ep["actions"], np.diff(cam, axis=0))


def test_sprites_move_and_bounce_inside_world():
  for i in range(5):
    _, info = sprites.generate_episode(np.random.default_rng(i), num_frames=60,
                                       image_size=32, return_info=True)
    for j, stamp in enumerate(info["stamps"]):
      h = (stamp.shape[0] - 1) // 2
      c = info["centers"][:, j]
      assert c.min() >= h and c.max() <= 64 - 1 - h
  _, frozen = sprites.generate_episode(np.random.default_rng(0), max_speed=0.0,
                                       return_info=True)
  assert np.all(frozen["centers"] == frozen["centers"][0])


def test_shape_stamps():
  r = 10.0
  area = {s: sprites.shape_stamp(s, r).sum() for s in sprites.SHAPES}
  assert abs(area["circle"] - np.pi * r**2) < 0.05 * np.pi * r**2
  assert area["square"] == 17 * 17  # |x|, |y| <= 8
  assert area["diamond"] == 2 * 10 * 11 + 1  # Lattice points |x| + |y| <= 10.
  assert abs(area["triangle"] - 3 * np.sqrt(3) / 4 * r**2) < 0.1 * 1.3 * r**2
  assert len(set(area.values())) == len(area)
  triangle = sprites.shape_stamp("triangle", r)
  assert triangle[0].sum() < triangle[15].sum()  # Points up.
  for s in sprites.SHAPES:
    assert sprites.shape_stamp(s, 0.4).sum() >= 1


def test_montage_layout():
  eps = [_episode(i) for i in range(2)]
  image = montage.montage(eps, scale=2, gap=2)
  # 4 rows of 64 px, gaps 2 + 8 + 2; 6 frames of 64 px with 5 gaps of 2.
  assert image.shape == (4 * 64 + 12, 6 * 64 + 10, 3)
  np.testing.assert_array_equal(image[:64:2, :64:2], eps[0]["video"][0])
