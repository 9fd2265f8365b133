r"""Study run 28: are the sprites left to the background slot never taken or lost on the way?

  python docs/study/run28/tracking.py --workdir=checkpoints/sprites \
      --output=docs/study/run28/tracking.json

Run 26 (docs/study/run26/error_budget.py) sorted the last frame's foreground pixels and found
most of the headline's gap in the background slot: a fifth of the sprites, nearly all with 27 or
fewer visible pixels, are *missed* (their owner, the slot holding most of their pixels, is the
background slot). This script takes the same forward (the evaluation's own, with its checkpoint
averaging and noise keys; run 26's `last_frames(every_frame=True)`) and run 26's `classify` on
every frame t = 0..T-1 of the same sequences, and follows each ground-truth object id through
time:

  - the missed fraction of the objects per frame t and per visible area (the bins of run 26's
    quartiles), so that frame 0 (no history: the slots come from the prior) reads against the
    later frames (the slots come from the predictor);
  - for each object missed in the last frame: *never taken* (missed in every frame it was
    visible) or *lost* (it had an owner other than the background slot in an earlier frame), the
    area it had then and has now, and what its last owner became in the last frame (the
    background slot, the owner of another object, or no owner);
  - the missed fraction per number of objects in the frame and visible area (all frames): are
    small objects left to the background when free slots remain (K - 1 - objects of them)?
  - objects that enter the frame after t = 0: taken when they appear or not;
  - how often the background slot changes index from one frame to the next;
  - in the last frame, whether the background slot's component draws the missed sprites' colour,
    and the missed fraction per sprite shape and whole-sprite (stamp) area.
"""
import importlib.util
import os

from absl import app, flags
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "error_budget", os.path.join(HERE, "..", "run26", "error_budget.py"))
error_budget = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(error_budget)   # also puts the repository on sys.path and its flags

from benchmarks import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from datasets import sprites as sprite_data  # pylint: disable=g-import-not-at-top,wrong-import-position
from experiments import setup_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from experiments.configs import sprites  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
AREA_BINS = (15, 27, 42)   # upper edges of run 26's quartiles of the last frame's visible areas


def histories(video, segs, preds, k):
  """Per sequence, per object id, its frames: [dict(t, area, owner, missed, bg_slot, merged)]
  (run 26's `classify` of each frame), and per sequence the background slot of every frame
  (video [N, T, H, W, 3], segs / preds [N, T, H, W])."""
  out, bg_slots = [], []
  for v, s, p in zip(video, segs, preds):
    hist, bgs = {}, []
    for t in range(s.shape[0]):
      _, objects, owner, bg_slot, per_object = error_budget.classify(v[t], s[t], p[t], k)
      bgs.append(bg_slot)
      for o, info in zip(objects, per_object):
        hist.setdefault(int(o), []).append(dict(t=t, area=info["area"], owner=owner[o],
                                                missed=bool(info["missed"]), bg_slot=bg_slot,
                                                merged=bool(info["merged"])))
    out.append(hist)
    bg_slots.append(bgs)
  return out, bg_slots


def area_bin(area: int) -> int:
  """0..3: the bin of a visible area (px) among 1-15, 16-27, 28-42, 43+."""
  return int(np.searchsorted(AREA_BINS, area, side="left"))


