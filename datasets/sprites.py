"""sprites: procedural 2D sprites video with a moving camera (pure NumPy).

A world canvas of `world_scale * image_size` pixels per side holds a smooth,
muted random background and `min_objects..max_objects` flat-coloured sprites
(square, circle, triangle, diamond, star, cross) of random sizes and saturated,
pairwise distinct colours (hues >= 30 degrees apart). Sprites move with constant velocity and bounce off
the world borders; they keep a fixed depth order (sprite j+1 is drawn over
sprite j). They start inside the first view, so most of them stay visible.

The camera is an `image_size x image_size` window into the world. Between frame
t and t+1 it moves by `actions[t] = (dy, dx)` pixels: a random integer step in
[-max_camera_step, max_camera_step] per axis, clipped so the window stays in
the world. The stored action is the applied (clipped) step, so frame t+1 is
exactly frame t shifted by actions[t] wherever the sprites did not move.

Episode (see `datasets.base`):
  video:         [T, H, W, 3] uint8.
  actions:       [T, 2] float32, integer-valued (dy, dx) camera steps in pixels.
                 actions[T-1] is sampled (and clipped) too but moves to a frame
                 that is not rendered.
  segmentations: [T, H, W] int32, 0 = background, j = sprite j (1..N, in depth
                 order, N <= max_objects); sprites outside the view or fully
                 occluded are absent from a frame.

Sprite colours are fully saturated (max channel 255, min channel 0) and the
background stays within [BG_MIN, BG_MAX] per channel, so a sprite pixel never
equals a background pixel.

Montage for the docs:
  python -m datasets.sprites --montage docs/sprites_montage.png
"""
import colorsys
import functools
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from datasets import base
from datasets import montage
from datasets import sources

SHAPES = ("square", "circle", "triangle", "diamond", "star", "cross")
SPLIT_IDS = base.SPLIT_IDS  # Episode i of split s: rng [seed, id(s), i].
#: Bump when the generator's output changes: it is part of the cache key.
VERSION = 1
BG_MIN, BG_MAX = 64, 192


def shape_stamp(shape: str, radius: float) -> np.ndarray:
  """Boolean [2R+1, 2R+1] mask of a sprite centred in the stamp, R=ceil(radius)."""
  half = int(np.ceil(radius))
  y, x = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float64)
  r = float(radius)
  if shape == "square":
    mask = (np.abs(x) <= 0.8 * r) & (np.abs(y) <= 0.8 * r)
  elif shape == "circle":
    mask = x**2 + y**2 <= r**2
  elif shape == "triangle":  # Equilateral, pointing up, inscribed in the circle.
    mask = (y <= 0.5 * r) & (np.abs(x) <= (y + r) / np.sqrt(3.0))
  elif shape == "diamond":
    mask = np.abs(x) + np.abs(y) <= r
  elif shape == "star":  # Five points.
    angle = np.arctan2(y, x) + np.pi / 2
    mask = np.hypot(x, y) <= r * (0.6 + 0.4 * np.cos(5 * angle))
  elif shape == "cross":
    arm = max(0.35 * r, 0.75)
    mask = (((np.abs(x) <= arm) & (np.abs(y) <= r)) |
            ((np.abs(y) <= arm) & (np.abs(x) <= r)))
  else:
    raise ValueError(f"unknown sprite shape {shape!r}; valid: {SHAPES}")
  mask[half, half] = True  # Never empty, even for tiny radii.
  return mask


def _background(rng: np.random.Generator, size: int,
                amplitude_scale: float = 1.0) -> np.ndarray:
  """Smooth muted [size, size, 3] uint8 canvas: two octaves of upsampled noise, their
  contrast scaled by `amplitude_scale` (0 gives a flat colour)."""
  base_colour = rng.uniform(BG_MIN + 24, BG_MAX - 24, size=3)
  canvas = np.zeros((size, size, 3))
  for cells, amplitude in ((4, 40.0), (12, 16.0)):
    grid = rng.uniform(-1.0, 1.0, size=(cells + 1, cells + 1, 3))
    coords = np.linspace(0.0, cells, size)
    i0 = np.minimum(coords.astype(int), cells - 1)
    frac = coords - i0
    # Bilinear interpolation, rows then columns.
    rows = grid[i0] * (1 - frac)[:, None, None] + grid[i0 + 1] * frac[:, None, None]
    canvas += amplitude_scale * amplitude * (rows[:, i0] * (1 - frac)[None, :, None] +
                           rows[:, i0 + 1] * frac[None, :, None])
  return np.clip(np.rint(base_colour + canvas), BG_MIN, BG_MAX).astype(np.uint8)


