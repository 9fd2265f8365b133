"""Segmentation and reconstruction metrics: (FG-)ARI per frame, MSE per frame.

ARI is computed from the contingency table of two integer id maps (one-hot einsum, as in SAVi's
`savi/lib/metrics.py`, but on ids instead of one-hot inputs) and matches
`sklearn.metrics.adjusted_rand_score` on the same pixels, degenerate partitions included.

With n kept pixels, contingency n_ij, true sizes a_i and predicted sizes b_j, the ordered pair
counts (sklearn's `pair_confusion_matrix`) are

  tp = sum_ij n_ij (n_ij - 1)                 same true id,      same predicted id
  fn = sum_ij n_ij (a_i - n_ij)               same true id,      different predicted id
  fp = sum_ij n_ij (b_j - n_ij)               different true id, same predicted id
  tn = sum_ij n_ij (n - a_i - b_j + n_ij)     different true id, different predicted id

  ARI = 2 (tp tn - fn fp) / ((tp + fn)(fn + tn) + (tp + fp)(fp + tn)),  and 1 if fn = fp = 0.

Every factor above is a count <= n and every term is >= 0, so in float32 there is no cancellation
inside the four sums (the usual `sum n_ij^2 - ...` forms lose digits once n^2 > 2^24, i.e. past
64x64 pixels). The final ratio has an absolute error of a few float32 ulps. Counts are exact while
n < 2^24 pixels per example.

Special case, as in sklearn: fn = fp = 0 (identical partitions up to relabelling, which includes
both single-cluster, both all-singletons, a single pixel and *no pixels at all*) gives 1.0. These
are also the only cases where the denominator is 0, so the result is never NaN. For FG-ARI, frames
without foreground pixels therefore score 1.0; `fg_ari_per_frame` flags them (`has_fg`) so that
`summarize_fg_ari` leaves them out of averages and counts them instead.
"""
from typing import Dict, List, Optional

import jax
import jax.numpy as jnp
import numpy as np


def adjusted_rand_index(true_ids, pred_ids, *, num_true: int, num_pred: int,
                        ignore_background: bool = False) -> jnp.ndarray:
  """Adjusted Rand index between two id maps, per example.

  Args:
    true_ids: [B, ...] integer ground-truth ids in [0, num_true).
    pred_ids: [B, ...] integer predicted ids in [0, num_pred), same shape as `true_ids`.
    num_true: number of ground-truth ids (static).
    num_pred: number of predicted ids (static), e.g. the number of slots K.
    ignore_background: leave out pixels whose true id is 0 (FG-ARI).

  Returns:
    [B] float32 ARI. Pixels with an id outside its range are left out (one-hot of an out-of-range
    id is all zeros). An example with no kept pixels gives 1.0 (as sklearn on empty input).
  """
  true_ids = jnp.asarray(true_ids)
  pred_ids = jnp.asarray(pred_ids)
  if true_ids.shape != pred_ids.shape:
    raise ValueError(f"true_ids {true_ids.shape} and pred_ids {pred_ids.shape} must have the "
                     "same shape [B, ...]")
  batch = true_ids.shape[0]
  true_oh = jax.nn.one_hot(true_ids.reshape(batch, -1), num_true, dtype=jnp.float32)
  pred_oh = jax.nn.one_hot(pred_ids.reshape(batch, -1), num_pred, dtype=jnp.float32)
  if ignore_background:
    true_oh = true_oh[..., 1:]
  n_ij = jnp.einsum("bni,bnj->bij", true_oh, pred_oh)  # [B, I, J] contingency table.
  a = jnp.sum(n_ij, axis=2, keepdims=True)  # [B, I, 1] true sizes.
  b = jnp.sum(n_ij, axis=1, keepdims=True)  # [B, 1, J] predicted sizes.
  n = jnp.sum(n_ij, axis=(1, 2), keepdims=True)  # [B, 1, 1] kept pixels.
  # Dividing by n^2 keeps products in range for large images; it does not change the ratio.
  scale = jnp.maximum(n, 1.0)**2
  pair_count = lambda f: jnp.sum(n_ij * f / scale, axis=(1, 2))
  tp = pair_count(n_ij - 1.0)
  fn = pair_count(a - n_ij)
  fp = pair_count(b - n_ij)
  tn = pair_count(n - a - b + n_ij)
  numerator = 2.0 * (tp * tn - fn * fp)
  denominator = (tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)
  identical = (fn == 0) & (fp == 0)
  ari = numerator / jnp.where(identical, 1.0, denominator)
  return jnp.where(identical, 1.0, ari).astype(jnp.float32)


