r"""Study run 26: where the shipped checkpoint's headline FG-ARI loses to 1 (no training).

  python docs/study/run26/error_budget.py --workdir=checkpoints/sprites \
      --output=docs/study/run26/error_budget.json

Runs the evaluation's own forward (`evaluator.make_eval_step(keep_outputs=True)`, the run's
config, its checkpoint averaging, the same noise keys as `experiments.evaluate`) on the first
eval.num_sequences eval sequences and takes the headline segmentation of the last frame (the
argmax over K of the decoder masks the headline scores, as `experiments.evaluate`). Each ground-truth object gets its *owner*, the
slot holding most of its pixels; the *background slot* is the one holding most background pixels
(`metrics.foreground_in_background_slot`). Every foreground pixel is then one of:

  right     its predicted slot is its object's owner, and no other object has that owner;
  merged    its predicted slot is its object's owner, which also owns another object;
  missed    its object's owner is the background slot (the object is left to the background);
  to_bg     its predicted slot is the background slot, its object has another owner;
  to_other  another object's owner (a neighbour's mask covers it);
  stray     a slot that owns no object in the frame;

and objects whose owner owns another object too are *merged*. FG-ARI is recomputed (with
scikit-learn's adjusted_rand_score on the foreground pixels, checked against the headline) after
oracle repairs, each alone, the two of the background slot together ("background": missed and
to_bg) and all four ("all"): missed pixels relabelled to a label of their object's own, to_bg /
to_other / stray pixels to their object's owner. What is
left after repairing all four is the cost of merges. Also: the headline per number of objects in
the frame, and the missed and merged fractions of the objects by quartile of visible area (pixels
in the last frame), of colour distance to the frame's mean background colour, and, for the
smallest quartile, with and without a pixel on the frame's edge; and, as a diagnostic, the
argmax of the responsibilities p(k | x_i) of the same masks and components under other sigma_x.
"""
import json
import math
import os
import sys

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np
from sklearn.metrics import adjusted_rand_score

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))))
from datasets import registry  # pylint: disable=g-import-not-at-top,wrong-import-position
from benchmarks import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from experiments import evaluator, setup_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from experiments.configs import sprites  # pylint: disable=g-import-not-at-top,wrong-import-position
from parts_jax import likelihood, metrics  # pylint: disable=g-import-not-at-top,wrong-import-position

flags.DEFINE_string("workdir", "checkpoints/sprites", "Training workdir (its config.json).")
flags.DEFINE_string("output", None, "JSON to write (default: print only).")
FLAGS = flags.FLAGS
REPAIRS = ("missed", "to_bg", "to_other", "stray")


def last_frames(workdir: str, every_frame: bool = False):
  """(frames [N, H, W, 3], segs [N, H, W], masks [N, K, H, W], components [N, K, H, W, 3],
  headline fg_ari [N], has_fg [N], step, averaged, sigma_x); with every_frame, every frame of
  the sequences instead of the last ([N, T, ...]: run 28's tracking.py)."""
  config = setup_lib.config_for_workdir(workdir, sprites.get_config(), {})
  ec = config.eval
  _, replicated, data_sharding = setup_lib.mesh_shardings()
  it = registry.get_iterator(config.data, "eval", ec.batch_size, seed=ec.seed, shuffle=False)
  try:
    num = min(ec.num_sequences, len(it.source))
    batch = next(it)
    model, params, step = setup_lib.restore_model(config, workdir, batch, ec.num_slots,
                                                  sharding=replicated)
    eval_step = evaluator.make_eval_step(model, ec.max_ids, keep_outputs=True,
                                         in_shardings=(replicated, replicated, data_sharding))
    key = jax.random.PRNGKey(ec.seed)
    t = slice(None) if every_frame else -1
    frames, segs, masks, comps, fg_ari, has_fg = [], [], [], [], [], []
    for i in range(math.ceil(num / ec.batch_size)):
      if i:
        batch = next(it)
      out = setup_lib.host(eval_step(params, jax.random.fold_in(key, i),
                                     setup_lib.global_batch(batch, data_sharding)))
      keep = min(ec.batch_size, num - i * ec.batch_size)
      frames.append(np.asarray(batch["video"])[:keep, t])
      segs.append(np.asarray(batch["segmentations"])[:keep, t])
      masks.append(out["masks"][:keep, t])
      comps.append(out["components"][:keep, t])
      fg_ari.append(out["fg_ari"][:keep, t])
      has_fg.append(out["has_fg"][:keep, t])
      print(f"batch {i + 1}: {keep} sequences", flush=True)
  finally:
    it.close()
  return (np.concatenate(frames), np.concatenate(segs), np.concatenate(masks),
          np.concatenate(comps), np.concatenate(fg_ari), np.concatenate(has_fg), step,
          ec.get("average_checkpoints", 1), float(config.model.sigma_x))


