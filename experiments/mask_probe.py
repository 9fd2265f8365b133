r"""Mask probe: does the slot that owns an object carry the object's shape?

  python -m experiments.mask_probe --workdir=DIR [--train_sequences=1024] [--eval_sequences=256]
      [--steps=10000] [--curve_every=0] [--output=FILE]

The model's masks are round blobs although its decoder can draw the sprites' shapes when told
what to draw (experiments.decoder_capacity: FG-ARI 0.91 with the default decoder, docs/study.md
run 7). This asks whether the slots hold the shapes. For every ground-truth object of every
frame of the first --train_sequences train sequences: its owner slot (the slot whose
responsibilities win most of its pixels, `position_probe.owned_objects`) and that slot's refined
posterior mean mu (lambda_t^N, `apply`'s "posterior"). A fresh decoder of the run's architecture
(config.model.decoder, no encoder) is trained supervised from mu to the object's binary mask
(sigmoid cross-entropy, Adam 1e-3, batch 64; `decoder_capacity.fit`), then scored like
decoder_capacity on the last frame of the first --eval_sequences eval sequences: per pixel the
argmax over a background logit 0 and each object's logit decoded from its owner's mu (objects
sharing an owner get the same logits: the model's error, counted as such):

  fg_ari, iou:              on those eval frames;
  train_fg_ari, train_iou:  the same on the last frame of as many train sequences (fitted on).

Read against decoder_capacity (the encoder sees the mask itself) and the run's own masks (the
headline): near the former, the slots carry the shapes and the model's decoder has not learned
to draw them from the ELBO; near the latter, the shapes are not in the slots (inference, KL).
Runs the model like experiments.evaluate (DIR/config.json, noise key PRNGKey(eval.seed)).
Writes DIR/eval/mask_probe.json (or --output).
"""
import json
import os
import time
from typing import Any, Dict, List, Tuple

from absl import app, flags
import jax
import numpy as np

from experiments import decoder_capacity, position_probe, setup_lib

FLAGS = flags.FLAGS


def owned(mu: np.ndarray, resp: np.ndarray, seg: np.ndarray
          ) -> Tuple[np.ndarray, np.ndarray, List[Tuple[int, int, int]]]:
  """Frames flattened: mu [N, K, D], resp [N, K, H, W], seg [N, H, W] -> (z [M, D] of each
  object's owner slot, its mask [M, H, W] float32, (frame, object id, owner) per object)."""
  objects = position_probe.owned_objects(resp, seg)
  z = np.stack([mu[f, k] for f, _, k in objects])
  masks = np.stack([seg[f] == obj for f, obj, _ in objects]).astype(np.float32)
  return z, masks, objects


def probe_segmentation(net, params, mu: np.ndarray, seg: np.ndarray,
                       objects: List[Tuple[int, int, int]]) -> Tuple[np.ndarray, float]:
  """Frames seg [N, H, W] -> (ids [N, H, W]: argmax over background logit 0 and each object's
  logit decoded from its owner's mu [N, K, D], mean IoU of (logit > 0) with the object)."""
  logits = np.asarray(jax.jit(net.apply)(params, np.stack([mu[f, k] for f, _, k in objects])))
  pred, ious = np.zeros_like(seg), []
  for f in range(len(seg)):
    rows = [(i, obj) for i, (g, obj, _) in enumerate(objects) if g == f]
    if not rows:
      continue
    pred[f], frame_ious = decoder_capacity.segment_by_logits(
        seg[f], [obj for _, obj in rows], logits[[i for i, _ in rows]])
    ious.extend(frame_ious)
  return pred, float(np.mean(ious))


