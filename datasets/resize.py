"""resize: the one image/mask resizing and cropping of the loaders.

Video: separable per axis, exact area averaging when shrinking (the mean of
each 2x2 block when halving), bilinear with aligned pixel centres when
enlarging. Segmentations: nearest neighbour (the input pixel under each
output pixel's centre), so ids are never blended.
"""
import numpy as np

from datasets import base


def _resize_matrix(n_in: int, n_out: int) -> np.ndarray:
  """[n_out, n_in] weights: area averaging when shrinking, else bilinear."""
  weights = np.zeros((n_out, n_in))
  if n_out <= n_in:  # Output pixel i covers input interval [i s, (i + 1) s).
    scale = n_in / n_out
    edges = np.arange(n_out + 1) * scale
    for i in range(n_out):
      lo, hi = edges[i], edges[i + 1]
      for j in range(int(np.floor(lo)), min(int(np.ceil(hi)), n_in)):
        weights[i, j] = (min(hi, j + 1) - max(lo, j)) / scale
  elif n_in == 1:
    weights[:] = 1.0
  else:  # Pixel centres aligned (half-pixel convention), edges clamped.
    x = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    left = np.minimum(np.floor(x).astype(int), n_in - 2)
    frac = x - left
    weights[np.arange(n_out), left] = 1 - frac
    weights[np.arange(n_out), left + 1] += frac
  return weights


def resize_video(video: np.ndarray, height: int, width: int) -> np.ndarray:
  """[T, h, w, 3] uint8 -> [T, height, width, 3] uint8 (rounded)."""
  video = np.asarray(video)
  if video.shape[1:3] == (height, width):
    return video
  rows = _resize_matrix(video.shape[1], height).astype(np.float32)
  cols = _resize_matrix(video.shape[2], width).astype(np.float32)
  out = np.tensordot(rows, video.astype(np.float32), axes=([1], [1]))
  out = np.tensordot(out, cols, axes=([2], [1]))  # [height, T, 3, width]
  out = out.transpose(1, 0, 3, 2)
  return np.clip(np.round(out), 0, 255).astype(np.uint8)


def resize_segmentations(seg: np.ndarray, height: int,
                         width: int) -> np.ndarray:
  """[T, h, w] ids -> [T, height, width] int32 by nearest neighbour.

  Output pixel (i, j) takes input pixel (floor((i + .5) * h / height),
  floor((j + .5) * w / width)), i.e. the one under its centre.
  """
  seg = np.asarray(seg)
  h, w = seg.shape[1:3]
  rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(int), h - 1)
  cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(int), w - 1)
  return seg[:, rows][:, :, cols].astype(np.int32)


def fit_episode(episode: base.Episode, image_size: int, num_frames: int,
                origin: str) -> base.Episode:
  """The first `num_frames` frames, resized to image_size x image_size.

  Args:
    episode: {"video": [T, h, w, 3] uint8, "actions": [T, A], optional
      "segmentations": [T, h, w] ids}.
    image_size, num_frames: output S and T'.
    origin: named in the DataError when T < num_frames.

  Returns:
    {"video": [T', S, S, 3] uint8, "actions": [T', A] float32,
     "segmentations": [T', S, S] int32 (when given)}.
  """
  length = episode["video"].shape[0]
  if length < num_frames:
    raise base.DataError(f"{origin}: has {length} frames, fewer than "
                         f"data.num_frames={num_frames}; lower data.num_frames")
  out = {"video": resize_video(episode["video"][:num_frames], image_size,
                               image_size),
         "actions": np.asarray(episode["actions"][:num_frames], np.float32)}
  if "segmentations" in episode:
    out["segmentations"] = resize_segmentations(
        episode["segmentations"][:num_frames], image_size, image_size)
  return out