def _colours(rng: np.random.Generator, num: int) -> np.ndarray:
  """`num` saturated colours with hues >= 30 degrees apart: [num, 3] uint8."""
  hues = (rng.choice(12, size=num, replace=False) + rng.uniform()) / 12.0
  rgb = [colorsys.hsv_to_rgb(h, 1.0, 1.0) for h in hues]
  return np.rint(np.array(rgb) * 255).astype(np.uint8).reshape(num, 3)


def _bounce(pos: np.ndarray, vel: np.ndarray, low: np.ndarray,
            high: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """Moves one step and reflects off [low, high] per coordinate."""
  pos = pos + vel
  vel = vel.copy()
  under, over = pos < low, pos > high
  pos = np.where(under, 2 * low - pos, pos)
  pos = np.where(over, 2 * high - pos, pos)
  vel[under | over] *= -1
  return np.clip(pos, low, high), vel


def generate_episode(rng: np.random.Generator, *, num_frames: int = 16,
                     image_size: int = 64, min_objects: int = 3,
                     max_objects: int = 6, world_scale: float = 2.0,
                     max_camera_step: Optional[int] = None,
                     max_speed: Optional[float] = None,
                     min_radius: Optional[float] = None,
                     max_radius: Optional[float] = None,
                     shapes: Sequence[str] = SHAPES,
                     background_amplitude: float = 1.0,
                     return_info: bool = False):
  """One sprites episode (all randomness from `rng`).

  Args:
    rng: the episode's random generator.
    num_frames: T.
    image_size: H = W of the view.
    min_objects, max_objects: number of sprites N, uniform in [min, max].
    world_scale: world side / image_size (>= 1).
    max_camera_step: max |camera step| per axis in pixels (default
      image_size // 10).
    max_speed: max sprite speed in pixels/frame (default 0.05 * image_size;
      0 freezes the sprites).
    min_radius, max_radius: sprite radius range in pixels (default 0.08 and
      0.18 * image_size).
    shapes: sprite shapes to draw from (subset of SHAPES).
    background_amplitude: contrast of the background texture (1 = default, 0 = flat).
    return_info: also return the scene (for tests and debugging).

  Returns:
    The episode dict; with `return_info`, (episode, info) where info holds
    "background" [S,S,3] uint8 world canvas, "camera" [T+1,2] int view top-left
    corners, "centers" [T,N,2] int sprite centres (world pixels), "stamps"
    (N boolean masks), "colours" [N,3] uint8 and "shapes" (N names).
  """
  if not 1 <= min_objects <= max_objects <= 255:
    raise ValueError(f"need 1 <= min_objects <= max_objects <= 255, got "
                     f"{min_objects}, {max_objects}")
  if max_objects > 12:
    raise ValueError(f"sprites has 12 distinct hues, max_objects={max_objects}")
  world = int(round(world_scale * image_size))
  if world < image_size:
    raise ValueError(f"world_scale={world_scale} must be >= 1")
  if max_camera_step is None:
    max_camera_step = max(1, image_size // 10)
  if max_speed is None:
    max_speed = 0.05 * image_size
  min_radius = 0.08 * image_size if min_radius is None else min_radius
  max_radius = 0.18 * image_size if max_radius is None else max_radius

  # Scene.
  background = _background(rng, world, background_amplitude)
  num = int(rng.integers(min_objects, max_objects + 1))
  colours = _colours(rng, num)
  names = [shapes[i] for i in rng.integers(0, len(shapes), size=num)]
  radii = rng.uniform(min_radius, max_radius, size=num)
  stamps = [shape_stamp(s, r) for s, r in zip(names, radii)]
  halves = np.array([(m.shape[0] - 1) // 2 for m in stamps], dtype=np.float64)
  limit = world - 1 - halves  # Sprite centres stay in [half, world-1-half].
  camera = rng.integers(0, world - image_size + 1, size=2)
  # Start inside the first view (as far as the world allows).
  low = np.maximum(camera[None] + halves[:, None], halves[:, None])
  high = np.minimum(camera[None] + image_size - 1 - halves[:, None],
                    limit[:, None])
  high = np.maximum(high, low)
  pos = rng.uniform(low, high)
  angle = rng.uniform(0, 2 * np.pi, size=num)
  speed = rng.uniform(0, max_speed, size=num)
  vel = np.stack([speed * np.sin(angle), speed * np.cos(angle)], axis=-1)
  steps = rng.integers(-max_camera_step, max_camera_step + 1,
                       size=(num_frames, 2))

  # Trajectories.
  cameras = np.zeros((num_frames + 1, 2), dtype=np.int64)
  centers = np.zeros((num_frames, num, 2), dtype=np.int64)
  cameras[0] = camera
  for t in range(num_frames):
    centers[t] = np.rint(pos)
    cameras[t + 1] = np.clip(cameras[t] + steps[t], 0, world - image_size)
    pos, vel = _bounce(pos, vel, halves[:, None], limit[:, None])
  actions = (cameras[1:] - cameras[:-1]).astype(np.float32)

  # Rendering: background crop, then sprites in depth order.
  video = np.zeros((num_frames, image_size, image_size, 3), dtype=np.uint8)
  segmentations = np.zeros((num_frames, image_size, image_size), dtype=np.int32)
  for t in range(num_frames):
    cy, cx = cameras[t]
    frame = video[t]
    frame[:] = background[cy:cy + image_size, cx:cx + image_size]
    for j in range(num):
      h = int(halves[j])
      top, left = centers[t, j] - h - (cy, cx)  # Stamp corner in the view.
      y0, x0 = max(top, 0), max(left, 0)
      y1 = min(top + 2 * h + 1, image_size)
      x1 = min(left + 2 * h + 1, image_size)
      if y0 >= y1 or x0 >= x1:
        continue
      mask = stamps[j][y0 - top:y1 - top, x0 - left:x1 - left]
      frame[y0:y1, x0:x1][mask] = colours[j]
      segmentations[t, y0:y1, x0:x1][mask] = j + 1

  episode = {"video": video, "actions": actions, "segmentations": segmentations}
  if not return_info:
    return episode
  info = {"background": background, "camera": cameras, "centers": centers,
          "stamps": stamps, "colours": colours, "shapes": names}
  return episode, info


def episode_params(data_config) -> Dict[str, object]:
  """The generator keyword arguments from a data config (all with defaults)."""
  get = data_config.get
  return dict(
      num_frames=int(get("num_frames", 16)),
      image_size=int(get("image_size", 64)),
      min_objects=int(get("min_objects", 3)),
      max_objects=int(get("max_objects", 6)),
      world_scale=float(get("world_scale", 2.0)),
      max_camera_step=get("max_camera_step", None),
      max_speed=get("max_speed", None),
      min_radius=get("min_radius", None),
      max_radius=get("max_radius", None),
      shapes=tuple(get("shapes", SHAPES)),
      background_amplitude=float(get("background_amplitude", 1.0)))


def make_episode(seed: int, split_id: int, index: int, **params) -> base.Episode:
  """Episode `index` of split `split_id`: a pure function of the arguments."""
  return generate_episode(np.random.default_rng([seed, split_id, index]),
                          **params)


def scene_info(data_config, split: str, index: int) -> Tuple[base.Episode, Dict[str, object]]:
  """(episode, info) of episode `index` of `split` as `build_source` makes it, with the scene
  behind it (`generate_episode`'s info: shapes, stamps, colours, centres, camera)."""
  base.check_split(split, "sprites")
  return make_episode(int(data_config.get("seed", 0)), SPLIT_IDS[split], index,
                      return_info=True, **episode_params(data_config))


class SpritesSource(sources.GeneratedSource):
  """Sprites episodes generated on the fly (in memory, random access).

  Episode i of split s comes from np.random.default_rng([seed, split_id(s), i]),
  so splits never share a random stream and any index is generated directly.
  """

  action_dim = 2

  def __init__(self, split: str, num_episodes: int, *, seed: int = 0,
               **params):
    base.check_split(split, "sprites")
    super().__init__(
        functools.partial(make_episode, int(seed), SPLIT_IDS[split], **params),
        num_episodes, f"sprites(seed={seed}, split={split})")


def build_source(data_config, split: str) -> base.EpisodeSource:
  """The sprites split: cached on disk (data.cache=True) or in memory."""
  base.check_split(split, "sprites")
  params = episode_params(data_config)
  seed = int(data_config.get("seed", 0))
  num = data_config.get(f"num_{split}")
  if num is None:
    raise base.DataError(f"sprites: data.num_{split} is not set; set the "
                         "number of episodes to generate")
  num = int(num)
  if not data_config.get("cache", True):
    return SpritesSource(split, num, seed=seed, **params)
  from datasets import cache  # pylint: disable=g-import-not-at-top
  key = dict(params, seed=seed, version=VERSION)
  path = cache.build_cached(
      "sprites", key, lambda s, i: make_episode(seed, s, i, **params), num,
      data_config.get("data_dir"), split=split)
  return cache.CachedSource(path)


def main(argv=None):
  montage.main(__doc__.splitlines()[0], "docs/sprites_montage.png", 10,
               lambda seed, i, **kw: make_episode(seed, SPLIT_IDS["train"], i,
                                                  **kw), argv=argv)

if __name__ == "__main__":
  main()