def fg_ari_per_frame(true_seg, pred, *, num_true: int, num_pred: Optional[int] = None):
  """Foreground ARI of every frame (true id 0 = background is left out).

  Args:
    true_seg: [B, T, H, W] integer ground truth, 0 = background, ids < num_true.
    pred: either masks [B, T, K, H, W] (argmax over K is taken) or ids [B, T, H, W].
    num_true: number of ground-truth ids including background (static).
    num_pred: number of predicted ids; required for ids, defaults to K for masks.

  Returns:
    fg_ari: [B, T] float32 (1.0 on frames without foreground, see `has_fg`).
    has_fg: [B, T] bool, whether the frame has any foreground pixel.
  """
  true_seg = jnp.asarray(true_seg)
  pred = jnp.asarray(pred)
  if true_seg.ndim != 4:
    raise ValueError(f"true_seg must be [B, T, H, W], got shape {true_seg.shape}")
  if pred.ndim == 5:
    num_pred = pred.shape[2] if num_pred is None else num_pred
    pred = jnp.argmax(pred, axis=2)
  elif num_pred is None:
    raise ValueError("num_pred is required when pred is an id map [B, T, H, W]")
  b, t = true_seg.shape[:2]
  ari = adjusted_rand_index(true_seg.reshape(b * t, -1), pred.reshape(b * t, -1),
                            num_true=num_true, num_pred=num_pred, ignore_background=True)
  has_fg = jnp.any((true_seg > 0) & (true_seg < num_true), axis=(2, 3))
  return ari.reshape(b, t), has_fg


def _check_seg_and_masks(true_seg, masks):
  true_seg, masks = jnp.asarray(true_seg), jnp.asarray(masks)
  if true_seg.ndim != 4 or masks.ndim != 5 or masks.shape[:2] + masks.shape[3:] != true_seg.shape:
    raise ValueError(f"need true_seg [B, T, H, W] and masks [B, T, K, H, W], got "
                     f"{true_seg.shape} and {masks.shape}")
  return true_seg, masks


def _background_slot(true_seg, masks):
  """The cut of the masks' argmax that the background-slot metrics score: (pred [B, T, H, W] the
  mask argmax, background [B, T, H, W] the ground-truth background, slot [B, T] the slot that
  wins pred on most background pixels; ties, and frames without background: the lowest k)."""
  true_seg, masks = _check_seg_and_masks(true_seg, masks)
  pred = jnp.argmax(masks, axis=2)
  background = true_seg == 0
  won = jax.nn.one_hot(pred, masks.shape[2]) * background[..., None]          # [B, T, H, W, K]
  return pred, background, jnp.argmax(jnp.sum(won, axis=(2, 3)), axis=-1)


def foreground_in_background_slot(true_seg, masks) -> jnp.ndarray:
  """Fraction of the foreground pixels whose mask argmax is the frame's background slot: the
  slot that wins the argmax on most ground-truth background pixels (ties: the lowest k).
  0 when the objects are segmented apart from the background (whether or not from each other),
  1 when the background slot takes every object pixel: it tells a mask that swallows the
  objects from masks that mix objects up, both of which lower FG-ARI.

  true_seg [B, T, H, W] (0 = background), masks [B, T, K, H, W] -> [B, T] float32; 0 on
  frames without foreground or without background.
  """
  pred, background, slot = _background_slot(true_seg, masks)
  taken = (pred == slot[..., None, None]) & ~background
  num_fg = jnp.sum(~background, axis=(2, 3))
  frac = jnp.sum(taken, axis=(2, 3)) / jnp.maximum(num_fg, 1)
  return jnp.where((num_fg > 0) & jnp.any(background, axis=(2, 3)), frac, 0.0).astype(jnp.float32)


