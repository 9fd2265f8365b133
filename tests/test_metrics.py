"""Tests for parts_jax.metrics against scikit-learn and hand-computed values."""
import functools

import jax
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from parts_jax import metrics


def _sklearn_ari(true_ids, pred_ids, ignore_background=False):
  out = []
  for t, p in zip(true_ids, pred_ids):
    keep = t != 0 if ignore_background else np.ones(t.shape, bool)
    out.append(adjusted_rand_score(t[keep].ravel(), p[keep].ravel()))
  return np.array(out)


@pytest.mark.parametrize("shape,num_true,num_pred", [
    ((4, 8, 8), 3, 5), ((3, 64, 64), 6, 11), ((2, 5, 7, 3), 2, 4), ((5, 2), 3, 3)])
@pytest.mark.parametrize("ignore_background", [False, True])
def test_ari_matches_sklearn_random(shape, num_true, num_pred, ignore_background):
  rng = np.random.default_rng(sum(shape))
  true_ids = rng.integers(0, num_true, shape)
  pred_ids = rng.integers(0, num_pred, shape)
  # Half of the examples: prediction close to the truth (ARI far from 0).
  close = (true_ids + (rng.random(shape) < 0.1)) % num_pred
  pred_ids[::2] = close[::2]
  got = metrics.adjusted_rand_index(true_ids, pred_ids, num_true=num_true, num_pred=num_pred,
                                    ignore_background=ignore_background)
  assert got.dtype == np.float32 and got.shape == (shape[0],)
  np.testing.assert_allclose(got, _sklearn_ari(true_ids, pred_ids, ignore_background), atol=1e-5)


def test_ari_large_nearly_trivial_partition():
  # 256x256 pixels, two tiny clusters: the naive float32 formula is off by ~4e-5 here.
  true_ids = np.zeros((1, 256, 256), int)
  pred_ids = np.zeros((1, 256, 256), int)
  true_ids[0, :2, :2] = 1
  pred_ids[0, :2, :3] = 1
  got = metrics.adjusted_rand_index(true_ids, pred_ids, num_true=2, num_pred=2)
  np.testing.assert_allclose(got, _sklearn_ari(true_ids, pred_ids), atol=1e-6)


@pytest.mark.parametrize("true_ids,pred_ids,expected", [
    ([0, 0, 0, 0], [0, 0, 0, 0], 1.0),  # Both a single cluster.
    ([0, 0, 0, 0], [0, 1, 2, 3], 0.0),  # One side a single cluster.
    ([0, 1, 2, 3], [0, 0, 0, 0], 0.0),
    ([0, 0, 0, 0], [0, 0, 1, 1], 0.0),
    ([0, 1, 2, 3], [3, 2, 1, 0], 1.0),  # Both all singletons.
    ([0, 0, 1, 1], [0, 0, 1, 1], 1.0),  # Identical.
    ([0, 0, 1, 1, 2], [2, 2, 0, 0, 1], 1.0),  # Permuted labels.
    ([2], [1], 1.0),  # One pixel.
    ([0, 0, 1, 1], [0, 1, 0, 1], -0.5),  # Hand-computed, see test_ari_hand_computed.
    ([0, 0, 1, 2], [0, 0, 1, 1], 4.0 / 7.0),  # sklearn docstring example.
])
def test_ari_degenerate_partitions(true_ids, pred_ids, expected):
  true_ids, pred_ids = np.array([true_ids]), np.array([pred_ids])
  got = metrics.adjusted_rand_index(true_ids, pred_ids, num_true=4, num_pred=4)
  assert adjusted_rand_score(true_ids[0], pred_ids[0]) == pytest.approx(expected)
  np.testing.assert_allclose(got, [expected], atol=1e-6)


def test_ari_hand_computed():
  # Contingency [[1, 1], [1, 1]]; ordered pairs: tp = 0, fn = fp = 4, tn = 4
  # ARI = 2 (0 * 4 - 4 * 4) / ((0 + 4)(4 + 4) + (0 + 4)(4 + 4)) = -32 / 64.
  got = metrics.adjusted_rand_index(np.array([[[0, 0], [1, 1]]]), np.array([[[0, 1], [0, 1]]]),
                                    num_true=2, num_pred=2)
  np.testing.assert_allclose(got, [-0.5], atol=1e-7)
  # true [0,0,0,1], pred [0,0,1,1]: n_ij = [[2, 1], [0, 1]], a = (3, 1), b = (2, 2).
  # Rand-index form: sum C(n_ij, 2) = 1, sum C(a_i, 2) = 3, sum C(b_j, 2) = 2,
  # expected = 3 * 2 / C(4, 2) = 1, max = (3 + 2) / 2 -> ARI = (1 - 1) / (2.5 - 1) = 0.
  got = metrics.adjusted_rand_index(np.array([[0, 0, 0, 1]]), np.array([[0, 0, 1, 1]]),
                                    num_true=2, num_pred=2)
  np.testing.assert_allclose(got, [0.0], atol=1e-7)


