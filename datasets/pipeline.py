"""Batching: deterministic, resumable, multi-host batches from an EpisodeSource.

The global sample stream is the concatenation of epochs; epoch e visits the
episodes in the order np.random.default_rng([seed, e]).permutation(N) (or
0..N-1 without shuffling). Global batch `step` holds stream positions
[step * B, (step + 1) * B), so a batch is a pure function of (seed, step):
resuming at `start_step` reproduces exactly what an uninterrupted run would
have seen, and the training checkpoint only needs the step. Process p of P
takes positions [step * B + p * B/P, step * B + (p + 1) * B/P) of each global
batch. A batch may span an epoch boundary.
"""
import functools
import queue
import threading
from typing import Dict, Optional

import numpy as np

from datasets import base
from datasets import validation

Batch = Dict[str, np.ndarray]


class _Batcher:
  """Builds batch `step` for one process (pure function of the step)."""

  def __init__(self, source, batch_size, process_index, process_count, seed,
               shuffle, num_frames, image_size):
    self.source = source
    self.origin = getattr(source, "origin", "") or type(source).__name__
    self.num = len(source)
    self.global_batch_size = batch_size
    self.batch_size = batch_size // process_count
    self.offset = process_index * self.batch_size
    self.seed = seed
    self.shuffle = shuffle
    self.num_frames = num_frames
    self.image_size = image_size
    self.shape = None  # Shapes of the first episode, for consistency checks.
    self.permutation = functools.lru_cache(maxsize=4)(self._permutation)

  def _permutation(self, epoch: int) -> np.ndarray:
    if not self.shuffle:
      return np.arange(self.num)
    return np.random.default_rng([self.seed, epoch]).permutation(self.num)

  def episode_indices(self, step: int) -> np.ndarray:
    positions = (step * self.global_batch_size + self.offset +
                 np.arange(self.batch_size))
    epochs, offsets = np.divmod(positions, self.num)
    return np.array([self.permutation(int(e))[o]
                     for e, o in zip(epochs, offsets)], dtype=np.int64)

  def episode(self, index: int) -> base.Episode:
    origin = f"{self.origin} episode {index}"
    episode = self.source[int(index)]
    validation.validate_episode(
        episode, origin, image_size=self.image_size,
        num_frames=self.num_frames,
        require_segmentations=self.source.has_segmentations)
    t = self.num_frames or episode["video"].shape[0]
    video = episode["video"][:t]
    actions = episode.get("actions")
    if actions is None:
      actions = np.zeros((video.shape[0], 0), np.float32)
    out = {"video": video, "actions": np.asarray(actions, np.float32)[:t]}
    if self.source.has_segmentations:
      out["segmentations"] = episode["segmentations"][:t]
    shape = {k: v.shape for k, v in out.items()}
    if self.shape is None:
      self.shape = shape
    elif shape != self.shape:
      raise base.DataError(f"{origin}: shapes {shape} differ from earlier "
                           f"episodes {self.shape}; all episodes of a source "
                           "must have the same shapes (or set data.num_frames "
                           "to crop)")
    return out

  def __call__(self, step: int) -> Batch:
    episodes = [self.episode(i) for i in self.episode_indices(step)]
    video = np.stack([e["video"] for e in episodes])
    if video.dtype == np.uint8:
      video = video.astype(np.float32) / np.float32(255.0)
    batch = {"video": video.astype(np.float32, copy=False),
             "actions": np.stack([e["actions"] for e in episodes])}
    if "segmentations" in episodes[0]:
      batch["segmentations"] = np.stack(
          [e["segmentations"] for e in episodes]).astype(np.int32)
    return batch


def _produce(batcher: _Batcher, out: queue.Queue, stop: threading.Event,
             step: int) -> None:
  """Prefetch thread: puts batches step, step+1, ... (or an exception) in `out`."""
  while not stop.is_set():
    try:
      item = batcher(step)
    except Exception as e:  # pylint: disable=broad-except
      item = e  # Re-raised by __next__.
    while not stop.is_set():
      try:
        out.put(item, timeout=0.1)
        break
      except queue.Full:
        pass
    if isinstance(item, Exception):
      return
    step += 1


class BatchIterator:
  """Infinite iterator of batches (see datasets/base.py for the format).

  Batches: {"video": [b,T,H,W,3] float32 in [0,1], "actions": [b,T,A] float32,
  "segmentations": [b,T,H,W] int32 (if the source has them)} with
  b = batch_size // process_count (this process's share of the global batch).
  `step` is the number of the batch the next __next__ returns: store it in
  checkpoints and pass it back as `start_step` to resume.

  Args:
    source: the episodes.
    batch_size: global batch size (over all processes).
    seed: shuffling seed.
    shuffle: visit episodes in a fresh random order each epoch (else in order).
    start_step: first batch to produce.
    process_index, process_count: this process's slice of each global batch.
    num_frames: crop episodes to their first num_frames frames.
    image_size: require frames of image_size x image_size.
    prefetch: batches prepared ahead by a background thread (0: none).
  """

  def __init__(self, source: base.EpisodeSource, batch_size: int, *,
               seed: int, shuffle: bool = True, start_step: int = 0,
               process_index: int = 0, process_count: int = 1,
               num_frames: Optional[int] = None,
               image_size: Optional[int] = None, prefetch: int = 2):
    origin = getattr(source, "origin", "") or type(source).__name__
    if len(source) == 0:
      raise base.DataError(f"{origin}: the split has no episodes; check the "
                           "data path / data.num_train and data.num_eval")
    if batch_size <= 0:
      raise base.DataError(f"batch_size must be positive, got {batch_size}")
    if not 0 <= process_index < process_count:
      raise base.DataError(f"process_index={process_index} not in "
                           f"[0, process_count={process_count})")
    if batch_size % process_count:
      raise base.DataError(
          f"global batch_size={batch_size} is not divisible by "
          f"process_count={process_count}; choose a multiple of it")
    if start_step < 0:
      raise base.DataError(f"start_step must be >= 0, got {start_step}")
    self._batcher = _Batcher(source, batch_size, process_index, process_count,
                             seed, shuffle, num_frames, image_size)
    self.source = source
    self.global_batch_size = batch_size
    self.batch_size = self._batcher.batch_size
    self.step = start_step
    self._queue = None
    self._error = None
    self._stop = threading.Event()
    if prefetch > 0:  # The thread holds no reference to self: see __del__.
      self._queue = queue.Queue(maxsize=prefetch)
      threading.Thread(target=_produce, daemon=True, args=(
          self._batcher, self._queue, self._stop, start_step)).start()

  @property
  def steps_per_epoch(self) -> int:
    """Global batches that fit in one pass over the source (at least 1)."""
    return max(1, self._batcher.num // self.global_batch_size)

  def episode_indices(self, step: int) -> np.ndarray:
    """Source indices of this process's share of global batch `step`."""
    return self._batcher.episode_indices(step)

  def __iter__(self):
    return self

  def __next__(self) -> Batch:
    if self._queue is None:
      batch = self._batcher(self.step)
    else:
      batch = self._error or self._queue.get()
      if isinstance(batch, Exception):
        self._error = batch  # The thread has stopped: keep failing.
        raise batch
    self.step += 1
    return batch

  def close(self) -> None:
    """Stops the prefetch thread (also done when the iterator is collected)."""
    self._stop.set()

  def __del__(self):
    if hasattr(self, "_stop"):  # __init__ may have raised before setting it.
      self._stop.set()

