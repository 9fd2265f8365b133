r"""Shape probe: does the slot that owns a sprite know the sprite's shape?

  python -m experiments.shape_probe --workdir=DIR [--num_sequences=256] [--folds=5] [--output=FILE]

Sprites data only: the shape labels come from regenerating each eval episode
(`datasets.sprites.scene_info`; an episode is a pure function of seed, split and index), checked
against the segmentation the evaluation reads. For every sprite in the last frame (T-1) of the
first --num_sequences eval sequences: its owner slot (the slot whose responsibilities win most of
its pixels, `position_probe.owned_objects`) and its shape (one of `sprites.SHAPES`; in the
generator independent of position, size and colour). A multinomial logistic regression
(standardised features) predicts the shape; accuracy on held-out sprites, stratified --folds-fold
cross-validation, mean and std over folds. Three feature sets:
  slot:    the owner slot's refined posterior mean mu (lambda^N, `apply`'s "posterior") [D];
  disc:    what a disc drawn at the sprite needs, from the ground truth: its visible area and
           centroid [3] (area depends on shape at a given radius, so this is the floor a slot
           that only knows where the sprite is and how big reaches);
  pixels:  the sprite's true mask, cropped around its centroid [(2R+1)^2]: the ceiling (small,
           clipped or occluded sprites are ambiguous).
Each row also gives the accuracy on whole sprites (visible area >= 90 % of the stamp's: neither
occluded nor clipped by the view) and the recall per shape; `chance` is the largest class's
share. A slot row near `disc` means the slots hold where and how big, not the outline (the mask
probe's reading, experiments/mask_probe.py), near `pixels` that they hold the shape and the
decoder does not draw it. Writes DIR/eval/shape_probe.json (or --output).
"""
from typing import Any, Dict, List
import warnings

from absl import app, flags
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from datasets import base
from datasets import sprites
from experiments import position_probe, setup_lib

FLAGS = flags.FLAGS
WHOLE = 0.9   # visible area / stamp area of a "whole" sprite


def crop(mask: np.ndarray, centre: np.ndarray, half: int) -> np.ndarray:
  """The [2 half + 1, 2 half + 1] window of mask [H, W] around the pixel nearest `centre`
  (y, x), zero outside the image."""
  cy, cx = np.rint(centre).astype(int)
  padded = np.pad(mask, half)
  return padded[cy:cy + 2 * half + 1, cx:cx + 2 * half + 1]


def classify(features: np.ndarray, labels: np.ndarray, folds: int = 5,
             seed: int = 0) -> Dict[str, Any]:
  """Stratified `folds`-fold CV of a standardised multinomial logistic regression.

  features [N, F], labels [N] ints -> {"accuracy", "accuracy_std" (over folds),
  "fold_accuracy" [folds], "predicted" [N] (each row predicted by the fold that held it out)}."""
  n = len(labels)
  if len(features) != n:
    raise ValueError(f"{len(features)} feature rows for {n} labels")
  if n < 2 * folds or len(np.unique(labels)) < 2:
    raise ValueError(f"need >= {2 * folds} rows of >= 2 classes for {folds}-fold CV, got {n} "
                     f"rows of {len(np.unique(labels))} classes")
  predicted = np.zeros(n, labels.dtype)
  scores = []
  splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
  with warnings.catch_warnings():
    # A class with fewer rows than folds is reported by `probe` (rare_shapes), not warned about.
    warnings.filterwarnings("ignore", message="The least populated class")
    splits = list(splitter.split(features, labels))
  for train, test in splits:
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    clf.fit(features[train], labels[train])
    predicted[test] = clf.predict(features[test])
    scores.append(float(np.mean(predicted[test] == labels[test])))
  return dict(accuracy=float(np.mean(scores)), accuracy_std=float(np.std(scores)),
              fold_accuracy=scores, predicted=predicted)


