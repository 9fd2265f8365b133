"""Data for parts-jax: episode sources, the on-disk cache and batching.

Light on purpose: importing `datasets` loads nothing heavy (tensorflow-datasets
is imported only by `datasets.cache`). Entry points:
  datasets.registry.build_source(data_config, split) -> base.EpisodeSource
  datasets.registry.get_iterator(data_config, split, batch_size, seed=...)
"""
from datasets.base import DataError, Episode, EpisodeSource
