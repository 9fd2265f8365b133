"""Tests for experiments.mask_probe: the probe's segmentation by hand (a decoder that draws
known logits), the owners' latents and masks by hand, and the probe of a workdir against the
objects counted in its data."""
import json

import jax.numpy as jnp
import numpy as np

from datasets import registry
from experiments import mask_probe
from test_evaluate import NUM_EVAL, T, make_workdir, tiny_config


class _TableNet:
  """A 'decoder' whose logits for z are table[int(z[0])]: +5 where the table draws, -5 elsewhere."""

  def __init__(self, table):
    self.table = jnp.asarray(np.where(table, 5.0, -5.0))

  def apply(self, params, z):
    del params
    return self.table[z[:, 0].astype(jnp.int32)]


def test_probe_segmentation_by_hand():
  """Frame 0: objects 1 and 2 owned by slots 0 and 1, decoded exactly -> the segmentation itself,
  IoU 1. Frame 1: objects 1 and 2 share owner slot 1, whose latent draws both -> both go to the
  first object; IoU of each object's decoded mask (both objects' pixels) with the object: 1/2."""
  seg = np.array([[[1, 1, 0], [0, 0, 0], [0, 2, 2]],
                  [[1, 0, 0], [0, 0, 0], [0, 0, 2]]])
  table = np.stack([seg[0] == 1, seg[0] == 2, seg[1] > 0])       # what latent 0, 1, 2 draw
  mu = np.zeros((2, 2, 1))
  mu[0, 0, 0], mu[0, 1, 0], mu[1, 1, 0] = 0, 1, 2
  objects = [(0, 1, 0), (0, 2, 1), (1, 1, 1), (1, 2, 1)]
  pred, iou = mask_probe.probe_segmentation(_TableNet(table), None, mu, seg, objects)
  np.testing.assert_array_equal(pred[0], seg[0])
  np.testing.assert_array_equal(pred[1], np.where(seg[1] > 0, 1, 0))
  np.testing.assert_allclose(iou, (1 + 1 + 0.5 + 0.5) / 4)


def test_owned_latents_and_masks_by_hand():
  seg = np.array([[[0, 1], [2, 2]]])
  resp = np.zeros((1, 3, 2, 2))
  resp[0, 2, 0, 1] = 1.0                                          # object 1 -> slot 2
  resp[0, 0, 1, :] = 1.0                                          # object 2 -> slot 0
  mu = np.arange(6.0).reshape(1, 3, 2)
  z, masks, objects = mask_probe.owned(mu, resp, seg)
  assert objects == [(0, 1, 2), (0, 2, 0)]
  np.testing.assert_array_equal(z, [[4.0, 5.0], [0.0, 1.0]])
  np.testing.assert_array_equal(masks, [[[0, 1], [0, 0]], [[0, 0], [1, 1]]])
  assert masks.dtype == np.float32


def test_probe_of_a_workdir(tmp_path):
  config = tiny_config(str(tmp_path / "data"))
  workdir = str(tmp_path / "run")
  make_workdir(workdir, config)
  # chunk 4: the 6 eval sequences run as 4 + 2 (none left out).
  result = mask_probe.run(workdir, train_sequences=4, eval_sequences=NUM_EVAL, steps=3,
                          curve_every=2, batch_size=8, chunk=4)
  source = registry.build_source(config.data, "train")
  expected = sum(len(np.setdiff1d(np.unique(source[i]["segmentations"][t]), [0]))
                 for i in range(4) for t in range(T))
  assert result["num_train_objects"] == expected and result["num_eval_frames"] == NUM_EVAL
  assert result["step"] > 0 and result["decoder"]["channels"] == [8]
  assert [c["step"] for c in result["curve"]] == [2]              # every 2 steps but the last
  for row in [result] + result["curve"]:
    assert -1 <= row["fg_ari"] <= 1 and -1 <= row["train_fg_ari"] <= 1
    assert 0 <= row["iou"] <= 1 and 0 <= row["train_iou"] <= 1
  json.dumps(result)   # The CLI writes it as JSON.
