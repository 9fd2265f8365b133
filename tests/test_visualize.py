"""Tests for parts_jax.visualize: image sizes from the documented layout, content, GIF frames."""
import os

import numpy as np
import pytest
from PIL import Image

from parts_jax import visualize as vis

T, K, H, W = 4, 3, 32, 32
TILE = 96  # 32x32 tiles are upscaled x3 to reach MIN_TILE = 96.


def _size(rows, cols, col_labels=True):
  """Expected (height, width) of a grid figure, from the layout in the module docstring."""
  return ((vis.LABEL_HEIGHT if col_labels else 0) + rows * TILE + (rows + 1) * vis.PAD,
          vis.LABEL_WIDTH + cols * TILE + (cols + 1) * vis.PAD)


def _tile(image, row, col):
  y = vis.LABEL_HEIGHT + vis.PAD + row * (TILE + vis.PAD)
  x = vis.LABEL_WIDTH + vis.PAD + col * (TILE + vis.PAD)
  return image[y:y + TILE, x:x + TILE]


def _up(img):
  return np.asarray(img).repeat(3, 0).repeat(3, 1)


def _read_png(path, expected_hw):
  assert os.path.getsize(path) > 0
  with Image.open(path) as im:
    assert im.size == (expected_hw[1], expected_hw[0])  # PIL size is (width, height).
    return np.asarray(im.convert("RGB"))


@pytest.fixture(name="data")
def _data():
  rng = np.random.default_rng(0)
  video = rng.random((T, H, W, 3))
  seg = np.zeros((T, H, W), int)
  seg[:, 4:12, 4:12], seg[:, 20:28, 10:20] = 1, 2
  masks = np.stack([seg == k for k in range(K)], axis=1).astype(np.float32)
  return video, seg, masks, rng.random((T, K, H, W, 3))


def test_segmentation_figure(data, tmp_path):
  video, seg, masks, slot_recons = data
  recon = video[::-1]
  path = str(tmp_path / "sub" / "seg.png")
  image = vis.segmentation_figure(video, recon, masks, slot_recons, seg, path)
  expected_hw = _size(rows=4 + K, cols=T)
  assert image.shape == expected_hw + (3,) and image.dtype == np.uint8
  np.testing.assert_array_equal(_read_png(path, expected_hw), image)
  np.testing.assert_array_equal(_tile(image, 0, 1), _up(vis.to_uint8(video[1])))
  np.testing.assert_array_equal(_tile(image, 1, 1), _up(vis.to_uint8(recon[1])))
  np.testing.assert_array_equal(_tile(image, 2, 3), _up(vis.colorize_ids(seg[3], K)))
  np.testing.assert_array_equal(_tile(image, 3, 3), _up(vis.colorize_ids(seg[3], 3)))
  slot2 = vis.to_uint8(masks[2, 2, ..., None] * slot_recons[2, 2])
  np.testing.assert_array_equal(_tile(image, 4 + 2, 2), _up(slot2))
  # Without slot_recons and ground truth: one row fewer, slots show mask * input.
  image = vis.segmentation_figure(video, recon, masks[..., None])
  assert image.shape == _size(rows=3 + K, cols=T) + (3,)
  np.testing.assert_array_equal(_tile(image, 3 + 1, 0),
                                _up(vis.to_uint8(masks[0, 1, ..., None] * video[0])))
  # Columns labelled with given time steps (e.g. Fig 7's 0, 1, 3, 7, ...): same tiles, other
  # header labels.
  relabelled = vis.segmentation_figure(video, recon, masks[..., None],
                                       steps=[10 * i + 7 for i in range(T)])
  assert relabelled.shape == image.shape and not np.array_equal(relabelled, image)
  np.testing.assert_array_equal(_tile(relabelled, 2, 1), _tile(image, 2, 1))
  with pytest.raises(ValueError, match="steps"):
    vis.segmentation_figure(video, recon, masks, steps=[0])
  # Free column labels (columns that are different sequences): the labels of `steps` replaced.
  named = vis.segmentation_figure(video, recon, masks[..., None],
                                  steps=[10 * i + 7 for i in range(T)],
                                  column_labels=[f"seq {i}" for i in range(T)])
  assert named.shape == image.shape and not np.array_equal(named, relabelled)
  np.testing.assert_array_equal(_tile(named, 2, 1), _tile(image, 2, 1))
  with pytest.raises(ValueError, match="column_labels"):
    vis.segmentation_figure(video, recon, masks, column_labels=["a"])


def test_attention_figure(data, tmp_path):
  video, _, masks, _ = data
  attention = 5.0 * masks[:, :, ::4, ::4]  # 8x8 attention, upsampled to the 32x32 frames.
  path = str(tmp_path / "att.png")
  image = vis.attention_figure(video, attention, path, strength=1.0)
  expected_hw = _size(rows=1 + K, cols=T)
  _read_png(path, expected_hw)
  assert image.shape == expected_hw + (3,)
  np.testing.assert_array_equal(_tile(image, 0, 0), _up(vis.to_uint8(video[0])))
  # strength=1: full slot colour where attention is maximal, the frame where it is minimal.
  tile = _tile(image, 1 + 1, 0)
  np.testing.assert_array_equal(tile[3 * 5, 3 * 5], vis.palette(K + 1)[2])
  np.testing.assert_array_equal(tile[0, 0], vis.to_uint8(video[0, 0, 0]))


