r"""Linear probe: does the slot that owns an object know where the object is?

  python -m experiments.position_probe --workdir=DIR [--num_sequences=256] [--output=FILE]

(--num_sequences is capped at the eval split's size.)

For every ground-truth object in the last frame (T-1) of the first --num_sequences eval
sequences: its owner slot (the slot whose responsibilities p(k | x_i) win most of its pixels)
and its centroid (y, x) in pixels. A ridge regression from the owner slot's refined posterior
mean mu (lambda^N, `apply`'s "posterior") to the centroid is fitted on the first half of the
objects and scored on the second half: R^2 per coordinate and the mean error in pixels. Two rows:
  same_frame:  mu of frame T-1 (refined on that frame) -> centroid at T-1;
  one_step:    mu of frame T-2 -> centroid at T-1: the gap the predictor must close, since the
               headline masks of frame T-1 are decoded from lambda_{T-1}^0 = P(lambda_{T-2}^N, a).
Soft masks with a low same_frame R^2 point at inference (the slots do not carry position);
with a high same_frame and a low one_step R^2, at the prediction. Writes DIR/eval/
position_probe.json (or --output). Runs the model like experiments.evaluate (DIR/config.json,
noise key PRNGKey(eval.seed)).
"""
import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from absl import app, flags
import jax
import numpy as np

from datasets import registry
from experiments import setup_lib
from parts_jax import lowering

FLAGS = flags.FLAGS


def owned_objects(resp: np.ndarray, seg: np.ndarray) -> List[Tuple[int, int, int]]:
  """(sequence b, object id, owner slot) for every object (id > 0) of frames seg [B, H, W],
  the owner being the slot whose responsibilities resp [B, K, H, W] win most of its pixels
  (ties: the lowest k)."""
  won = np.argmax(resp, axis=1)                                   # [B, H, W]
  found = []
  for b in range(seg.shape[0]):
    for obj in np.unique(seg[b]):
      if obj > 0:
        counts = np.bincount(won[b][seg[b] == obj], minlength=resp.shape[1])
        found.append((b, int(obj), int(np.argmax(counts))))
  return found


def centroid(seg: np.ndarray, obj: int) -> np.ndarray:
  """(y, x) mean pixel position of `obj` in seg [H, W]."""
  ys, xs = np.nonzero(seg == obj)
  return np.array([ys.mean(), xs.mean()])


def ridge_probe(features: np.ndarray, targets: np.ndarray, ridge: float = 1e-2) -> Dict[str, Any]:
  """Ridge regression (with bias) fitted on the first half of the rows, scored on the second.

  features [N, F], targets [N, C] -> {"r2": [C] on the held-out half, "mean_error": mean
  Euclidean error there, "num_train", "num_test"}."""
  n = len(features)
  if n < 4 or len(targets) != n:
    raise ValueError(f"need >= 4 rows of features and targets alike, got {n} and {len(targets)}")
  m = n // 2
  a = np.concatenate([features, np.ones((n, 1))], axis=1).astype(np.float64)
  w = np.linalg.solve(a[:m].T @ a[:m] + ridge * np.eye(a.shape[1]), a[:m].T @ targets[:m])
  pred, true = a[m:] @ w, targets[m:]
  r2 = 1.0 - np.sum((pred - true) ** 2, 0) / np.maximum(np.sum((true - true.mean(0)) ** 2, 0),
                                                         1e-12)
  return dict(r2=[float(v) for v in r2],
              mean_error=float(np.mean(np.linalg.norm(pred - true, axis=1))),
              num_train=m, num_test=n - m)


def run_and_sequences(workdir: str, split: str, num_sequences: int, what: str) -> Tuple[Any, Any]:
  """(the run's config (DIR/config.json), one batch of the first num_sequences of `split` with
  their segmentations, as experiments.evaluate reads them)."""
  config = setup_lib.config_for_workdir(workdir)
  batch = registry.first_sequences(config.data, split, num_sequences, seed=config.eval.seed,
                                   require_segmentations=True, what=f"{what} {workdir}")
  return config, batch


