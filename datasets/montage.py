"""montage: the one id palette, and the frame montage of the data generators' docs.

  python -m datasets.sprites --montage docs/sprites_montage.png
  python -m datasets.room3d --montage docs/room3d_montage.png
"""
import argparse
import colorsys
from typing import Callable, Optional, Sequence

import numpy as np

from datasets import base

# 0 is the background (black); then Sasha Trubetskoy's 20 distinct colours, and
# white; `palette` adds golden-ratio hues beyond them.
_BASE_PALETTE = (
    (0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200),
    (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230),
    (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195),
    (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
    (255, 255, 255))


def palette(num_colors: int) -> np.ndarray:
  """The one id palette (data montages and the model's figures): [num_colors, 3]
  uint8 distinct colours, entry 0 black; palette(n) is a prefix of palette(m > n)."""
  colors = list(_BASE_PALETTE[:num_colors])
  i = 0
  while len(colors) < num_colors:  # Beyond the base palette: golden-ratio hues.
    rgb = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.5 + 0.5 * (i % 2),
                              0.6 + 0.4 * ((i // 2) % 2))
    color = tuple(int(round(255 * c)) for c in rgb)
    if color not in colors:
      colors.append(color)
    i += 1
  return np.array(colors, np.uint8).reshape(num_colors, 3)


def colour_masks(segmentations: np.ndarray) -> np.ndarray:
  """[..., H, W] ids >= 0 -> [..., H, W, 3] uint8 colours of `palette`."""
  ids = np.asarray(segmentations).astype(np.int64)
  return palette(int(ids.max(initial=0)) + 1)[ids]


def montage(episodes: Sequence[base.Episode], every: int = 1, scale: int = 2,
            gap: int = 2) -> np.ndarray:
  """[rows, columns, 3] uint8: per episode a row of frames (every `every`-th,
  upscaled by `scale`) and a row of their coloured masks; white gaps of
  `gap` pixels between frames and rows, 4 * gap between episodes."""
  white = lambda h, w: np.full((h, w, 3), 255, np.uint8)
  rows = []
  for episode in episodes:
    video = episode["video"][::every]
    masks = colour_masks(episode["segmentations"][::every])
    for frames in (video, masks):
      frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
      _, h, w, _ = frames.shape
      row = []
      for frame in frames:
        row += [frame, white(h, gap)]
      rows += [np.concatenate(row[:-1], axis=1), white(gap, 1)]
    rows[-1] = white(4 * gap, 1)  # Wider gap between episodes.
  width = rows[0].shape[1]
  rows = [np.broadcast_to(r, (r.shape[0], width, 3)) if r.shape[1] == 1 else r
          for r in rows[:-1]]
  return np.concatenate(rows, axis=0)


def main(description: str, default_path: str, default_frames: int,
         make: Callable[..., base.Episode], every: int = 1,
         argv: Optional[Sequence[str]] = None) -> None:
  """The --montage command line of a generator.

  make(seed, index, image_size=..., num_frames=...) -> episode `index` of
  the train split.
  """
  parser = argparse.ArgumentParser(description=description)
  parser.add_argument("--montage", default=default_path)
  parser.add_argument("--num_episodes", type=int, default=2)
  parser.add_argument("--num_frames", type=int, default=default_frames)
  parser.add_argument("--image_size", type=int, default=64)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  from PIL import Image  # pylint: disable=g-import-not-at-top
  episodes = [make(args.seed, i, image_size=args.image_size,
                   num_frames=args.num_frames)
              for i in range(args.num_episodes)]
  Image.fromarray(montage(episodes, every=every)).save(args.montage)
  print(f"wrote {args.montage}")
