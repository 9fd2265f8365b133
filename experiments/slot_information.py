r"""Slot information: how many nats of KL each slot's posterior spends, by the slot's role, and
how much of its object each slot's attention and mask win.

  python -m experiments.slot_information --workdir=DIR [--num_sequences=64] [--output=FILE]

The KL of Eq 7 (to the fixed prior N(0, I)) prices what the inference writes into lambda. This
splits it by what each slot does in the frame, from the responsibilities p(k | x_i) and the true
segmentation: an *object* slot owns a sprite (it wins most of the sprite's pixels,
`position_probe.owned_objects`); the *background* slot wins most of the background pixels; the
rest are *spare*. Per role: the mean KL per slot in nats and its profile over the D latent
dimensions (sorted, largest first, mean over slots), and the number of dimensions that carry
more than 0.5 nats. Read with experiments.mask_probe: nats that go to the object slots without
the outline entering them went to something else (position, colour); nats that go to the
background slot describe its texture.

And what each object slot reads and draws: for every object, the fraction of its border pixels
(those with a 4-neighbour off the object) and of its interior pixels where its owner slot wins
the argmax of the slot attention (what the refinement reads, Eqs 4-6) and of the headline masks
(what the decoder draws); `coverage`.

Uses the refined posterior lambda_t^N of every frame (`apply`'s "posterior"; the loss's KL is
taken at lambda_t^0 .. lambda_t^{N-1}), the first --num_sequences eval sequences, run as
experiments.evaluate does. Writes DIR/eval/slot_information.json (or --output).
"""
import os
from typing import Any, Dict, List, Tuple

from absl import app, flags
import numpy as np

from experiments import position_probe
from parts_jax import distributions

FLAGS = flags.FLAGS
ACTIVE_NATS = 0.5          # a dimension "carries information" above this KL


def slot_roles(resp: np.ndarray, seg: np.ndarray) -> np.ndarray:
  """Frames resp [N, K, H, W], seg [N, H, W] (0 = background) -> roles [N, K]: 1 for a slot
  that owns an object, 2 for the slot that wins most background pixels (when it owns no
  object), 0 for a spare slot."""
  roles = np.zeros(resp.shape[:2], np.int64)
  won = np.argmax(resp, axis=1)                                   # [N, H, W]
  for f in range(seg.shape[0]):
    background = won[f][seg[f] == 0]
    if background.size:
      roles[f, np.argmax(np.bincount(background, minlength=resp.shape[1]))] = 2
  for f, _, k in position_probe.owned_objects(resp, seg):
    roles[f, k] = 1
  return roles


def kl_by_role(lam: np.ndarray, resp: np.ndarray, seg: np.ndarray) -> Dict[str, Any]:
  """Frames lam [N, K, 2D], resp [N, K, H, W], seg [N, H, W] -> per role ("object",
  "background", "spare"): num_slots, kl_per_slot (nats), kl_per_dim_sorted [D],
  active_dims (mean count of dimensions above ACTIVE_NATS); and kl_per_frame (all slots)."""
  kl = np.asarray(distributions.kl_per_dim(lam), np.float64)       # [N, K, D]
  roles = slot_roles(resp, seg)
  result = dict(kl_per_frame=float(kl.sum(axis=(1, 2)).mean()))
  for name, code in (("object", 1), ("background", 2), ("spare", 0)):
    chosen = kl[roles == code]                                     # [S, D]
    if not len(chosen):
      result[name] = dict(num_slots=0)
      continue
    result[name] = dict(
        num_slots=int(len(chosen)), kl_per_slot=float(chosen.sum(axis=1).mean()),
        kl_per_dim_sorted=np.sort(chosen, axis=1)[:, ::-1].mean(axis=0).round(3).tolist(),
        active_dims=float((chosen > ACTIVE_NATS).sum(axis=1).mean()))
  return result


def border(obj: np.ndarray) -> np.ndarray:
  """Boolean [H, W] object -> its pixels with a 4-neighbour off the object (or off the image)."""
  padded = np.pad(obj, 1, constant_values=False)
  inside = (padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])
  return obj & ~inside


def coverage(scores: np.ndarray, seg: np.ndarray, objects: List[Tuple[int, int, int]]
             ) -> Dict[str, float]:
  """Frames scores [N, K, H, W] (e.g. attention), seg [N, H, W] and each object's (frame, id,
  owner slot) (`position_probe.owned_objects`) -> the mean over objects of the fraction of its
  border and of its interior pixels where argmax_k scores is its owner (objects without
  interior pixels count for the border only), and the number of objects."""
  won = np.argmax(scores, axis=1)                                  # [N, H, W]
  rims, cores = [], []
  for f, obj, k in objects:
    pixels = seg[f] == obj
    rim = border(pixels)
    rims.append(np.mean(won[f][rim] == k))
    if (pixels & ~rim).any():
      cores.append(np.mean(won[f][pixels & ~rim] == k))
  return dict(border=float(np.mean(rims)) if rims else None,
              interior=float(np.mean(cores)) if cores else None, num_objects=len(rims))


def measure(workdir: str, num_sequences: int = 64) -> Dict[str, Any]:
  """The read-out of the module docstring on the latest checkpoint of `workdir`."""
  lam, maps, seg, step, _ = position_probe.slots_and_masks(
      workdir, "eval", num_sequences, chunk=16, what="slot_information",
      maps=("responsibilities", "attention", "masks"))
  flat = lambda a: a.reshape((-1,) + a.shape[2:])
  resp, seg = flat(maps["responsibilities"]), flat(seg)
  objects = position_probe.owned_objects(resp, seg)                # owners, once for both maps
  return dict(workdir=os.path.abspath(workdir), step=step, num_sequences=int(lam.shape[0]),
              frames="every frame", active_nats=ACTIVE_NATS,
              **kl_by_role(flat(lam), resp, seg),
              owner_wins={name: coverage(flat(maps[name]), seg, objects)
                          for name in ("attention", "masks")})


def main(argv):
  del argv
  result = measure(FLAGS.workdir, FLAGS.num_sequences)
  output = position_probe.write_result(result, FLAGS.workdir, FLAGS.output,
                                       "slot_information.json")
  print(f"step {result['step']}: KL {result['kl_per_frame']:.1f} nats per frame")
  for name in ("object", "background", "spare"):
    r = result[name]
    if r["num_slots"]:
      print(f"  {name:10s} {r['num_slots']:5d} slots | {r['kl_per_slot']:6.2f} nats per slot | "
            f"{r['active_dims']:.1f} dims > {ACTIVE_NATS} nats")
  for name, c in result["owner_wins"].items():
    print(f"  owner slot wins the {name} argmax on {c['border']:.3f} of an object's border "
          f"pixels, {c['interior']:.3f} of its interior ({c['num_objects']} objects)")
  print(f"Wrote {output}")


if __name__ == "__main__":
  flags.DEFINE_string("workdir", None, "Training workdir.")
  flags.DEFINE_integer("num_sequences", 64, "Eval sequences (the first ones, in order).")
  flags.DEFINE_string("output", None,
                      "Output JSON (default WORKDIR/eval/slot_information.json).")
  flags.mark_flags_as_required(["workdir"])
  app.run(main)
