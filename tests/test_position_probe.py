"""Tests for experiments.position_probe: the owner slots and centroids by hand, the ridge probe on
data with a known answer, and the probe of a workdir against the objects counted in its data."""
import json

import numpy as np
import pytest

from datasets import registry
from experiments import position_probe
from test_evaluate import NUM_EVAL, T, make_workdir, tiny_config


def test_owned_objects_and_centroid_by_hand():
  """Sequence 0: object 1 on (0, 1), (1, 1), (1, 2); slot 2 wins 2 of its 3 pixels. Object 2 on
  (2, 0): slot 0. Sequence 1: no object."""
  seg = np.array([[[0, 1, 0], [0, 1, 1], [2, 0, 0]],
                  [[0, 0, 0], [0, 0, 0], [0, 0, 0]]])
  won = np.array([[[0, 1, 0], [0, 2, 2], [0, 0, 0]],
                  [[1, 1, 1], [1, 1, 1], [1, 1, 1]]])
  resp = np.moveaxis(np.eye(3)[won], -1, 1)                        # [2, K=3, 3, 3] one-hot
  assert position_probe.owned_objects(resp, seg) == [(0, 1, 2), (0, 2, 0)]
  np.testing.assert_allclose(position_probe.centroid(seg[0], 1), [2 / 3, 4 / 3])


def test_ridge_probe_recovers_a_linear_map_and_not_noise():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(400, 6))
  y = x @ rng.normal(size=(6, 2)) + 3.0
  exact = position_probe.ridge_probe(x, y, ridge=1e-8)
  np.testing.assert_allclose(exact["r2"], [1.0, 1.0], atol=1e-6)
  assert exact["mean_error"] < 1e-4 and exact["num_train"] == exact["num_test"] == 200
  noise = position_probe.ridge_probe(x, rng.normal(size=(400, 2)))
  assert max(noise["r2"]) < 0.1
  with pytest.raises(ValueError, match="rows"):
    position_probe.ridge_probe(x[:3], y[:3])


def test_probe_of_a_workdir(tmp_path):
  config = tiny_config(str(tmp_path / "data"))
  workdir = str(tmp_path / "run")
  make_workdir(workdir, config)
  # More sequences than the split has: all of them, once.
  result = position_probe.probe(workdir, num_sequences=NUM_EVAL + 2)
  source = registry.build_source(config.data, "eval")
  expected = sum(len(np.setdiff1d(np.unique(source[i]["segmentations"][T - 1]), [0]))
                 for i in range(NUM_EVAL))
  assert result["num_objects"] == expected and result["num_sequences"] == NUM_EVAL
  for name in ("same_frame", "one_step"):
    assert len(result[name]["r2"]) == 2 and np.isfinite(result[name]["mean_error"])
    assert result[name]["num_train"] + result[name]["num_test"] == expected
  json.dumps(result)   # The CLI writes it as JSON.