def test_ignore_background_changes_value_and_matches_sklearn():
  true_ids = np.array([[0, 0, 0, 0, 1, 1, 2, 2]])
  pred_ids = np.array([[0, 1, 2, 0, 1, 1, 2, 2]])  # Perfect on foreground, messy on background.
  ari = metrics.adjusted_rand_index(true_ids, pred_ids, num_true=3, num_pred=3)
  fg_ari = metrics.adjusted_rand_index(true_ids, pred_ids, num_true=3, num_pred=3,
                                       ignore_background=True)
  np.testing.assert_allclose(fg_ari, [1.0], atol=1e-7)
  np.testing.assert_allclose(ari, _sklearn_ari(true_ids, pred_ids), atol=1e-6)
  assert ari[0] < 0.9


def test_no_kept_pixels_gives_one_not_nan():
  true_ids = np.zeros((2, 4, 4), int)
  pred_ids = np.arange(32).reshape(2, 4, 4) % 3
  got = metrics.adjusted_rand_index(true_ids, pred_ids, num_true=2, num_pred=3,
                                    ignore_background=True)
  np.testing.assert_array_equal(got, [1.0, 1.0])
  assert adjusted_rand_score([], []) == 1.0


def test_out_of_range_ids_are_left_out():
  true_ids = np.array([[0, 0, 1, 1, 1, -1, 5]])
  pred_ids = np.array([[0, 1, 1, 1, 0, 0, 0]])
  got = metrics.adjusted_rand_index(true_ids, pred_ids, num_true=2, num_pred=2)
  np.testing.assert_allclose(got, [adjusted_rand_score(true_ids[0, :5], pred_ids[0, :5])],
                             atol=1e-6)


def test_ari_jit():
  rng = np.random.default_rng(0)
  true_ids = rng.integers(0, 4, (3, 16, 16))
  pred_ids = rng.integers(0, 5, (3, 16, 16))
  fn = jax.jit(functools.partial(metrics.adjusted_rand_index, num_true=4, num_pred=5,
                                 ignore_background=True))
  np.testing.assert_allclose(fn(true_ids, pred_ids), _sklearn_ari(true_ids, pred_ids, True),
                             atol=1e-5)


def test_fg_ari_per_frame_masks_and_ids():
  rng = np.random.default_rng(1)
  b, t, k, h, w = 2, 3, 5, 12, 12
  true_seg = rng.integers(0, 4, (b, t, h, w))
  true_seg[1, 2] = 0  # A frame without foreground.
  masks = rng.random((b, t, k, h, w))
  fg_ari, has_fg = metrics.fg_ari_per_frame(true_seg, masks, num_true=4)
  expected = _sklearn_ari(true_seg.reshape(b * t, h, w), masks.argmax(2).reshape(b * t, h, w),
                          ignore_background=True).reshape(b, t)
  np.testing.assert_allclose(fg_ari, expected, atol=1e-5)
  np.testing.assert_array_equal(has_fg, [[True, True, True], [True, True, False]])
  assert np.all(np.isfinite(fg_ari))
  fg_ari_ids, _ = jax.jit(functools.partial(metrics.fg_ari_per_frame, num_true=4, num_pred=k))(
      true_seg, masks.argmax(2))
  np.testing.assert_allclose(fg_ari_ids, fg_ari, atol=1e-7)
  with pytest.raises(ValueError, match="num_pred"):
    metrics.fg_ari_per_frame(true_seg, masks.argmax(2), num_true=4)