def slots_and_masks(workdir: str, split: str, num_sequences: int, chunk: int = 0,
                    what: str = "position_probe",
                    maps: Sequence[str] = ("responsibilities",)
                    ) -> Tuple[np.ndarray, Dict[str, np.ndarray], np.ndarray, int, Any]:
  """Runs the latest checkpoint of `workdir` on the first num_sequences of `split` (as
  experiments.evaluate: DIR/config.json, noise key PRNGKey(eval.seed)), `chunk` sequences at a
  time (0: all at once; a shorter last chunk compiles once more).

  Returns (lambda [B, T, K, 2D] the refined posteriors lambda_t^N = (mu, log sigma),
  {name: [B, T, K, H, W]} for each of `maps` (keys of `PARTS.segmentation_maps`:
  "responsibilities", "attention", ...), segmentations [B, T, H, W], step, config)."""
  config, batch = run_and_sequences(workdir, split, num_sequences, what)
  n = len(batch["video"])
  chunk = min(chunk, n) if chunk > 0 else n
  parts = [{k: v[start:start + chunk] for k, v in batch.items() if v is not None}
           for start in range(0, n, chunk)]
  model, params, step = setup_lib.restore_model(config, workdir, parts[0])
  forward = lowering.compile_forward(model, model.apply)
  lams, found = [], {name: [] for name in maps}
  for part in parts:
    out = forward(params, jax.random.PRNGKey(config.eval.seed), part)
    lams.append(np.asarray(out["posterior"]))
    seg_maps = model.segmentation_maps(params, part["video"], out)
    for name in maps:
      found[name].append(np.asarray(seg_maps[name]))
  return (np.concatenate(lams), {name: np.concatenate(v) for name, v in found.items()},
          np.asarray(batch["segmentations"]), step, config)


def write_result(result: Dict[str, Any], workdir: str, output: Optional[str], name: str,
                 indent: int = 1) -> str:
  """Writes a probe's result as JSON to `output`, or to WORKDIR/eval/NAME; returns the path."""
  output = output or os.path.join(workdir, "eval", name)
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  with open(output, "w") as f:
    json.dump(result, f, indent=indent)
  return output


def probe(workdir: str, num_sequences: int = 256) -> Dict[str, Any]:
  """Runs the probe on the latest checkpoint of `workdir` (module docstring)."""
  lam, maps, seg, step, config = slots_and_masks(workdir, "eval", num_sequences)
  mu = lam[..., :config.model.slot_dim]                           # [B, T, K, D]
  resp, seg = maps["responsibilities"][:, -1], seg[:, -1]         # [B, K, H, W], [B, H, W]
  objects = owned_objects(resp, seg)
  targets = np.stack([centroid(seg[b], obj) for b, obj, _ in objects])
  rows = {name: ridge_probe(np.stack([mu[b, t, k] for b, _, k in objects]), targets)
          for name, t in (("same_frame", -1), ("one_step", -2))}
  return dict(workdir=os.path.abspath(workdir), step=step, num_sequences=int(seg.shape[0]),
              num_objects=len(objects), targets="centroid (y, x) in pixels, last frame",
              **rows)


def main(argv):
  del argv
  result = probe(FLAGS.workdir, FLAGS.num_sequences)
  output = write_result(result, FLAGS.workdir, FLAGS.output, "position_probe.json", indent=2)
  for name in ("same_frame", "one_step"):
    r = result[name]
    print(f"{name}: R^2 (y, x) {r['r2'][0]:.3f}, {r['r2'][1]:.3f} | mean error "
          f"{r['mean_error']:.2f} px | {r['num_test']} held-out objects")
  print(f"Wrote {output}")


if __name__ == "__main__":
  flags.DEFINE_string("workdir", None, "Training workdir.")
  flags.DEFINE_integer("num_sequences", 256, "Eval sequences (the first ones, in order).")
  flags.DEFINE_string("output", None, "Output JSON (default WORKDIR/eval/position_probe.json).")
  flags.mark_flags_as_required(["workdir"])
  app.run(main)
