"""Tests for experiments.decoder_capacity: the disc and nearest-centroid references against
hand-computed cases, FG-ARI against scikit-learn, and a tiny end-to-end run."""
import numpy as np
from sklearn.metrics import adjusted_rand_score

from experiments import decoder_capacity
from experiments.configs import sprites


def test_disc_of_a_square_is_the_square_and_a_bar_loses_its_ends():
  seg = np.zeros((6, 8), np.int32)
  seg[1:3, 1:3] = 1            # 2 x 2: area 4, r^2 = 4/pi = 1.27; every pixel is 0.5 from the centre
  seg[4, 2:7] = 2              # 1 x 5 bar: area 5, r^2 = 1.59 around (4, 4): x = 3, 4, 5 only
  ids = decoder_capacity.disc_segmentation(seg)
  expected = np.zeros_like(seg)
  expected[1:3, 1:3] = 1
  expected[4, 3:6] = 2
  expected[3, 4] = expected[5, 4] = 2                  # 1 px above and below the bar's centre
  np.testing.assert_array_equal(ids, expected)


def test_nearest_centroid_assigns_every_pixel_to_the_closest_object():
  seg = np.zeros((5, 9), np.int32)
  seg[2, 1] = 3
  seg[2, 7] = 1
  ids = decoder_capacity.disc_segmentation(seg, np.inf)
  yy, xx = np.mgrid[:5, :9]
  closer_to_3 = (yy - 2) ** 2 + (xx - 1) ** 2 < (yy - 2) ** 2 + (xx - 7) ** 2
  np.testing.assert_array_equal(ids[:, :4], np.where(closer_to_3, 3, 1)[:, :4])
  np.testing.assert_array_equal(ids[:, 5:], np.where(closer_to_3, 3, 1)[:, 5:])


def test_fixed_regions_are_quadrants_and_scored_like_sklearn():
  regions = decoder_capacity.fixed_regions(4, 6, 4)
  # k-means of a 4 x 6 grid's coordinates into 4: the four 2 x 3 quadrants, in some order.
  blocks = [regions[y:y + 2, x:x + 3] for y in (0, 2) for x in (0, 3)]
  assert all(np.all(b == b[0, 0]) for b in blocks)
  assert sorted(b[0, 0] for b in blocks) == [0, 1, 2, 3]
  np.testing.assert_array_equal(regions, decoder_capacity.fixed_regions(4, 6, 4))
  # More regions than true ids: still the FG-ARI sklearn gives on the foreground pixels.
  rng = np.random.default_rng(1)
  frames = rng.integers(0, 3, size=(4, 4, 6)).astype(np.int32)
  pred = np.broadcast_to(decoder_capacity.fixed_regions(4, 6, 5), frames.shape)
  expected = np.mean([adjusted_rand_score(f[f > 0], p[f > 0]) for f, p in zip(frames, pred)])
  np.testing.assert_allclose(decoder_capacity.mean_fg_ari(frames, pred, num_true=3), expected,
                             atol=1e-5)


def test_object_masks_and_mean_fg_ari_match_sklearn():
  rng = np.random.default_rng(0)
  seg = rng.integers(0, 4, size=(3, 2, 6, 6)).astype(np.int32)
  masks = decoder_capacity.object_masks(seg)
  assert masks.shape == (sum(len(np.unique(f[f > 0])) for f in seg.reshape(6, 6, 6)), 6, 6)
  assert set(np.unique(masks)) <= {0.0, 1.0}
  frames = seg.reshape(6, 6, 6)
  pred = rng.integers(0, 4, size=frames.shape).astype(np.int32)
  expected = np.mean([adjusted_rand_score(f[f > 0], p[f > 0]) for f, p in zip(frames, pred)])
  np.testing.assert_allclose(decoder_capacity.mean_fg_ari(frames, pred, num_true=4), expected,
                             atol=1e-5)


def test_tiny_run_reports_each_decoder(tmp_path):
  c = sprites.get_config()
  c.data.update(image_size=12, num_frames=2, num_train=6, num_eval=4, data_dir=str(tmp_path))
  c.model.slot_dim = 4
  result = decoder_capacity.run(c, [(4,), (4, 4)], steps=3, train_sequences=6, eval_sequences=4,
                                batch_size=8, bases=("linear", "relative"), curve_every=2)
  assert result["num_eval_frames"] == 4 and result["num_train_masks"] >= 6 * 2 * 2
  assert 0 < result["disc_oracle_fg_ari"] <= 1 and 0 < result["nearest_centroid_fg_ari"] <= 1
  assert -1 <= result["fixed_regions_fg_ari"] <= 1
  assert [(d["channels"], d["basis"]) for d in result["decoders"]] == [
      ([4], "linear"), ([4], "relative"), ([4, 4], "linear"), ([4, 4], "relative")]
  for d in result["decoders"]:
    assert [c["step"] for c in d["curve"]] == [2]           # every 2 steps but the last (3)
    assert np.isfinite(d["curve"][0]["train_loss"]) and 0 <= d["curve"][0]["iou"] <= 1
    assert np.isfinite(d["final_train_loss"]) and -1 <= d["fg_ari"] <= 1 and 0 <= d["iou"] <= 1
    assert -1 <= d["train_fg_ari"] <= 1 and 0 <= d["train_iou"] <= 1
    assert 0 <= d["curve"][0]["train_iou"] <= 1


def test_references_only_run_trains_nothing(tmp_path):
  """channels_list empty (`--channels=`): the model-free references, no training fields, and the
  same reference values as a run that also trains a decoder."""
  c = sprites.get_config()
  c.data.update(image_size=12, num_frames=2, num_train=6, num_eval=4, data_dir=str(tmp_path))
  c.model.slot_dim = 4
  refs = decoder_capacity.run(c, [], steps=3, train_sequences=6, eval_sequences=4)
  assert refs["decoders"] == [] and "steps" not in refs and "num_train_masks" not in refs
  full = decoder_capacity.run(c, [(4,)], steps=1, train_sequences=6, eval_sequences=4,
                              batch_size=8)
  for key in ("disc_oracle_fg_ari", "nearest_centroid_fg_ari", "fixed_regions_fg_ari"):
    assert refs[key] == full[key]