def test_summarize_fg_ari():
  fg_ari = np.array([[0.2, 0.4, 0.6], [0.8, 1.0, 1.0], [0.5, 1.0, 0.9]])
  has_fg = np.array([[True, False, True], [True, False, False], [True, False, True]])
  summary = metrics.summarize_fg_ari(fg_ari, has_fg)
  assert summary["fg_ari"] == pytest.approx((0.6 + 0.9) / 2)
  # Two scored values 0.6 and 0.9: sample sd 0.3 / sqrt(2), over sqrt(2) -> 0.15.
  assert summary["fg_ari_sem"] == pytest.approx(0.15)
  assert summary["fg_ari_per_step"][0] == pytest.approx(0.5)
  assert summary["fg_ari_per_step"][1] is None
  assert summary["fg_ari_per_step"][2] == pytest.approx(0.75)
  assert summary["num_frames_without_foreground"] == 4
  assert summary["num_sequences"] == 3
  assert summary["num_sequences_scored"] == 2
  assert summary["fg_ari_per_sequence"] == [0.6, None, 0.9]
  one = metrics.summarize_fg_ari(fg_ari[:2], has_fg[:2])   # One scored sequence: no spread.
  assert one["fg_ari"] == pytest.approx(0.6) and one["fg_ari_sem"] is None
  empty = metrics.summarize_fg_ari(np.zeros((3, 0)), np.zeros((3, 0), bool))   # T = 0
  assert empty["fg_ari"] is None and empty["fg_ari_sem"] is None
  assert empty["fg_ari_per_step"] == [] and empty["num_sequences_scored"] == 0


def test_paired_fg_ari_difference_by_hand():
  a, b = [0.9, None, 0.5, 0.7], [0.6, None, 0.6, 0.4]
  got = metrics.paired_fg_ari_difference(a, b)
  # Per-sequence differences 0.3, -0.1, 0.3 (the second sequence has no foreground).
  d = np.array([0.3, -0.1, 0.3])
  assert got["n"] == 3
  assert got["difference"] == pytest.approx(d.mean())
  assert got["difference"] == pytest.approx(np.mean([0.9, 0.5, 0.7]) - np.mean([0.6, 0.6, 0.4]))
  assert got["sem"] == pytest.approx(np.sqrt(((d - d.mean())**2).sum() / 2) / np.sqrt(3))
  # A constant shift of every sequence has no spread at all.
  assert metrics.paired_fg_ari_difference([0.5, 0.7], [0.4, 0.6])["sem"] == pytest.approx(0)
  with pytest.raises(ValueError, match="not paired"):
    metrics.paired_fg_ari_difference([0.5], [0.5, 0.6])
  with pytest.raises(ValueError, match="same eval sequences"):
    metrics.paired_fg_ari_difference([0.5, None], [0.5, 0.6])


def test_mse_per_frame():
  rng = np.random.default_rng(2)
  video, recon = rng.random((2, 3, 4, 5, 3)), rng.random((2, 3, 4, 5, 3))
  got = metrics.mse(video, recon)
  assert got.shape == (2, 3)
  np.testing.assert_allclose(got, ((video - recon)**2).reshape(2, 3, -1).mean(-1), rtol=1e-5)


def _background_slot_frames():
  """Five 2 x 3 frames for the background-slot metrics: seg [1, 5, 2, 3] (0 = background) and
  one-hot masks [1, 5, K=3, 2, 3] of the argmax `pred` below. In frame 4 the slot that wins most
  background pixels (1) is not the one that wins most foreground pixels, nor (by the tie) most
  pixels overall (0)."""
  seg = np.array([[[0, 0, 1], [0, 2, 2]],
                  [[1, 1, 1], [2, 2, 2]],
                  [[0, 0, 0], [0, 0, 0]],
                  [[0, 1, 0], [2, 0, 0]],
                  [[0, 0, 0], [1, 1, 1]]])
  pred = np.array([[[0, 0, 0], [1, 0, 2]],
                   [[0, 0, 0], [0, 0, 0]],
                   [[1, 2, 0], [0, 0, 0]],
                   [[2, 1, 1], [2, 2, 1]],
                   [[1, 1, 0], [0, 0, 1]]])
  return seg[None], np.moveaxis(np.eye(3)[pred], -1, 1)[None]