def background_in_object_slots(true_seg, masks) -> jnp.ndarray:
  """Fraction of the background pixels whose mask argmax is not the frame's background slot (as
  in `foreground_in_background_slot`): the other side of the cut, which FG-ARI does not score.
  0 when the background slot owns the whole background; it rises as object masks spill past
  their objects or as slots cut the background into regions, both of which can raise FG-ARI.

  true_seg [B, T, H, W] (0 = background), masks [B, T, K, H, W] -> [B, T] float32; 0 on
  frames without background.
  """
  pred, background, slot = _background_slot(true_seg, masks)
  spilled = (pred != slot[..., None, None]) & background
  num_bg = jnp.sum(background, axis=(2, 3))
  return (jnp.sum(spilled, axis=(2, 3)) / jnp.maximum(num_bg, 1)).astype(jnp.float32)


def object_mask_contrast(true_seg, masks, num_true: int) -> jnp.ndarray:
  """How far the masks localise the objects: for each ground-truth object (ids 1..num_true-1
  present in the frame), the largest contrast over slots k of
    mean of m_k over the object's pixels - mean of m_k over the other pixels of the frame,
  averaged over the frame's objects. 0 for spatially uniform masks (whichever slot wins the
  argmax), 1 when one slot's mask is 1 on the whole object and 0 elsewhere. Unlike FG-ARI and
  `foreground_in_background_slot`, which move only once an object's mask wins the argmax, it
  rises as soon as a mask starts to follow its object.

  true_seg [B, T, H, W] (0 = background), masks [B, T, K, H, W] -> [B, T] float32; 0 on
  frames without foreground. An object that fills the frame has no other pixels (their mean
  counts as 0).
  """
  true_seg, masks = _check_seg_and_masks(true_seg, masks)
  ids = jax.nn.one_hot(true_seg, num_true, dtype=masks.dtype)                 # [B, T, H, W, N]
  area = jnp.sum(ids, axis=(2, 3))                                            # [B, T, N]
  inside = jnp.einsum("btkhw,bthwn->btkn", masks, ids)                        # [B, T, K, N]
  total = jnp.sum(masks, axis=(3, 4))[..., None]                              # [B, T, K, 1]
  rest = true_seg.shape[2] * true_seg.shape[3] - area                         # [B, T, N]
  contrast = (inside / jnp.maximum(area, 1)[:, :, None]
              - (total - inside) / jnp.maximum(rest, 1)[:, :, None])
  best = jnp.max(contrast, axis=2)                                            # [B, T, N]
  present = (area > 0).at[..., 0].set(False)
  num = jnp.sum(present, axis=-1)
  value = jnp.sum(jnp.where(present, best, 0.0), axis=-1) / jnp.maximum(num, 1)
  return jnp.where(num > 0, value, 0.0).astype(jnp.float32)