def sprite_rows(seg_last: np.ndarray, objects, data_config, num_frames: int) -> Dict[str, Any]:
  """Labels and ground-truth features of `objects` ((b, id, owner) from owned_objects over
  seg_last [B, H, W], the last of `num_frames` frames of eval sequences 0..B-1): "labels" [N]
  (index into sprites.SHAPES), "area", "stamp_area", "centroid" [N, 2], "crops" [N, (2R+1)^2]."""
  scenes = {}
  labels, area, stamp_area, centroids, masks = [], [], [], [], []
  for b, obj, _ in objects:
    if b not in scenes:
      episode, info = sprites.scene_info(data_config, "eval", b)
      if not np.array_equal(episode["segmentations"][num_frames - 1], seg_last[b]):
        raise base.DataError(
            f"shape_probe: regenerating eval episode {b} does not give the segmentation the "
            "evaluation read (data config or generator changed since the data was cached?)")
      scenes[b] = info
    info = scenes[b]
    labels.append(sprites.SHAPES.index(info["shapes"][obj - 1]))
    mask = seg_last[b] == obj
    area.append(int(mask.sum()))
    stamp_area.append(int(info["stamps"][obj - 1].sum()))
    centroids.append(position_probe.centroid(seg_last[b], obj))
    masks.append(mask)
  half = max((s.shape[0] - 1) // 2 for info in scenes.values() for s in info["stamps"])
  crops = [crop(m, c, half).reshape(-1) for m, c in zip(masks, centroids)]
  return dict(labels=np.array(labels), area=np.array(area), stamp_area=np.array(stamp_area),
              centroid=np.array(centroids), crops=np.array(crops, np.float64), half=half)


def probe(workdir: str, num_sequences: int = 256, folds: int = 5) -> Dict[str, Any]:
  """Runs the probe on the latest checkpoint of `workdir` (module docstring)."""
  name = setup_lib.config_for_workdir(workdir).data.get("name")
  if name != "sprites":      # before running the model
    raise base.DataError(f"shape_probe: needs sprites data (shape labels), got {name!r}")
  lam, maps, seg, step, config = position_probe.slots_and_masks(
      workdir, "eval", num_sequences, what="shape_probe")
  mu = lam[:, -1, :, :config.model.slot_dim]                     # [B, K, D] last frame
  result = probe_slots(mu, maps["responsibilities"][:, -1], seg[:, -1], config.data,
                       seg.shape[1], folds)
  return dict(workdir=workdir, step=step, **result)


def probe_slots(mu: np.ndarray, resp: np.ndarray, seg_last: np.ndarray, data_config,
                num_frames: int, folds: int = 5) -> Dict[str, Any]:
  """The probe's rows from slot means mu [B, K, D], responsibilities resp [B, K, H, W] (they
  pick each sprite's owner slot) and the segmentation seg_last [B, H, W] of the last of
  `num_frames` frames of eval sequences 0..B-1."""
  objects = position_probe.owned_objects(resp, seg_last)
  rows = sprite_rows(seg_last, objects, data_config, num_frames)
  labels = rows["labels"]
  whole = rows["area"] >= WHOLE * rows["stamp_area"]
  features = {
      "slot": np.stack([mu[b, k] for b, _, k in objects]),
      "disc": np.concatenate([rows["area"][:, None], rows["centroid"]], 1).astype(np.float64),
      "pixels": rows["crops"]}
  result: Dict[str, Any] = dict(
      num_sequences=int(seg_last.shape[0]), num_sprites=len(labels),
      num_whole=int(whole.sum()), shapes=list(sprites.SHAPES), folds=folds,
      counts=np.bincount(labels, minlength=len(sprites.SHAPES)).tolist(),
      chance=float(np.bincount(labels).max() / len(labels)),
      chance_whole=float(np.bincount(labels[whole]).max() / max(whole.sum(), 1)))
  # Shapes with fewer sprites than folds: some test folds hold none of them.
  result["rare_shapes"] = [s for s, c in zip(sprites.SHAPES, result["counts"]) if 0 < c < folds]
  for name, x in features.items():
    r = classify(x, labels, folds)
    predicted = r.pop("predicted")
    correct = predicted == labels
    r["accuracy_whole"] = float(correct[whole].mean()) if whole.any() else float("nan")
    r["recall_per_shape"] = {s: float(correct[labels == i].mean())
                             for i, s in enumerate(sprites.SHAPES) if (labels == i).any()}
    result[name] = r
  return result


def print_result(result: Dict[str, Any]) -> None:
  print(f"step {result['step']}: {result['num_sprites']} sprites ({result['num_whole']} whole) "
        f"in {result['num_sequences']} eval sequences; chance {result['chance']:.3f} "
        f"(whole {result['chance_whole']:.3f})")
  if result["rare_shapes"]:
    print(f"  (fewer sprites than {result['folds']} folds: {', '.join(result['rare_shapes'])})")
  for name in ("slot", "disc", "pixels"):
    r = result[name]
    recall = ", ".join(f"{s} {v:.2f}" for s, v in r["recall_per_shape"].items())
    print(f"  {name:7s} accuracy {r['accuracy']:.3f} +- {r['accuracy_std']:.3f} | whole "
          f"{r['accuracy_whole']:.3f} | recall: {recall}")


def main(argv: List[str]):
  del argv
  result = probe(FLAGS.workdir, FLAGS.num_sequences, FLAGS.folds)
  print_result(result)
  print(f"Wrote {position_probe.write_result(result, FLAGS.workdir, FLAGS.output, 'shape_probe.json')}")


if __name__ == "__main__":
  flags.DEFINE_string("workdir", None, "Training workdir (sprites data).")
  flags.DEFINE_integer("num_sequences", 256, "Eval sequences (the first ones, in order).")
  flags.DEFINE_integer("folds", 5, "Cross-validation folds.")
  flags.DEFINE_string("output", None, "Output JSON (default WORKDIR/eval/shape_probe.json).")
  flags.mark_flags_as_required(["workdir"])
  app.run(main)
