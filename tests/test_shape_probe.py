"""Tests for experiments.shape_probe: the crop by hand, the classifier on data with a known answer,
the labels against the generator, and a workdir end to end."""
import json

import numpy as np
import pytest

from datasets import base, registry, sprites
from experiments import position_probe, shape_probe
from test_evaluate import NUM_EVAL, T, make_workdir, tiny_config


def test_crop_by_hand():
  mask = np.zeros((5, 5), bool)
  mask[0, 0] = mask[1, 1] = mask[4, 4] = True
  # Centred on (0.4, 0.6) -> pixel (0, 1); half 1: rows -1..1, cols 0..2 (row -1 is outside).
  np.testing.assert_array_equal(shape_probe.crop(mask, np.array([0.4, 0.6]), 1),
                                [[0, 0, 0], [1, 0, 0], [0, 1, 0]])
  np.testing.assert_array_equal(shape_probe.crop(mask, np.array([4.0, 4.0]), 1),
                                [[0, 0, 0], [0, 1, 0], [0, 0, 0]])


def test_classify_separable_and_noise():
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(3), 60)
  separable = np.eye(3)[labels] * 5.0 + 0.1 * rng.normal(size=(180, 3))
  r = shape_probe.classify(separable, labels, folds=5)
  assert r["accuracy"] == 1.0 and len(r["fold_accuracy"]) == 5
  np.testing.assert_array_equal(r["predicted"], labels)
  noise = shape_probe.classify(rng.normal(size=(180, 3)), labels, folds=5)
  assert noise["accuracy"] < 0.55   # chance 1/3
  assert abs(np.mean(noise["predicted"] == labels) - noise["accuracy"]) < 1e-9  # equal folds
  with pytest.raises(ValueError, match="rows"):
    shape_probe.classify(separable[:8], labels[:8], folds=5)
  with pytest.raises(ValueError, match="classes"):
    shape_probe.classify(separable, np.zeros(180, int), folds=5)


def test_labels_match_the_generator(tmp_path):
  config = tiny_config(str(tmp_path / "data"))
  source = registry.build_source(config.data, "eval")
  seg_last = np.stack([source[i]["segmentations"][T - 1] for i in range(NUM_EVAL)])
  objects = [(b, int(o), 0) for b in range(NUM_EVAL) for o in np.unique(seg_last[b]) if o > 0]
  rows = shape_probe.sprite_rows(seg_last, objects, config.data, T)
  for i, (b, obj, _) in enumerate(objects):
    # Independently: the generator's own random stream for eval episode b.
    _, info = sprites.generate_episode(
        np.random.default_rng([config.data.seed, sprites.SPLIT_IDS["eval"], b]),
        **sprites.episode_params(config.data), return_info=True)
    assert sprites.SHAPES[rows["labels"][i]] == info["shapes"][obj - 1]
    assert rows["area"][i] == np.sum(seg_last[b] == obj) <= rows["stamp_area"][i]
    assert rows["crops"][i].sum() <= rows["area"][i]            # the crop holds only the sprite
  assert rows["crops"].sum() >= 0.9 * rows["area"].sum()        # and (nearly) all of it
  assert rows["crops"].shape == (len(objects), (2 * rows["half"] + 1) ** 2)
  # The data the evaluation read is not what the config regenerates: a clear error.
  config.data.seed = config.data.seed + 1
  with pytest.raises(base.DataError, match="regenerating"):
    shape_probe.sprite_rows(seg_last, objects, config.data, T)


def test_probe_of_a_workdir(tmp_path):
  config = tiny_config(str(tmp_path / "data"))
  workdir = str(tmp_path / "run")
  make_workdir(workdir, config)
  result = shape_probe.probe(workdir, num_sequences=NUM_EVAL, folds=2)
  _, maps, seg, _, _ = position_probe.slots_and_masks(workdir, "eval", NUM_EVAL)
  expected = len(position_probe.owned_objects(maps["responsibilities"][:, -1], seg[:, -1]))
  assert result["num_sprites"] == expected == sum(result["counts"])
  for name in ("slot", "disc", "pixels"):
    assert 0.0 <= result[name]["accuracy"] <= 1.0 and len(result[name]["fold_accuracy"]) == 2
  assert max(result["counts"]) / expected == pytest.approx(result["chance"])
  assert result["rare_shapes"] == [s for s, c in zip(result["shapes"], result["counts"])
                                   if 0 < c < 2]
  json.dumps(result)   # The CLI writes it as JSON.