def summarize_fg_ari(fg_ari, has_fg) -> Dict[str, object]:
  """Averages per-frame FG-ARI, leaving out frames without foreground (NumPy, not jit-able).

  Args:
    fg_ari: [B, T] per-frame FG-ARI from `fg_ari_per_frame`.
    has_fg: [B, T] bool from `fg_ari_per_frame`.

  Returns:
    dict with
      fg_ari: mean over sequences of the last frame's FG-ARI (the PARTS paper's number), over
        sequences whose last frame has foreground; None if there is none.
      fg_ari_sem: the standard error of that mean over sequences (sample standard deviation,
        ddof = 1, over sqrt(n)); None for fewer than 2 sequences: the spread to expect from
        evaluating other sequences. Re-drawing the slot noise (`eval.seed`) or changing the
        processor (float rounding) on the same sequences moved the shipped checkpoint's number
        by up to about one standard error (docs/study.md, run 25).
      fg_ari_per_step: list of T values, the mean over sequences at each step (None where no
        sequence has foreground at that step).
      num_frames_without_foreground: number of the B*T frames left out.
      num_sequences: B.
      num_sequences_scored: sequences that count towards `fg_ari` (last frame has foreground).
      fg_ari_per_sequence: list of B values, each sequence's last-frame FG-ARI (None where that
        frame has no foreground): what `paired_fg_ari_difference` compares.
  """
  fg_ari = np.asarray(fg_ari, np.float64)
  has_fg = np.asarray(has_fg, bool)
  if fg_ari.ndim != 2 or fg_ari.shape != has_fg.shape:
    raise ValueError(f"fg_ari {fg_ari.shape} and has_fg {has_fg.shape} must both be [B, T]")
  per_step: List[Optional[float]] = []
  for t in range(fg_ari.shape[1]):
    valid = has_fg[:, t]
    per_step.append(float(fg_ari[valid, t].mean()) if valid.any() else None)
  last = fg_ari[has_fg[:, -1], -1] if per_step else np.zeros(0)   # T = 0: no last frame
  return {
      "fg_ari": per_step[-1] if per_step else None,
      "fg_ari_sem": standard_error(last),
      "fg_ari_per_step": per_step,
      "num_frames_without_foreground": int((~has_fg).sum()),
      "num_sequences": int(fg_ari.shape[0]),
      "num_sequences_scored": int(has_fg[:, -1].sum()) if per_step else 0,
      "fg_ari_per_sequence": ([float(a) if h else None
                               for a, h in zip(fg_ari[:, -1], has_fg[:, -1])] if per_step else []),
  }


def standard_error(values) -> Optional[float]:
  """Sample standard deviation (ddof = 1) of `values` over sqrt(n); None for n < 2."""
  values = np.asarray(values, np.float64)
  return float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else None


def paired_fg_ari_difference(a, b) -> Dict[str, object]:
  """FG-ARI of evaluation `a` minus that of `b` on the same sequences, paired per sequence (NumPy).

  Args:
    a, b: lists of per-sequence last-frame FG-ARI of equal length (metrics.json's
      "fg_ari_per_sequence", from two evaluations of the same eval sequences); None entries
      (no foreground) must sit at the same sequences in both.

  Returns:
    dict with difference (mean over sequences of a - b, i.e. a's fg_ari minus b's), sem (its
    standard error, `standard_error` of the per-sequence differences) and n. Both read the same
    sequences, so what the sequences share cancels; what differs per sequence between the two
    runs does not: with the slots' noise re-drawn the sem stayed close to fg_ari_sem on the
    shipped sprites checkpoint (0.011 against 0.013, docs/study.md run 28).
  """
  if len(a) != len(b):
    raise ValueError(f"the evaluations scored {len(a)} and {len(b)} sequences: not paired")
  if any((x is None) != (y is None) for x, y in zip(a, b)):
    raise ValueError("the evaluations disagree on which sequences have foreground: not the "
                     "same eval sequences")
  d = np.array([x - y for x, y in zip(a, b) if x is not None], np.float64)
  return {"difference": float(d.mean()) if d.size else None,
          "sem": standard_error(d),
          "n": int(d.size)}


def mse(video, recon) -> jnp.ndarray:
  """Mean squared error per frame: [..., H, W, C] x2 -> [...] (e.g. [B, T])."""
  video = jnp.asarray(video, jnp.float32)
  recon = jnp.asarray(recon, jnp.float32)
  if video.shape != recon.shape:
    raise ValueError(f"video {video.shape} and recon {recon.shape} must have the same shape")
  return jnp.mean((video - recon)**2, axis=(-3, -2, -1))
