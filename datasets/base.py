"""The one batch format every data source produces, and the episode-source interface.

An *episode* is one video sequence, as NumPy arrays:
  video:         [T, H, W, 3] uint8 (0..255)
  actions:       [T, A] float32, A may be 0. actions[t] is the action taken after frame t,
                 i.e. it moves the world/camera from frame t to frame t+1 (the model feeds
                 a_{t-1} = actions[t-1] at step t; the last action is unused).
  segmentations: [T, H, W] int32, 0 = background, 1..N = objects (absent if the source has none).

A *batch* (what the model and training loop consume) is the same with a leading batch axis and
video converted to float32 in [0, 1]:
  {"video": [B,T,H,W,3] float32, "actions": [B,T,A] float32, "segmentations": [B,T,H,W] int32}
"""
import abc
from typing import Dict

import numpy as np

Episode = Dict[str, np.ndarray]

#: The two splits every loader provides, and their ids (random streams and
#: cache keys of the generators use the id).
SPLITS = ("train", "eval")
SPLIT_IDS = {"train": 0, "eval": 1}


class DataError(ValueError):
  """Bad or missing data: the message names the file (or source) and the fix."""


def check_split(split: str, who: str = "data") -> None:
  """DataError unless `split` is one of SPLITS; `who` names the loader."""
  if split not in SPLITS:
    raise DataError(f"{who}: unknown split {split!r}; valid: "
                    f"{', '.join(SPLITS)}")


class EpisodeSource(abc.ABC):
  """Random-access collection of episodes for one split."""

  #: Number of action dimensions A (0 when the source has no actions).
  action_dim: int = 0
  #: Whether episodes carry "segmentations".
  has_segmentations: bool = True
  #: Human-readable origin (a path or generator name), used in error messages.
  origin: str = ""

  @abc.abstractmethod
  def __len__(self) -> int:
    ...

  @abc.abstractmethod
  def __getitem__(self, index: int) -> Episode:
    ...


def check_index(source: EpisodeSource, index) -> int:
  """int(index); IndexError naming the source unless 0 <= index < len."""
  if not 0 <= index < len(source):
    raise IndexError(f"{source.origin}: index {index} out of range "
                     f"[0, {len(source)})")
  return int(index)