def run(workdir: str, train_sequences: int, eval_sequences: int, steps: int,
        curve_every: int = 0, batch_size: int = 64, learning_rate: float = 1e-3,
        seed: int = 0, chunk: int = 64) -> Dict[str, Any]:
  """The experiment of the module docstring (the model runs on `chunk` sequences at a time)."""
  t0 = time.time()
  lam_tr, maps_tr, seg_tr, step, config = position_probe.slots_and_masks(
      workdir, "train", train_sequences, chunk, what="mask_probe")
  lam_ev, maps_ev, seg_ev, _, _ = position_probe.slots_and_masks(
      workdir, "eval", eval_sequences, chunk, what="mask_probe")
  resp_tr, resp_ev = maps_tr["responsibilities"], maps_ev["responsibilities"]
  d = config.model.slot_dim
  mu_tr, mu_ev = lam_tr[..., :d], lam_ev[..., :d]            # posterior means [B, T, K, D]
  flat = lambda a: a.reshape((-1,) + a.shape[2:])
  z, masks, _ = owned(flat(mu_tr), flat(resp_tr), flat(seg_tr))
  # Scored frames: the last frame of each eval sequence, and of as many train sequences:
  # (mu [N, K, D], seg [N, H, W], each object's (frame, id, owner)).
  seen = min(len(seg_tr), len(seg_ev))
  scored = {name: (mu[:, -1], seg[:, -1], position_probe.owned_objects(resp[:, -1], seg[:, -1]))
            for name, mu, resp, seg in (("eval", mu_ev, resp_ev, seg_ev),
                                        ("train", mu_tr[:seen], resp_tr[:seen], seg_tr[:seen]))}
  num_true = int(max(seg_ev.max(), seg_tr.max())) + 1
  model = setup_lib.model_config(config)       # image_size from the data, as in training
  print(f"mask_probe: {len(z)} objects from {len(seg_tr)} train sequences "
        f"({time.time() - t0:.0f} s of inference); fitting a decoder for {steps} steps",
        flush=True)

  def score(net, params) -> Dict[str, float]:
    result = {}
    for name, (mu, seg, objects) in scored.items():
      pred, iou = probe_segmentation(net, params, mu, seg, objects)
      prefix = "" if name == "eval" else "train_"
      result[prefix + "fg_ari"] = decoder_capacity.mean_fg_ari(seg, pred, num_true)
      result[prefix + "iou"] = iou
    return result

  curve = []

  def on_every(s, net, params, mean_loss):
    curve.append(dict(step=s, train_loss=mean_loss, **score(net, params),
                      seconds=round(time.time() - t0, 1)))
    print(json.dumps(curve[-1]), flush=True)

  net, params, loss = decoder_capacity.fit(
      z, tuple(model.image_size), model.slot_dim, tuple(model.decoder.channels),
      model.decoder.kernel_size, steps, batch_size, learning_rate, seed,
      basis=model.decoder.basis, every=curve_every, on_every=on_every,
      targets=masks)
  return dict(workdir=os.path.abspath(workdir), step=step, num_train_objects=len(z),
              train_sequences=len(seg_tr), num_eval_frames=len(seg_ev), probe_steps=steps,
              decoder=dict(channels=list(model.decoder.channels),
                           kernel_size=model.decoder.kernel_size,
                           basis=model.decoder.basis),
              final_train_loss=loss, **score(net, params), curve=curve,
              seconds=round(time.time() - t0, 1))


def main(argv):
  del argv
  result = run(FLAGS.workdir, FLAGS.train_sequences, FLAGS.eval_sequences, FLAGS.steps,
               FLAGS.curve_every, seed=FLAGS.seed)
  output = position_probe.write_result(result, FLAGS.workdir, FLAGS.output, "mask_probe.json")
  print(f"mask probe at step {result['step']}: FG-ARI {result['fg_ari']:.3f} (IoU "
        f"{result['iou']:.3f}) on {result['num_eval_frames']} eval frames, "
        f"{result['train_fg_ari']:.3f} on trained frames | wrote {output}")


if __name__ == "__main__":
  flags.DEFINE_string("workdir", None, "Training workdir.")
  flags.DEFINE_integer("train_sequences", 1024, "Train sequences whose objects train the probe.")
  flags.DEFINE_integer("eval_sequences", 256, "Eval sequences (last frame) scored.")
  flags.DEFINE_integer("steps", 10000, "Probe decoder training steps.")
  flags.DEFINE_integer("curve_every", 0, "> 0: also score every this many steps.")
  flags.DEFINE_integer("seed", 0, "Seed of the probe decoder's init and batches.")
  flags.DEFINE_string("output", None, "Output JSON (default WORKDIR/eval/mask_probe.json).")
  flags.mark_flags_as_required(["workdir"])
  app.run(main)