def test_traversal_figure(tmp_path):
  rng = np.random.default_rng(1)
  images = rng.random((3, 5, 16, 24, 3))  # 16x24 tiles -> x4 -> 64x96.
  path = str(tmp_path / "trav.png")
  image = vis.traversal_figure(images, ["a", "b", "c"], path)
  expected_hw = (vis.LABEL_HEIGHT + 3 * 64 + 4 * vis.PAD, vis.LABEL_WIDTH + 5 * 96 + 6 * vis.PAD)
  _read_png(path, expected_hw)
  assert image.shape == expected_hw + (3,)
  with pytest.raises(ValueError, match="row_labels"):
    vis.traversal_figure(images, ["a"], None)


def test_rollout_figure(data, tmp_path):
  video, seg, _, _ = data
  path = str(tmp_path / "roll.png")
  burn_in = 2
  image = vis.rollout_figure(video, video * 0.5, seg, burn_in, path, num_colors=K)
  expected_hw = _size(rows=3, cols=T)
  _read_png(path, expected_hw)
  np.testing.assert_array_equal(_tile(image, 2, 1), _up(vis.colorize_ids(seg[1], K)))
  # The burn-in marker fills the gap left of column `burn_in`, and only that gap.
  x_marker = vis.LABEL_WIDTH + burn_in * (TILE + vis.PAD)
  y_mid = vis.LABEL_HEIGHT + TILE
  np.testing.assert_array_equal(image[y_mid, x_marker], vis.MARKER_COLOR)
  np.testing.assert_array_equal(image[y_mid, x_marker - (TILE + vis.PAD)], [255, 255, 255])
  assert vis.rollout_figure(video, video, None, 0).shape == _size(rows=2, cols=T) + (3,)


def test_prior_curves_figure(tmp_path):
  curves = {"fixed": {"kl": [3.0, 2.0, 1.5], "mse": [0.1, 0.05, 0.04]},
            "predictive": {"kl": [2.0, 1.0, 0.5], "mse": [0.08, 0.03, 0.02]}}
  path = str(tmp_path / "curves.png")
  image = vis.prior_curves_figure(curves, path)
  _read_png(path, (300, 800))
  assert image.shape == (300, 800, 3) and image.std() > 0
  with pytest.raises(ValueError, match="mse"):
    vis.prior_curves_figure({"x": {"kl": [1.0]}})


def test_training_curves_figure(tmp_path):
  path = str(tmp_path / "train.png")
  image = vis.training_curves_figure({"FG-ARI": ([500, 1000], [0.1, 0.2]), "resp": ([1000], [0.9])},
                                     "held-out", path)
  _read_png(path, (350, 600))
  assert image.shape == (350, 600, 3) and image.std() > 0
  with pytest.raises(ValueError, match="as many steps"):
    vis.training_curves_figure({"x": ([1, 2], [0.5])}, "t")


def test_runs_curves_figure(tmp_path):
  path = str(tmp_path / "runs.png")
  image = vis.runs_curves_figure({"FG-ARI": {"a/seed0": ([500, 1000], [0.1, 0.2]),
                                             "b/seed0": ([500], [0.3])},
                                  "contrast": {"a/seed0": ([1000], [0.05])}}, path)
  _read_png(path, (350, 1000))
  assert image.shape == (350, 1000, 3) and image.std() > 0
  with pytest.raises(ValueError, match="at least one panel"):
    vis.runs_curves_figure({})
  with pytest.raises(ValueError, match="as many steps"):
    vis.runs_curves_figure({"p": {"x": ([1], [])}})


def test_save_gif(data, tmp_path):
  video = data[0]
  path = str(tmp_path / "v.gif")
  frames = vis.save_gif(video, path, fps=5)
  assert frames.shape == (T, TILE, TILE, 3) and frames.dtype == np.uint8
  assert os.path.getsize(path) > 0
  with Image.open(path) as im:
    assert im.n_frames == T and im.size == (TILE, TILE)
    assert im.info["duration"] == 200


def test_colorize_ids():
  ids = np.array([[0, 1, 2], [2, 1, 0], [5, 5, 3]])
  colors = vis.colorize_ids(ids, 6)
  assert colors.shape == (3, 3, 3) and colors.dtype == np.uint8
  flat_ids, flat_colors = ids.ravel(), colors.reshape(-1, 3)
  for i in range(len(flat_ids)):
    for j in range(len(flat_ids)):
      same_color = np.array_equal(flat_colors[i], flat_colors[j])
      assert same_color == (flat_ids[i] == flat_ids[j])
  np.testing.assert_array_equal(colors[0, 0], [0, 0, 0])
  pal = vis.palette(200)  # Beyond the base palette colours stay distinct.
  assert len(np.unique(pal, axis=0)) == 200
  np.testing.assert_array_equal(vis.palette(7), pal[:7])  # Fixed: a prefix of a longer one.
  with pytest.raises(ValueError, match="num_colors"):
    vis.colorize_ids(ids, 5)


def test_float_and_uint8_inputs_agree(data):
  video, seg, masks, _ = data
  video8 = vis.to_uint8(video)
  np.testing.assert_array_equal(vis.rollout_figure(video8, video8, seg, 1),
                                vis.rollout_figure(video8 / 255.0, video8 / 255.0, seg, 1))
