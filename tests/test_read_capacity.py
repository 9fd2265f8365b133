"""Tests for experiments.read_capacity: the interior weights by hand, the read's inputs, that the
read sees the frame only through its weights (Eq 6 with the attention given) and a tiny run."""
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl import app

from experiments import read_capacity, setup_lib
from experiments.configs import sprites


def test_interior_by_hand():
  masks = np.zeros((3, 5, 5), np.float32)
  masks[0, 1:4, 1:4] = 1           # 3 x 3 square: only its centre has 4 neighbours inside
  masks[1, 2, :] = 1               # a 1-px bar has no interior: kept whole
  masks[2, 0:3, 0:3] = 1           # at the image corner: off-image neighbours are outside
  inner = read_capacity.interior(masks)
  expected = np.zeros_like(masks)
  expected[0, 2, 2] = 1
  expected[1] = masks[1]
  expected[2, 1, 1] = 1
  np.testing.assert_array_equal(inner, expected)
  assert inner.dtype == np.float32


@pytest.mark.parametrize("weights", ["mask", "interior"])
def test_read_inputs_hold_each_objects_frame_and_weights(weights):
  rng = np.random.default_rng(0)
  frames = rng.uniform(size=(2, 5, 5, 3)).astype(np.float32)
  seg = np.zeros((2, 5, 5), np.int32)
  seg[0, 1:4, 1:4] = 2
  seg[1, 0, :] = 1
  seg[1, 2:5, 2:5] = 3
  inputs, masks, frame_of = read_capacity.read_inputs(frames, seg, weights)
  np.testing.assert_array_equal(frame_of, [0, 1, 1])
  np.testing.assert_array_equal(masks, [seg[0] == 2, seg[1] == 1, seg[1] == 3])
  np.testing.assert_array_equal(inputs[..., :3], frames[[0, 1, 1]])
  expected = masks if weights == "mask" else read_capacity.interior(masks)
  np.testing.assert_array_equal(inputs[..., 3], expected)


def _tiny_model():
  c = sprites.get_config()
  c.data.image_size = 12
  c.model.slot_dim = 4
  c.model.decoder.channels = (4,)
  c.model.refine.mlp_hidden = (8,)
  return setup_lib.model_config(c)


def test_read_sees_the_frame_only_through_its_weights():
  """Two 3 x 3 layers see 2 px around a pixel: changing the frame 3+ px from every weighted
  pixel leaves the logits exactly as they were; a pixel next to one changes them. Scaling the
  weights does not (Eq 6 is a weighted mean)."""
  model = _tiny_model()
  net = read_capacity.make_reader(model, (4, 4), 3)
  rng = np.random.default_rng(1)
  inputs = rng.uniform(size=(1, 12, 12, 4)).astype(np.float32)
  inputs[..., 3] = 0
  inputs[0, 2:4, 2:4, 3] = 1                                      # weights on a 2 x 2 block
  params = net.init(jax.random.PRNGKey(0), inputs)
  apply = jax.jit(net.apply)
  base = np.asarray(apply(params, inputs))
  far = inputs.copy()
  far[0, 7:, 7:, :3] = rng.uniform(size=(5, 5, 3))
  np.testing.assert_array_equal(np.asarray(apply(params, far)), base)
  near = inputs.copy()
  near[0, 4, 4, :3] += 0.5
  assert np.abs(np.asarray(apply(params, near)) - base).max() > 1e-4
  scaled = inputs.copy()
  scaled[..., 3] *= 3.0
  np.testing.assert_allclose(np.asarray(apply(params, scaled)), base, rtol=1e-4, atol=1e-5)
  names = set(params)
  assert any(n.endswith("refine_mlp/~/linear_1") for n in names), names
  assert hk.data_structures.tree_size(params) > 0


def test_parse_encoder():
  model = _tiny_model()
  assert read_capacity.parse_encoder("config", model) == (tuple(model.encoder.channels),
                                                          model.encoder.kernel_size)
  assert read_capacity.parse_encoder("64x64:5", model) == ((64, 64), 5)
  for bad in ("64x64", "64x:3", "x:3"):
    with pytest.raises(app.UsageError):
      read_capacity.parse_encoder(bad, model)


def test_tiny_run_reports_each_read(tmp_path):
  c = sprites.get_config()
  c.data.update(image_size=12, num_frames=2, num_train=6, num_eval=4, data_dir=str(tmp_path))
  c.model.slot_dim = 4
  c.model.decoder.channels = (4,)
  result = read_capacity.run(c, [((4,), 3)], ["mask", "interior"], steps=3, train_sequences=6,
                             eval_sequences=4, batch_size=8, curve_every=2)
  assert result["num_eval_frames"] == 4 and result["train_sequences"] == 6
  assert [r["weights"] for r in result["reads"]] == ["mask", "interior"]
  for r in result["reads"]:
    assert r["encoder_channels"] == [4] and r["encoder_kernel"] == 3
    assert r["num_train_objects"] >= 6 * 2 * 2
    assert [p["step"] for p in r["curve"]] == [2]             # every 2 steps but the last
    for row in [r] + r["curve"]:
      assert -1 <= row["fg_ari"] <= 1 and -1 <= row["train_fg_ari"] <= 1
      assert 0 <= row["iou"] <= 1 and 0 <= row["train_iou"] <= 1
    assert np.isfinite(r["final_train_loss"])


class _WeightNet:
  """A 'read' whose logit image is +5 where an object's weights are > 0, -5 elsewhere."""

  def apply(self, params, inputs):
    del params
    return jnp.where(inputs[..., 3] > 0, 5.0, -5.0)


@pytest.mark.parametrize("weights", ["mask", "interior"])
def test_read_segmentation_by_hand(weights):
  """Frame 0: two objects drawn where their weights are: the mask weights give the segmentation
  itself (IoU 1); the interior ones give the 3 x 3 square's centre only (IoU 1/9), the bar keeps
  its whole mask (no interior). Frame 1 has no object: left as background, not scored."""
  frames = np.zeros((2, 5, 6, 3), np.float32)
  seg = np.zeros((2, 5, 6), np.int32)
  seg[0, 1:4, 1:4] = 1
  seg[0, 0, 4:6] = 2
  pred, iou = read_capacity.read_segmentation(_WeightNet(), None, frames, seg, weights)
  if weights == "mask":
    np.testing.assert_array_equal(pred, seg)
    np.testing.assert_allclose(iou, 1.0)
  else:
    expected = np.zeros_like(seg)
    expected[0, 2, 2] = 1
    expected[0, 0, 4:6] = 2
    np.testing.assert_array_equal(pred, expected)
    np.testing.assert_allclose(iou, (1 / 9 + 1) / 2)