def fg_ari(seg: np.ndarray, pred: np.ndarray) -> float:
  """scikit-learn's ARI on the foreground pixels of one frame."""
  fg = seg > 0
  return float(adjusted_rand_score(seg[fg], pred[fg]))


CLASSES = ("right", "merged", "missed", "to_bg", "to_other", "stray")


def classify(frame: np.ndarray, seg: np.ndarray, pred: np.ndarray, k: int):
  """The class of every foreground pixel (module docstring; "" elsewhere) [H, W], the objects,
  their owners, the background slot and per object (area, colour distance to the background,
  missed, merged, at_border) of one frame (frame [H, W, 3], seg, pred [H, W])."""
  objects = [o for o in np.unique(seg) if o > 0]
  bg = seg == 0
  bg_slot = int(np.argmax(np.bincount(pred[bg], minlength=k))) if bg.any() else -1
  owner = {o: int(np.argmax(np.bincount(pred[seg == o], minlength=k))) for o in objects}
  owners = list(owner.values())
  merged = [o for o in objects if owners.count(owner[o]) > 1 and owner[o] != bg_slot]
  cls = np.full(seg.shape, "", dtype=object)
  for o in objects:
    px = seg == o
    p = pred[px]
    if owner[o] == bg_slot:   # left to the background slot: all its pixels are "missed"
      cls[px] = "missed"
      continue
    cls[px] = np.where(p == owner[o], "merged" if o in merged else "right",
                       np.where(p == bg_slot, "to_bg",
                                np.where(np.isin(p, owners), "to_other", "stray")))
  bg_colour = frame[bg].mean(axis=0) if bg.any() else np.zeros(3)
  per_object = [dict(area=int(np.sum(seg == o)),
                     colour_distance=float(np.linalg.norm(frame[seg == o].mean(axis=0)
                                                          - bg_colour)),
                     missed=owner[o] == bg_slot, merged=o in merged,
                     at_border=bool(np.any(seg[[0, -1], :] == o) or np.any(seg[:, [0, -1]] == o)))
                for o in objects]
  return cls, objects, owner, bg_slot, per_object


def analyse_frame(frame: np.ndarray, seg: np.ndarray, pred: np.ndarray, k: int):
  """`classify`, the pixel counts per class and the repaired FG-ARIs of one frame."""
  cls, objects, owner, bg_slot, per_object = classify(frame, seg, pred, k)

  def repaired(which):
    out = pred.copy()
    for o in objects:
      px = (seg == o) & np.isin(cls, which)
      out[px] = k + o if owner[o] == bg_slot else owner[o]   # k + o: a label of its own
    return fg_ari(seg, out)

  result = dict(fg_ari=fg_ari(seg, pred), num_objects=len(objects), per_object=per_object,
                counts={name: int(np.sum(cls == name)) for name in CLASSES})
  for name in REPAIRS:
    result[f"fg_ari_{name}_repaired"] = repaired([name])
  result["fg_ari_background_repaired"] = repaired(["missed", "to_bg"])
  result["fg_ari_all_repaired"] = repaired(list(REPAIRS))
  return result


def responsibilities_by_sigma(video, segs, masks, comps, has_fg, trained_sigma_x):
  """Diagnostic: FG-ARI and missed sprites of argmax_k p(k | x_i) computed from the same decoded
  masks and components (Eq 2) with other sigma_x values (the trained one first; only this
  argmax changes, not the inference)."""
  log_masks = np.log(np.maximum(masks, 1e-30))
  k = masks.shape[1]
  rows = {}
  for sigma in (trained_sigma_x, 1.0, 0.3, 0.1, 0.05):
    preds = np.asarray(jnp.argmax(likelihood.log_responsibilities(
        jnp.asarray(video), jnp.asarray(comps), jnp.asarray(log_masks), sigma), axis=1))
    scored = [(fg_ari(s, p), classify(v, s, p, k)[4])
              for v, s, p, h in zip(video, segs, preds, has_fg) if h]
    rows[f"{sigma:g}"] = dict(
        fg_ari=float(np.mean([a for a, _ in scored])),
        missed_object_fraction=float(np.mean([o["missed"] for _, objs in scored
                                              for o in objs])))
  return rows