def summarise(hists, bg_slots, segs, preds, num_frames: int, k: int):
  """The tables of the module docstring from `histories`."""
  bins = ("1-15", "16-27", "28-42", "43+")
  cells = np.zeros((num_frames, 4, 2), int)   # [t, area bin, (objects, missed)]
  by_count = np.zeros((5, 4, 2), int)         # [objects in the frame, area bin, (objects, missed)]
  for hist in hists:
    in_frame = np.zeros(num_frames, int)
    for events in hist.values():
      for e in events:
        in_frame[e["t"]] += 1
    for events in hist.values():
      for e in events:
        cells[e["t"], area_bin(e["area"]), 0] += 1
        cells[e["t"], area_bin(e["area"]), 1] += e["missed"]
        by_count[min(in_frame[e["t"]], 4), area_bin(e["area"]), 0] += 1
        by_count[min(in_frame[e["t"]], 4), area_bin(e["area"]), 1] += e["missed"]
  by_frame = {str(t): {bins[i]: dict(objects=int(cells[t, i, 0]),
                                     missed=float(cells[t, i, 1] / max(cells[t, i, 0], 1)))
                       for i in range(4)} for t in range(num_frames)}
  by_num_objects = {str(n): {bins[i]: dict(objects=int(by_count[n, i, 0]),
                                            missed=float(by_count[n, i, 1] / max(by_count[n, i, 0], 1)))
                              for i in range(4)} for n in range(1, 5)}
  by_frame_all = {str(t): float(cells[t, :, 1].sum() / max(cells[t, :, 0].sum(), 1))
                  for t in range(num_frames)}
  last = num_frames - 1
  fates, missed_last = [], 0
  for n, hist in enumerate(hists):
    for events in hist.values():
      end = events[-1]
      if end["t"] != last or not end["missed"]:
        continue
      missed_last += 1
      taken = [e for e in events[:-1] if not e["missed"]]
      if not taken:
        fates.append(dict(fate="never_taken", frames_visible=len(events),
                          first_area=events[0]["area"], last_area=end["area"]))
        continue
      prev = taken[-1]
      slot = prev["owner"]
      seg_l, pred_l = segs[n][last], preds[n][last]
      owned_now = {int(np.argmax(np.bincount(pred_l[seg_l == o], minlength=k)))
                   for o in np.unique(seg_l) if o > 0}
      became = ("background_slot" if slot == bg_slots[n][last] else
                "owner_of_another_object" if slot in owned_now else "no_owner")
      fates.append(dict(fate="lost", frames_visible=len(events), lost_after_t=prev["t"],
                        area_when_last_taken=prev["area"], last_area=end["area"],
                        last_owner_became=became))
  lost = [f for f in fates if f["fate"] == "lost"]
  never = [f for f in fates if f["fate"] == "never_taken"]
  entering = [events for hist in hists for events in hist.values() if events[0]["t"] > 0]
  switches = [int(a != b) for bgs in bg_slots for a, b in zip(bgs[:-1], bgs[1:])]
  med = lambda xs: float(np.median(xs)) if xs else None   # noqa: E731
  return dict(
      missed_by_frame=by_frame_all, missed_by_frame_and_area=by_frame,
      missed_by_objects_in_frame_and_area=by_num_objects,
      missed_in_last_frame=missed_last,
      never_taken=len(never), lost=len(lost),
      never_taken_median_areas=dict(first=med([f["first_area"] for f in never]),
                                    last=med([f["last_area"] for f in never])),
      never_taken_visible_every_frame=int(sum(f["frames_visible"] == num_frames for f in never)),
      lost_median_areas=dict(when_last_taken=med([f["area_when_last_taken"] for f in lost]),
                             last=med([f["last_area"] for f in lost])),
      lost_after_t={str(t): int(sum(f["lost_after_t"] == t for f in lost))
                    for t in range(num_frames - 1)},
      lost_owner_became={w: int(sum(f["last_owner_became"] == w for f in lost))
                         for w in ("background_slot", "owner_of_another_object", "no_owner")},
      entering_objects=len(entering),
      entering_taken_when_they_appear=float(np.mean([not e[0]["missed"] for e in entering]))
      if entering else None,
      entering_missed_in_last_frame=float(np.mean([e[-1]["missed"] for e in entering
                                                   if e[-1]["t"] == last]))
      if entering else None,
      background_slot_changes_per_frame=float(np.mean(switches)),
      fates=fates)