def test_foreground_in_background_slot_by_hand():
  """Frame 0: background pixels predicted 0, 0, 1 -> background slot 0; of the 3 foreground
  pixels, 2 are predicted 0: 2/3. Frame 1 has no background, frame 2 no foreground: 0 each.
  Frame 3: background pixels split 1:1 between slots 2 and 1 -> the lowest, 1, takes 1 of 2.
  Frame 4: slot 1 wins 2 of 3 background pixels and 1 of the 3 foreground ones: 1/3."""
  seg, masks = _background_slot_frames()
  got = metrics.foreground_in_background_slot(seg, masks)
  np.testing.assert_allclose(got, [[2 / 3, 0.0, 0.0, 0.5, 1 / 3]], rtol=1e-6)
  with pytest.raises(ValueError, match="masks"):
    metrics.foreground_in_background_slot(seg, masks[:, :, :, :1])


def test_background_in_object_slots_by_hand():
  """The frames of `_background_slot_frames`. Frame 0: background slot 0 takes 2 of its 3
  background pixels: 1/3 spilled. Frame 1 has no background: 0. Frame 2 (no foreground): slot 0
  wins 4 of 6, 2 go to slots 1 and 2: 1/3. Frame 3: background slot 1 (the tie), 2 of 4 to slot
  2: 1/2. Frame 4: background slot 1, 1 of 3 to slot 0: 1/3."""
  seg, masks = _background_slot_frames()
  got = metrics.background_in_object_slots(seg, masks)
  np.testing.assert_allclose(got, [[1 / 3, 0.0, 1 / 3, 0.5, 1 / 3]], rtol=1e-6)
  with pytest.raises(ValueError, match="masks"):
    metrics.background_in_object_slots(seg, masks[:, :, :, :1])


def test_object_mask_contrast_by_hand():
  """One 2 x 3 frame: background (0) on the top row, object 1 on pixel (1, 0), object 2 on
  (1, 1) and (1, 2); K = 3 soft masks (columns: pixels in row-major order).
    slot 0: 0.8 0.6 0.7 / 0.4 0.1 0.4     slot 1: 0.1 0.3 0.2 / 0.5 0.2 0.1
    slot 2: 0.1 0.1 0.1 / 0.1 0.7 0.5
  Object 1 (inside 1 pixel, rest 5): slot 0 0.4 - 2.6/5 = -0.12, slot 1 0.5 - 0.9/5 = 0.32,
  slot 2 0.1 - 1.5/5 = -0.2 -> 0.32. Object 2 (inside 2, rest 4): slot 0 0.25 - 2.5/4 = -0.375,
  slot 1 0.15 - 1.1/4 = -0.125, slot 2 0.6 - 0.4/4 = 0.5 -> 0.5. Frame mean (0.32 + 0.5) / 2.
  Frame 2: every pixel background, no object: 0. Frame 3: ids 1, 1, 1 / 2, 2, 2: object 1
  slot 0 0.7 - 0.3 = 0.4, object 2 slot 2 (1.3 - 0.3) / 3 = 0.3333 (slot 1: 0.2667 - 0.2)."""
  m0 = np.array([[0.8, 0.6, 0.7], [0.4, 0.1, 0.4]])
  m1 = np.array([[0.1, 0.3, 0.2], [0.5, 0.2, 0.1]])
  m2 = 1.0 - m0 - m1
  masks = np.stack([m0, m1, m2])[None, None].repeat(3, axis=1)   # [1, 3, K, 2, 3]
  seg = np.array([[[0, 0, 0], [1, 2, 2]],
                  [[0, 0, 0], [0, 0, 0]],
                  [[1, 1, 1], [2, 2, 2]]])[None]
  got = metrics.object_mask_contrast(seg, masks, num_true=3)
  np.testing.assert_allclose(got, [[0.41, 0.0, (0.4 + 1.0 / 3) / 2]], rtol=1e-5)
  # ids >= num_true are not objects (as in fg_ari_per_frame): only object 1 counts.
  np.testing.assert_allclose(metrics.object_mask_contrast(seg[:, :1], masks[:, :1], 2),
                             [[0.32]], rtol=1e-5)
  # Spatially uniform masks: 0; a one-hot mask on each object: 1.
  flat = np.full((1, 1, 3, 2, 3), 1 / 3)
  np.testing.assert_allclose(metrics.object_mask_contrast(seg[:, :1], flat, 3), [[0.0]],
                             atol=1e-6)
  exact = np.moveaxis(np.eye(3)[seg[:, :1]], -1, 2)               # slot k = id k
  np.testing.assert_allclose(metrics.object_mask_contrast(seg[:, :1], exact, 3), [[1.0]],
                             rtol=1e-6)
