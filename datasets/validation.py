"""Checks that an episode is in the format of `datasets.base` (the one episode
validator: the pipeline, the cache and the npz loader use it).

Every failure raises `base.DataError` naming the origin (file or source, and
episode index) and what to fix. The checks are cheap (one pass over floats,
none over uint8 pixels), so they run on every episode the pipeline reads.
"""
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from datasets import base


def _fail(origin: str, problem: str, fix: str):
  raise base.DataError(f"{origin}: {problem}; {fix}")


def check_layout(origin: str, video: Tuple[tuple, Any],
                 actions: Optional[Tuple[tuple, Any]] = None,
                 segmentations: Optional[Tuple[tuple, Any]] = None, *,
                 video_dtypes: Optional[Sequence[Any]] = None) -> None:
  """Raises DataError unless the (shape, dtype) pairs of an episode's arrays fit
  the format: video [T, H, W, 3] (T, H, W >= 1) of dtype uint8 or float (or one
  of `video_dtypes`), actions [T, A] float or integer, segmentations [T, H, W]
  integer or bool. Shapes and dtypes only, so it also checks the headers of a
  file before its arrays are read (datasets/npz_episodes.py)."""
  shape, dtype = tuple(video[0]), np.dtype(video[1])
  if len(shape) != 4 or shape[-1] != 3:
    _fail(origin, f"video has shape {shape}, expected [T, H, W, 3]",
          "store RGB frames as [T, H, W, 3] (channels last)")
  if min(shape) < 1:
    _fail(origin, f"video has shape {shape} (empty)",
          "episodes need at least one frame")
  if video_dtypes is not None:
    if dtype not in [np.dtype(d) for d in video_dtypes]:
      names = " or ".join(np.dtype(d).name for d in video_dtypes)
      _fail(origin, f"video dtype is {dtype}", f"store {names}")
  elif dtype != np.uint8 and not np.issubdtype(dtype, np.floating):
    _fail(origin, f"video dtype is {dtype}",
          "store uint8 (0..255) or float in [0, 1]")
  t = shape[0]
  if actions is not None:
    a_shape, a_dtype = tuple(actions[0]), np.dtype(actions[1])
    if len(a_shape) != 2 or a_shape[0] != t:
      _fail(origin, f"actions have shape {a_shape} but the video has {t} "
            "frames", "store actions as [T, A], one per frame (actions[t] "
            "moves frame t to t+1)")
    if not (np.issubdtype(a_dtype, np.floating) or
            np.issubdtype(a_dtype, np.integer)):
      _fail(origin, f"actions dtype is {a_dtype}", "store float32")
  if segmentations is not None:
    s_shape, s_dtype = tuple(segmentations[0]), np.dtype(segmentations[1])
    if s_shape != shape[:3]:
      _fail(origin, f"segmentations have shape {s_shape}, video {shape}",
            "store masks as [T, H, W] matching the frames")
    if not (np.issubdtype(s_dtype, np.integer) or s_dtype == np.bool_):
      _fail(origin, f"segmentations dtype is {s_dtype}",
            "store integer ids (0 = background)")


def _layout(array) -> Optional[Tuple[tuple, Any]]:
  return None if array is None else (np.shape(array), np.asarray(array).dtype)


def validate_episode(episode: base.Episode, origin: str, *,
                     image_size: Optional[int] = None,
                     num_frames: Optional[int] = None,
                     action_dim: Optional[int] = None,
                     require_segmentations: bool = False) -> None:
  """Raises DataError if `episode` is not a valid episode.

  Args:
    episode: dict with "video" [T,H,W,3] (uint8, or float in [0, 1]),
      "actions" [T,A] float, optional "segmentations" [T,H,W] integer >= 0.
    origin: where the episode comes from (file/source and index).
    image_size: if given, frames must be image_size x image_size.
    num_frames: if given, episodes need at least this many frames.
    action_dim: if given, A must equal it.
    require_segmentations: whether "segmentations" must be present.
  """
  if not isinstance(episode, dict) or "video" not in episode:
    got = (f"keys {sorted(episode)}" if isinstance(episode, dict)
           else type(episode).__name__)
    _fail(origin, f"expected a dict with a 'video' array, got {got}",
          "sources must return episodes as in datasets/base.py")
  video = np.asarray(episode["video"])
  actions, seg = episode.get("actions"), episode.get("segmentations")
  check_layout(origin, _layout(video), _layout(actions), _layout(seg))
  t, h, w = video.shape[:3]
  if video.dtype != np.uint8:
    if not np.isfinite(video).all():
      _fail(origin, "video contains NaN or inf pixels",
            "fix or drop the episode")
    lo, hi = video.min(), video.max()
    if lo < 0.0 or hi > 1.0:
      _fail(origin, f"float video values lie in [{lo:g}, {hi:g}], expected "
            "[0, 1]", "store uint8 frames or floats scaled to [0, 1]")
  if image_size is not None and (h, w) != (image_size, image_size):
    _fail(origin, f"frames are {h}x{w} but config data.image_size="
          f"{image_size}", "set data.image_size to match the data or resize "
          "the data (generators: regenerate with the new size)")
  if num_frames is not None and t < num_frames:
    _fail(origin, f"episode has {t} frames but config data.num_frames="
          f"{num_frames}", "lower data.num_frames or use longer episodes")

  if actions is None:
    if action_dim:
      _fail(origin, "no 'actions'", f"the source declares {action_dim} action "
            "dimensions; store actions [T, A]")
  else:
    actions = np.asarray(actions)
    if action_dim is not None and actions.shape[1] != action_dim:
      _fail(origin, f"actions have {actions.shape[1]} dimensions, the source "
            f"declares {action_dim}", "make them agree")
    if actions.size and not np.isfinite(actions).all():
      _fail(origin, "actions contain NaN or inf", "fix or drop the episode")

  if seg is None:
    if require_segmentations:
      _fail(origin, "no 'segmentations'", "the source declares segmentations;"
            " store them as [T, H, W] integer ids")
    return
  seg = np.asarray(seg)
  if seg.size and seg.min() < 0:
    _fail(origin, f"segmentations contain negative id {seg.min()}",
          "use 0 for background and 1..N for objects")
