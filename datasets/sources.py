"""sources: episode sources the file-format loaders share.

  GeneratedSource      episodes made on demand by a function of their index
                       (the procedural datasets, sprites and room3d).
  ListSource           episodes held in memory.
  SequentialReader     random access (for the cache) over a sequential reader.
  cached_or_in_memory  the N episodes of a sequential reader, written once to
                       the array_record cache (data.cache, default True) or
                       held in memory.
SequentialReader and cached_or_in_memory are used by movi.py and
multi_object.py, whose record files are read in order.
"""
from typing import Callable, Iterator, Sequence

from datasets import base


class SequentialReader:
  """Random access, for `cache.build_cached`, over a sequential reader.

  build_cached asks for episodes 0, 0, 1, 2, ... (and a resumed run starts at
  a later index); `open_at(i)` must return an iterator of episodes i, i+1, ...
  It is re-opened only when going backwards.
  """

  def __init__(self, open_at: Callable[[int], Iterator[base.Episode]],
               origin: str):
    self._open_at, self._origin = open_at, origin
    self._iterator, self._next, self._last = None, 0, (None, None)

  def __call__(self, index: int) -> base.Episode:
    if self._last[0] == index:
      return self._last[1]
    if self._iterator is None or index < self._next:
      self._iterator, self._next = self._open_at(index), index
    while self._next <= index:
      try:
        episode = next(self._iterator)
      except StopIteration:
        raise base.DataError(f"{self._origin}: has only {self._next} "
                             f"examples; lower data.num_train / "
                             f"data.num_eval") from None
      self._next += 1
    self._last = (index, episode)
    return episode


class GeneratedSource(base.EpisodeSource):
  """Episodes generated on the fly (in memory, random access): episode i is
  make(i), a pure function of i. Subclasses set action_dim."""

  has_segmentations = True

  def __init__(self, make: Callable[[int], base.Episode], num_episodes: int,
               origin: str):
    self._make, self._num, self.origin = make, int(num_episodes), origin

  def __len__(self) -> int:
    return self._num

  def __getitem__(self, index: int) -> base.Episode:
    return self._make(int(base.check_index(self, index)))


class ListSource(base.EpisodeSource):
  """Episodes held in memory (all with segmentations)."""

  has_segmentations = True

  def __init__(self, episodes: Sequence[base.Episode], origin: str):
    self._episodes, self.origin = list(episodes), origin
    if self._episodes:
      self.action_dim = self._episodes[0]["actions"].shape[-1]

  def __len__(self) -> int:
    return len(self._episodes)

  def __getitem__(self, index: int) -> base.Episode:
    return self._episodes[index]


def cached_or_in_memory(data_config, split: str, name: str, params: dict,
                        open_at: Callable[[int], Iterator[base.Episode]],
                        num: int, origin: str) -> base.EpisodeSource:
  """The `num` episodes of `open_at(0)`: cached (data.cache) or in memory.

  Args:
    data_config: reads data.cache (default True) and data.cache_dir.
    split: "train" or "eval" (part of the cache path).
    name, params: the cache key (params must change when the episodes do).
    open_at: open_at(i) -> iterator of episodes i, i+1, ...
    num: how many episodes.
    origin: named in error messages.
  """
  reader = SequentialReader(open_at, origin)
  if not data_config.get("cache", True):
    return ListSource([reader(i) for i in range(num)], origin)
  from datasets import cache  # pylint: disable=g-import-not-at-top
  path = cache.build_cached(
      name, params, lambda split_id, index: reader(index), num,
      data_dir=data_config.get("cache_dir", None) or None, split=split)
  return cache.CachedSource(path)