def main(argv):
  del argv
  video, segs, masks, comps, headline, has_fg, step, averaged, sigma_x = last_frames(
      FLAGS.workdir)
  k = masks.shape[1]
  preds = np.argmax(masks, axis=1)
  frames = [analyse_frame(v, s, p, k) for v, s, p, h in zip(video, segs, preds, has_fg) if h]
  mine = np.array([f["fg_ari"] for f in frames])
  # The recomputation is the headline: the same frames, the same argmax.
  np.testing.assert_allclose(mine, headline[has_fg], atol=1e-4)
  total = {name: sum(f["counts"][name] for f in frames) for name in CLASSES}
  num_fg = sum(total.values())
  by_n = {}
  for n in sorted({f["num_objects"] for f in frames}):
    sel = [f for f in frames if f["num_objects"] == n]
    by_n[str(n)] = dict(frames=len(sel), fg_ari=float(np.mean([f["fg_ari"] for f in sel])),
                        fg_ari_all_repaired=float(np.mean([f["fg_ari_all_repaired"]
                                                           for f in sel])))
  objs = [o for f in frames for o in f["per_object"]]
  smallest = np.quantile([o["area"] for o in objs], 0.25)
  summary = dict(
      workdir=os.path.abspath(FLAGS.workdir), step=int(step), average_checkpoints=int(averaged),
      num_slots=int(k), frames_scored=len(frames),
      fg_ari=float(np.mean(mine)),
      fg_ari_headline_check=float(metrics.summarize_fg_ari(headline[:, None], has_fg[:, None])["fg_ari"]),
      pixel_fractions={name: total[name] / num_fg for name in total},
      objects=len(objs),
      missed_object_fraction=float(np.mean([o["missed"] for o in objs])),
      merged_object_fraction=float(np.mean([o["merged"] for o in objs])),
      frames_with_a_merge=float(np.mean([any(o["merged"] for o in f["per_object"])
                                         for f in frames])),
      repaired_fg_ari={name: float(np.mean([f[f"fg_ari_{name}_repaired"] for f in frames]))
                       for name in REPAIRS + ("background", "all")},
      by_num_objects=by_n,
      responsibilities_at_sigma_x=responsibilities_by_sigma(video, segs, masks, comps, has_fg,
                                                            sigma_x),
      by_area_quartile=by_quartile(objs, "area"),
      by_colour_distance_quartile=by_quartile(objs, "colour_distance"),
      small_objects_at_border={  # the smallest quartile: clipped by the frame's edge or not
          str(edge): dict(objects=len(sel), missed=float(np.mean([o["missed"] for o in sel])))
          for edge in (True, False)
          for sel in [[o for o in objs if o["at_border"] == edge and o["area"] <= smallest]]},
      processor=common.processor_name())
  report(summary, FLAGS.output)


def by_quartile(objs, key):
  """Missed and merged fractions of the objects (dicts with `key`, "missed", "merged") in each
  quartile of `key` (the first quartile closed below)."""
  edges = np.quantile(np.array([o[key] for o in objs]), [0, 0.25, 0.5, 0.75, 1])
  rows = []
  for q in range(4):
    sel = [o for o in objs if edges[q] <= o[key] <= edges[q + 1]] if q == 0 else [
        o for o in objs if edges[q] < o[key] <= edges[q + 1]]
    rows.append(dict(range=[float(edges[q]), float(edges[q + 1])], objects=len(sel),
                     missed=float(np.mean([o["missed"] for o in sel])),
                     merged=float(np.mean([o["merged"] for o in sel]))))
  return rows


def report(summary, output, leave_out=()):
  """Prints `summary` as JSON (without the keys in `leave_out`) and writes all of it to `output`
  (when given)."""
  print(json.dumps({k: v for k, v in summary.items() if k not in leave_out}, indent=1))
  if output:
    with open(output, "w") as f:
      json.dump(summary, f, indent=1)


if __name__ == "__main__":
  app.run(main)
