"""Tests for experiments.slot_information: the slot roles by hand, the KL split against the
closed form written out in NumPy, and the read-out of a workdir against the model's own KL."""
import json

import numpy as np

from experiments import position_probe, slot_information
from test_evaluate import NUM_EVAL, T, make_workdir, tiny_config


def one_hot_resp(won: np.ndarray, k: int) -> np.ndarray:
  return np.moveaxis(np.eye(k)[won], -1, 1)                        # [N, K, H, W]


def test_slot_roles_by_hand():
  """Frame 0: object 1 won by slot 2, object 2 by slot 0, background mostly by slot 1, slot 3
  spare. Frame 1: no object; slot 3 wins the background."""
  seg = np.array([[[0, 1, 0], [0, 1, 1], [2, 0, 0]],
                  [[0, 0, 0], [0, 0, 0], [0, 0, 0]]])
  won = np.array([[[1, 2, 1], [1, 2, 2], [0, 3, 1]],
                  [[3, 3, 3], [3, 3, 3], [0, 1, 2]]])
  roles = slot_information.slot_roles(one_hot_resp(won, 4), seg)
  np.testing.assert_array_equal(roles, [[1, 2, 1, 0], [0, 0, 0, 2]])


def test_border_and_coverage_by_hand():
  """A 3 x 3 square object in a 5 x 5 frame: 8 border pixels around 1 interior pixel. Slot 1
  owns it (responsibilities); the scored map gives the owner the centre and 2 border pixels."""
  seg = np.zeros((1, 5, 5), np.int64)
  seg[0, 1:4, 1:4] = 1
  rim = slot_information.border(seg[0] == 1)
  assert rim.sum() == 8 and not rim[2, 2] and rim[1, 1]
  resp = one_hot_resp(np.where(seg == 1, 1, 0), 3)
  won = np.zeros((1, 5, 5), np.int64)
  won[0, 2, 2] = won[0, 1, 1] = won[0, 3, 2] = 1
  objects = position_probe.owned_objects(resp, seg)
  assert objects == [(0, 1, 1)]
  c = slot_information.coverage(one_hot_resp(won, 3), seg, objects)
  assert c == dict(border=2 / 8, interior=1.0, num_objects=1)
  # An object at the image edge: off the image counts as off the object.
  assert slot_information.border(np.ones((2, 2), bool)).all()


def test_kl_by_role_matches_the_closed_form():
  rng = np.random.default_rng(0)
  n, k, d = 3, 4, 5
  mu, log_sigma = rng.normal(size=(n, k, d)), 0.5 * rng.normal(size=(n, k, d))
  lam = np.concatenate([mu, log_sigma], axis=-1).astype(np.float32)
  # KL(N(mu, sigma^2) || N(0, 1)) per dimension, written out independently of the library.
  kl = 0.5 * (mu ** 2 + np.exp(2 * log_sigma) - 1.0) - log_sigma   # [N, K, D]
  seg = np.zeros((n, 2, 2), np.int64)
  seg[:, 0, 0] = 1                                                 # one object per frame
  won = np.zeros((n, 2, 2), np.int64)
  won[:, 0, 0] = 3                                                 # slot 3 owns it
  won[:, 1, :] = 1                                                 # slot 1 has most background
  result = slot_information.kl_by_role(lam, one_hot_resp(won, k), seg)
  np.testing.assert_allclose(result["kl_per_frame"], kl.sum(axis=(1, 2)).mean(), rtol=1e-5)
  for name, slots in (("object", [3]), ("background", [1]), ("spare", [0, 2])):
    chosen = kl[:, slots].reshape(-1, d)
    r = result[name]
    assert r["num_slots"] == n * len(slots)
    np.testing.assert_allclose(r["kl_per_slot"], chosen.sum(axis=1).mean(), rtol=1e-5)
    np.testing.assert_allclose(r["kl_per_dim_sorted"],
                               (-np.sort(-chosen, axis=1)).mean(axis=0), atol=1e-3)
    np.testing.assert_allclose(r["active_dims"], (chosen > 0.5).sum(axis=1).mean())


def test_measure_a_workdir(tmp_path):
  config = tiny_config(str(tmp_path / "data"))
  workdir = str(tmp_path / "run")
  make_workdir(workdir, config)
  result = slot_information.measure(workdir, num_sequences=NUM_EVAL)
  lam, maps, seg, _, _ = position_probe.slots_and_masks(
      workdir, "eval", NUM_EVAL, maps=("responsibilities", "attention"))
  assert maps["attention"].shape == maps["responsibilities"].shape == lam.shape[:3] + seg.shape[2:]
  assert result["num_sequences"] == NUM_EVAL
  counted = sum(result[r]["num_slots"] for r in ("object", "background", "spare"))
  assert counted == NUM_EVAL * T * lam.shape[2]
  d = lam.shape[-1] // 2
  mu, log_sigma = lam[..., :d].astype(np.float64), lam[..., d:].astype(np.float64)
  kl = 0.5 * (mu ** 2 + np.exp(2 * log_sigma) - 1.0) - log_sigma
  np.testing.assert_allclose(result["kl_per_frame"], kl.sum(axis=(2, 3)).mean(), rtol=1e-4)
  for name in ("attention", "masks"):
    c = result["owner_wins"][name]
    assert c["num_objects"] > 0 and 0.0 <= c["border"] <= 1.0, c
  json.dumps(result)   # The CLI writes it as JSON.
