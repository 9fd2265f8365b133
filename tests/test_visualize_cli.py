"""Tests for experiments.visualize: every --what writes non-empty PNGs (and GIFs) whose pixel
sizes follow parts_jax.visualize's grid layout, with content checks where they are exact."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from datasets import registry
from experiments import visualize
from parts_jax import visualize as vis
from test_evaluate import K, T, make_workdir, tiny_config

SIZE = 16
TILE = SIZE * vis.upscale_factor(SIZE, SIZE)   # 16 x 16 frames are drawn as 96 x 96 tiles.
PRIOR_STEPS = T   # As long as the sequence: the fixed-prior run reuses its compiled apply.
# What experiments.train logs (metrics.jsonl): training rows, and held-out rows with the headline
# and the diagnostics (one diagnostic missing at the first evaluation, as in a run resumed
# across the version that added it).
LOG = [{"step": 20, "train/loss": 3.0},
       {"step": 50, "train/loss": 2.0, "eval/fg_ari": 0.1,
        "eval_diagnostics/fg_ari_responsibilities": 0.6},
       {"step": 70, "train/loss": 1.5},
       {"step": 100, "train/loss": 1.0, "eval/fg_ari": 0.25,
        "eval_diagnostics/fg_ari_responsibilities": 0.8,
        "eval_diagnostics/fg_in_background_slot": 0.7}]


def _grid_size(rows, cols):
  """(height, width) of a labelled grid, from the layout in parts_jax/visualize.py."""
  return (vis.LABEL_HEIGHT + rows * TILE + (rows + 1) * vis.PAD,
          vis.LABEL_WIDTH + cols * TILE + (cols + 1) * vis.PAD)


def _tile(image, row, col):
  y = vis.LABEL_HEIGHT + vis.PAD + row * (TILE + vis.PAD)
  x = vis.LABEL_WIDTH + vis.PAD + col * (TILE + vis.PAD)
  return image[y:y + TILE, x:x + TILE]


def _up(frame):
  return frame.repeat(TILE // SIZE, 0).repeat(TILE // SIZE, 1)


def _read(path, expected_hw):
  assert os.path.getsize(path) > 0, path
  with Image.open(path) as im:
    assert (im.height, im.width) == expected_hw, path
    return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="module", name="runs")
def _runs(tmp_path_factory):
  """Two workdirs: fixed prior (this) and predictive prior (other), same data."""
  root = tmp_path_factory.mktemp("visualize")
  config = tiny_config(str(root / "data"))
  make_workdir(str(root / "fixed"), config)
  with open(root / "fixed" / "metrics.jsonl", "w") as f:
    f.writelines(json.dumps(row) + "\n" for row in LOG)
  config.model.predictive_prior = True
  make_workdir(str(root / "predictive"), config)
  frames = registry.build_source(config.data, "eval")[0]["video"][:T]
  return str(root / "fixed"), str(root / "predictive"), frames


@pytest.fixture(scope="module", name="paths")
def _paths(runs):
  """All figures of eval sequence 0, written once (one compile per function)."""
  this, other, _ = runs
  paths = visualize.make_figures("all", this, other_workdir=other, rollout_steps=3,
                                 prior_steps=PRIOR_STEPS)
  return {os.path.basename(p): p for p in paths}


def test_all_writes_every_figure(paths, runs):
  assert sorted(paths) == sorted([
      "segmentation_seq0.png", "segmentation_seq0.gif", "attention_seq0.png",
      "traversal_seq0.png", "rollout_seq0.png", "rollout_seq0.gif", "prior_curves_seq0.png",
      "prior_curves_seq0.json", "prior_segmentation_this_seq0.png",
      "prior_segmentation_other_seq0.png", "fg_ari_curves.png", "fg_ari_curves.json"])
  assert all(os.path.dirname(p) == os.path.join(runs[0], "figures") for p in paths.values())


def test_curves(paths, runs):
  """The curves are the logged values, each at the steps that logged it."""
  _read(paths["fg_ari_curves.png"], (350, 600))
  with open(paths["fg_ari_curves.json"]) as f:
    got = json.load(f)
  assert got["last_step"] == 100
  assert got["curves"] == {
      "eval/fg_ari": dict(steps=[50, 100], values=[0.1, 0.25]),
      "eval_diagnostics/fg_ari_responsibilities": dict(steps=[50, 100], values=[0.6, 0.8]),
      "eval_diagnostics/fg_in_background_slot": dict(steps=[100], values=[0.7])}
  # A run without held-out rows (the predictive workdir has no log): "all" leaves the figure
  # out, asking for it says why.
  with pytest.raises(ValueError, match="no eval/fg_ari rows"):
    visualize.make_figures("curves", runs[1])


def test_segmentation(paths, runs):
  frames = runs[2]
  image = _read(paths["segmentation_seq0.png"], _grid_size(rows=4 + K, cols=T))
  for t in range(T):   # Row 0 is the input frame, nearest-neighbour upscaled.
    np.testing.assert_array_equal(_tile(image, 0, t), _up(frames[t]))
  with Image.open(paths["segmentation_seq0.gif"]) as gif:
    # input | recon | pred seg | true seg, each 16 x 16, upscaled x2 to reach 96 pixels wide.
    assert (gif.height, gif.width) == (SIZE * 2, 4 * SIZE * 2)
    assert 1 <= gif.n_frames <= T


def test_attention(paths):
  _read(paths["attention_seq0.png"], _grid_size(rows=1 + K, cols=T))


def test_traversal(paths):
  # Defaults: 3 dims in one slot + the same 3 dims in all slots, 9 values in [-2, 2].
  image = _read(paths["traversal_seq0.png"], _grid_size(rows=6, cols=9))
  center = [_tile(image, r, 4) for r in range(6)]   # Value 0: the unperturbed posterior mean.
  for tile in center[1:]:
    np.testing.assert_array_equal(tile, center[0])
  # Off the centre the latent moves: every row changes the decoded frame somewhere, and -2 and
  # +2 decode to different frames.
  for r in range(6):
    assert any(not np.array_equal(_tile(image, r, c), center[0]) for c in range(9) if c != 4), r
    assert not np.array_equal(_tile(image, r, 0), _tile(image, r, 8)), r


def test_traversal_latents_hand_computed():
  mu = np.arange(6, dtype=np.float32).reshape(3, 2)   # K = 3 slots, D = 2 dims.
  z = visualize.traversal_latents(mu, slot=1, dims=[0], all_slot_dims=[1], values=[-1.0, 2.0])
  assert z.shape == (2, 2, 3, 2)                      # [rows, values, K, D]
  # Row 0: dim 0 of slot 1 only.
  np.testing.assert_array_equal(z[0, 0], [[0, 1], [1, 3], [4, 5]])
  np.testing.assert_array_equal(z[0, 1], [[0, 1], [4, 3], [4, 5]])
  # Row 1: dim 1 of every slot.
  np.testing.assert_array_equal(z[1, 0], [[0, 0], [2, 2], [4, 4]])
  np.testing.assert_array_equal(z[1, 1], [[0, 3], [2, 5], [4, 7]])
  np.testing.assert_array_equal(mu, np.arange(6).reshape(3, 2))   # Not modified in place.


def test_rollout(paths, runs):
  # Burn-in min(4, T - 1) = 2, 3 predicted steps: 5 columns; t = 3, 4 have no ground truth.
  image = _read(paths["rollout_seq0.png"], _grid_size(rows=3, cols=5))
  np.testing.assert_array_equal(_tile(image, 0, 1), _up(runs[2][1]))
  assert (_tile(image, 0, 3) == 255).all() and (_tile(image, 0, 4) == 255).all()
  with Image.open(paths["rollout_seq0.gif"]) as gif:
    assert (gif.height, gif.width) == (SIZE * 2, 3 * SIZE * 2)


def test_prior(paths):
  _read(paths["prior_curves_seq0.png"], (300, 800))   # figsize (8, 3) at 100 dpi.
  with open(paths["prior_curves_seq0.json"]) as f:
    curves = json.load(f)
  assert curves["shown_steps"] == [0, 1]      # PRIOR_SHOWN_STEPS below PRIOR_STEPS = 3.
  names = sorted(curves["curves"])
  assert names == ["fixed prior (fixed)", "predictive prior (predictive)"]
  for curve in curves["curves"].values():
    assert len(curve["kl"]) == len(curve["mse"]) == PRIOR_STEPS
    assert np.all(np.isfinite(curve["kl"])) and np.all(np.isfinite(curve["mse"]))
  # The predictive prior at step 0 is the predictor's output on zeros; the fixed prior is N(0,1):
  # different KLs, so the two curves come from two different models.
  assert curves["curves"][names[0]]["kl"] != curves["curves"][names[1]]["kl"]
  for which in ("this", "other"):
    _read(paths[f"prior_segmentation_{which}_seq0.png"], _grid_size(rows=3 + K, cols=2))


def test_bad_requests(runs):
  with pytest.raises(ValueError, match="--other_workdir"):
    visualize.make_figures("prior", runs[0])
  with pytest.raises(ValueError, match="valid"):
    visualize.make_figures("nothing", runs[0])
  with pytest.raises(ValueError, match="episodes"):
    visualize.make_figures("segmentation", runs[0], sequence=1000)