def background_component_colour(video, segs, preds, comps, k):
  """Last frame: does the background slot's component C_bg draw the sprites left to it? Mean
  squared colour error (per pixel, summed over RGB) on the missed sprites' pixels of C_bg, of the
  frame's mean background colour (what a component that draws only background would give) and
  of the best component; and on the other foreground pixels of their owner's component."""
  sums = dict(missed_bg_component=[], missed_mean_background=[], missed_best_component=[],
              right_owner_component=[])
  for v, s, p, c in zip(video[:, -1], segs[:, -1], preds[:, -1], comps[:, -1]):
    cls, objects, owner, bg_slot, _ = error_budget.classify(v, s, p, k)
    if bg_slot < 0:
      continue
    err = np.sum(np.square(c - v[None]), axis=-1)          # [K, H, W]
    missed = cls == "missed"
    if missed.any():
      sums["missed_bg_component"].append(err[bg_slot][missed])
      sums["missed_mean_background"].append(
          np.sum(np.square(v[missed] - v[s == 0].mean(axis=0)), axis=-1))
      sums["missed_best_component"].append(err.min(axis=0)[missed])
    for o in objects:
      px = (s == o) & (cls == "right")
      if px.any():
        sums["right_owner_component"].append(err[owner[o]][px])
  return {name: float(np.mean(np.concatenate(v))) for name, v in sums.items()}


def missed_by_shape(video, segs, preds, k, workdir):
  """Last frame: the missed fraction of the sprites per shape (`datasets.sprites.SHAPES`, from
  the regenerated eval scenes) and per quartile of the whole-sprite area (its stamp, visible or
  not; run 26's `by_quartile`, which also gives the merged fraction)."""
  data_config = setup_lib.config_for_workdir(workdir, sprites.get_config(), {}).data
  rows = []
  for b, (v, s, p) in enumerate(zip(video[:, -1], segs[:, -1], preds[:, -1])):
    episode, info = sprite_data.scene_info(data_config, "eval", b)
    if not np.array_equal(episode["segmentations"][segs.shape[1] - 1], s):
      raise ValueError(f"eval episode {b} regenerated differs from the evaluated one")
    _, objects, _, _, per_object = error_budget.classify(v, s, p, k)
    rows += [dict(obj, shape=info["shapes"][o - 1], stamp_area=int(info["stamps"][o - 1].sum()))
             for o, obj in zip(objects, per_object)]
  shapes = {name: dict(objects=len(sel), missed=float(np.mean([r["missed"] for r in sel])),
                       median_stamp_area=float(np.median([r["stamp_area"] for r in sel])))
            for name in sprite_data.SHAPES
            for sel in [[r for r in rows if r["shape"] == name]] if sel}
  return dict(by_shape=shapes, by_stamp_area_quartile=error_budget.by_quartile(rows, "stamp_area"))


def main(argv):
  del argv
  video, segs, masks, comps, headline, has_fg, step, averaged, _ = error_budget.last_frames(
      FLAGS.workdir, every_frame=True)
  k, num_frames = masks.shape[2], masks.shape[1]
  preds = np.argmax(masks, axis=2)
  # The last frame is run 26's (and the headline's): the same FG-ARI from scikit-learn.
  mine = [error_budget.fg_ari(s[-1], p[-1]) for s, p, h in zip(segs, preds, has_fg) if h[-1]]
  np.testing.assert_allclose(mine, headline[has_fg[:, -1], -1], atol=1e-4)
  hists, bg_slots = histories(video, segs, preds, k)
  summary = dict(workdir=os.path.abspath(FLAGS.workdir), step=int(step),
                 average_checkpoints=int(averaged), num_slots=int(k),
                 sequences=len(hists), fg_ari_last_frame=float(np.mean(mine)),
                 **summarise(hists, bg_slots, segs, preds, num_frames, k),
                 last_frame_colour_error=background_component_colour(video, segs, preds,
                                                                     comps, k),
                 last_frame_missed=missed_by_shape(video, segs, preds, k, FLAGS.workdir),
                 processor=common.processor_name())
  error_budget.report(summary, FLAGS.output, leave_out=("fates",))


if __name__ == "__main__":
  app.run(main)
