"""Figures for PARTS results: segmentations, attention, traversals, rollouts, prior curves, GIFs.

Pure NumPy + PIL (grids) and matplotlib Agg (line plots); no model dependency. Images are float
arrays in [0, 1] (or uint8). Every figure function returns the figure as a uint8 [height, width, 3]
array and also writes it when `path` is given (format from the extension, e.g. .png).

Grid layout (`_grid`): tiles are upscaled with nearest neighbour by the integer factor
`upscale_factor(h, w)` so that their longer side is at least MIN_TILE pixels; a labelled grid of
R rows and C columns of h' x w' tiles is
  width  = LABEL_WIDTH + C * w' + (C + 1) * PAD
  height = [LABEL_HEIGHT if column labels] + R * h' + (R + 1) * PAD.
"""
import os
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from datasets.montage import palette  # The one id palette (also the data montages').

MIN_TILE = 96  # Longer side of a tile after upscaling (pixels).
PAD = 4  # Gap between tiles (pixels).
LABEL_WIDTH = 96  # Left column for row labels (pixels).
LABEL_HEIGHT = 16  # Top row for column labels (pixels).
MARKER_COLOR = (220, 30, 30)  # Burn-in marker in `rollout_figure`.

def colorize_ids(ids, num_colors: int) -> np.ndarray:
  """Integer ids [..., H, W] in [0, num_colors) -> uint8 colours [..., H, W, 3] (0 = black)."""
  ids = np.asarray(ids)
  if ids.size and (ids.min() < 0 or ids.max() >= num_colors):
    raise ValueError(f"ids must lie in [0, {num_colors}), got range [{ids.min()}, {ids.max()}]; "
                     "pass a larger num_colors")
  return palette(num_colors)[ids.astype(np.int64)]


def to_uint8(images) -> np.ndarray:
  """Float images in [0, 1] (clipped) or uint8 -> uint8."""
  images = np.asarray(images)
  if images.dtype == np.uint8:
    return images
  return np.round(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)


def upscale_factor(h: int, w: int, min_size: int = MIN_TILE) -> int:
  """Integer nearest-neighbour factor that brings max(h, w) to at least min_size."""
  return max(1, -(-min_size // max(h, w)))


def resize_nearest(maps, h: int, w: int) -> np.ndarray:
  """Nearest-neighbour resize of the last two axes: [..., H, W] -> [..., h, w]."""
  maps = np.asarray(maps)
  rows = np.arange(h) * maps.shape[-2] // h
  cols = np.arange(w) * maps.shape[-1] // w
  return maps[..., rows, :][..., cols]


def _font(size: int = 12):
  try:
    return ImageFont.load_default(size=size)
  except (TypeError, OSError):  # Old Pillow or no FreeType: fixed bitmap font.
    return ImageFont.load_default()


def _save(image: np.ndarray, path: Optional[str]) -> np.ndarray:
  if path:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(image).save(path)
  return image


def _grid(rows: Sequence[Sequence[np.ndarray]], row_labels: Sequence[str],
          col_labels: Optional[Sequence[str]] = None, row_colors=None,
          marker_col: Optional[int] = None) -> np.ndarray:
  """Labelled grid of equally sized [h, w, 3] tiles (float in [0, 1] or uint8).

  Args:
    rows: R rows of at most C tiles each (a shorter row leaves the remaining cells empty).
    row_labels: R strings drawn left of the rows.
    col_labels: optional C strings drawn above the columns.
    row_colors: optional R colours (or None) drawn as a swatch next to each row label.
    marker_col: if set, the gap left of this column is painted MARKER_COLOR.

  Returns:
    uint8 [height, width, 3], sizes as in the module docstring.
  """
  tiles = [[to_uint8(t) for t in row] for row in rows]
  h, w = tiles[0][0].shape[:2]
  s = upscale_factor(h, w)
  th, tw = h * s, w * s
  ncols = max(len(row) for row in tiles)
  top = LABEL_HEIGHT if col_labels is not None else 0
  height = top + len(tiles) * th + (len(tiles) + 1) * PAD
  width = LABEL_WIDTH + ncols * tw + (ncols + 1) * PAD
  canvas = np.full((height, width, 3), 255, np.uint8)
  x0 = lambda c: LABEL_WIDTH + PAD + c * (tw + PAD)
  y0 = lambda r: top + PAD + r * (th + PAD)
  if marker_col is not None:
    canvas[top:, x0(marker_col) - PAD:x0(marker_col)] = MARKER_COLOR
  for r, row in enumerate(tiles):
    for c, tile in enumerate(row):
      if tile.shape[:2] != (h, w):
        raise ValueError(f"all tiles must be {h}x{w}, row {r} column {c} is {tile.shape[:2]}")
      canvas[y0(r):y0(r) + th, x0(c):x0(c) + tw] = tile.repeat(s, 0).repeat(s, 1)[..., :3]
  image = Image.fromarray(canvas)
  draw = ImageDraw.Draw(image)
  font = _font()
  for r, label in enumerate(row_labels):
    y = y0(r) + th // 2 - 6
    x = 4
    if row_colors is not None and row_colors[r] is not None:
      draw.rectangle([x, y, x + 10, y + 10], fill=tuple(int(v) for v in row_colors[r]),
                     outline=(0, 0, 0))
      x += 14
    draw.text((x, y - 1), str(label), fill=(0, 0, 0), font=font)
  for c, label in enumerate(col_labels or []):
    draw.text((x0(c) + 2, 1), str(label), fill=(0, 0, 0), font=font)
  return np.asarray(image)


def _check(name: str, array, ndim: int, last: Optional[int] = None):
  array = np.asarray(array)
  if array.ndim != ndim or (last is not None and array.shape[-1] != last):
    raise ValueError(f"{name} has shape {array.shape}; expected {ndim} dims"
                     + (f" ending in {last}" if last else ""))
  return array


def _squeeze_masks(masks) -> np.ndarray:
  masks = np.asarray(masks)
  return masks[..., 0] if masks.ndim == 5 and masks.shape[-1] == 1 else masks


def segmentation_figure(video, recon, masks, slot_recons=None, true_seg=None,
                        path: Optional[str] = None, num_true: Optional[int] = None,
                        steps: Optional[Sequence[int]] = None,
                        column_labels: Optional[Sequence[str]] = None) -> np.ndarray:
  """Frames, reconstructions, segmentations and per-slot components over time (PARTS Fig. 5).

  Args:
    video: [T, H, W, 3] input frames.
    recon: [T, H, W, 3] reconstructions.
    masks: [T, K, H, W] (or [T, K, H, W, 1]) slot masks, summing to 1 over K.
    slot_recons: optional [T, K, H, W, 3] per-slot decoded RGB; without it the slot rows show
      mask * input frame.
    true_seg: optional [T, H, W] integer ground truth (0 = background).
    path: optional output file.
    num_true: number of ground-truth ids for colouring (default: max id + 1).
    steps: the time step of each column, for the column labels (default 0..T-1).
    column_labels: labels of the columns instead of "t=<step>" (e.g. when the columns are the
      last frames of T different sequences).

  Returns:
    uint8 image; rows: input, recon, predicted segmentation (argmax over K), ground truth (if
    given), then one row per slot with mask * component; columns: frames. Row labels of slots
    carry the slot's segmentation colour.
  """
  video = _check("video", video, 4, 3)
  recon = _check("recon", recon, 4, 3)
  masks = _check("masks", _squeeze_masks(masks), 4)
  t, k = masks.shape[:2]
  components = video[:, None] if slot_recons is None else _check("slot_recons", slot_recons, 5, 3)
  slots = masks[..., None] * components  # [T, K, H, W, 3]
  colors = palette(k)
  rows = [list(video), list(recon), list(colorize_ids(masks.argmax(axis=1), k))]
  labels = ["input", "recon", "pred seg"]
  if true_seg is not None:
    true_seg = _check("true_seg", true_seg, 3)
    rows.append(list(colorize_ids(true_seg, num_true or int(true_seg.max()) + 1)))
    labels.append("true seg")
  rows += [list(slots[:, i]) for i in range(k)]
  labels += [f"slot {i}" for i in range(k)]
  row_colors = [None] * (len(labels) - k) + list(colors)
  steps = range(t) if steps is None else list(steps)
  if len(steps) != t:
    raise ValueError(f"steps has {len(steps)} entries for {t} frames")
  column_labels = [f"t={i}" for i in steps] if column_labels is None else list(column_labels)
  if len(column_labels) != t:
    raise ValueError(f"column_labels has {len(column_labels)} entries for {t} frames")
  image = _grid(rows, labels, column_labels, row_colors)
  return _save(image, path)


def attention_figure(video, attention, path: Optional[str] = None,
                     strength: float = 0.7) -> np.ndarray:
  """Per-slot attention superimposed on the frames (PARTS Fig. 8).

  Args:
    video: [T, H, W, 3] frames.
    attention: [T, K, h, w] attention weights (any non-negative scale; resized to H x W with
      nearest neighbour). Each map is min-max normalised to [0, 1] per slot and frame.
    path: optional output file.
    strength: opacity of the slot colour where attention is maximal.

  Returns:
    uint8 image; rows: input, then one row per slot with frame * (1 - s*a) + colour * s*a.
  """
  video = to_uint8(_check("video", video, 4, 3)).astype(np.float32) / 255.0
  attention = _check("attention", attention, 4).astype(np.float32)
  t, k = attention.shape[:2]
  attention = resize_nearest(attention, *video.shape[1:3])
  lo = attention.min(axis=(2, 3), keepdims=True)
  hi = attention.max(axis=(2, 3), keepdims=True)
  alpha = strength * (attention - lo) / np.maximum(hi - lo, 1e-8)  # [T, K, H, W]
  colors = palette(k + 1)[1:].astype(np.float32) / 255.0  # Skip black: it would hide the frame.
  overlay = (video[:, None] * (1 - alpha[..., None])
             + colors[None, :, None, None] * alpha[..., None])
  rows = [list(video)] + [list(overlay[:, i]) for i in range(k)]
  labels = ["input"] + [f"slot {i}" for i in range(k)]
  image = _grid(rows, labels, [f"t={i}" for i in range(t)], [None] + list(palette(k + 1)[1:]))
  return _save(image, path)


def traversal_figure(images, row_labels: Sequence[str], path: Optional[str] = None,
                     values: Optional[Sequence[float]] = None) -> np.ndarray:
  """Grid of decoded images for latent traversals (PARTS Fig. 9).

  Args:
    images: [R, S, H, W, 3]; row r varies one latent (slot/dimension) over S values.
    row_labels: R strings, e.g. "slot 2 dim 5".
    path: optional output file.
    values: S column values (default: S evenly spaced values in [-2, 2]).
  """
  images = _check("images", images, 5, 3)
  r, s = images.shape[:2]
  if len(row_labels) != r:
    raise ValueError(f"got {len(row_labels)} row_labels for {r} rows of images")
  values = np.linspace(-2.0, 2.0, s) if values is None else values
  image = _grid(list(map(list, images)), row_labels, [f"{v:+.1f}" for v in values])
  return _save(image, path)


def rollout_figure(video, pred, pred_seg=None, burn_in: int = 0, path: Optional[str] = None,
                   num_colors: Optional[int] = None) -> np.ndarray:
  """Ground truth vs predicted frames, burn-in end marked by a red bar (PARTS Fig. 6).

  Args:
    video: [T, H, W, 3] ground-truth frames.
    pred: [T, H, W, 3] model frames (reconstructions for t < burn_in, predictions after).
    pred_seg: optional [T, H, W] predicted slot ids (argmax of masks).
    burn_in: number of observed frames; the bar sits between frames burn_in - 1 and burn_in.
    path: optional output file.
    num_colors: palette size for `pred_seg` (default: max id + 1), e.g. the number of slots.
  """
  video = _check("video", video, 4, 3)
  pred = _check("pred", pred, 4, 3)
  t = video.shape[0]
  if not 0 <= burn_in <= t:
    raise ValueError(f"burn_in={burn_in} must lie in [0, T={t}]")
  rows, labels = [list(video), list(pred)], ["ground truth", "prediction"]
  if pred_seg is not None:
    pred_seg = _check("pred_seg", pred_seg, 3)
    rows.append(list(colorize_ids(pred_seg, num_colors or int(pred_seg.max()) + 1)))
    labels.append("pred seg")
  col_labels = [f"t={i}" for i in range(t)]
  image = _grid(rows, labels, col_labels, marker_col=burn_in if 0 < burn_in < t else None)
  return _save(image, path)


def _line_plots(panels, path: Optional[str], figsize, dpi: int) -> np.ndarray:
  """Side-by-side line plots. panels: [(title, xlabel, {name: (x [N], y [N])})]; a name keeps
  its colour in every panel."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  fig = Figure(figsize=figsize, dpi=dpi)
  canvas = FigureCanvasAgg(fig)
  axes = np.atleast_1d(fig.subplots(1, len(panels)))
  names = list(dict.fromkeys(name for _, _, lines in panels for name in lines))
  for (title, xlabel, lines), ax in zip(panels, axes):
    for name, (x, y) in lines.items():
      i = names.index(name)   # tab10 colours, then dashed lines for the next ten names
      ax.plot(np.asarray(x), np.asarray(y), marker=".", label=name, color=f"C{i % 10}",
              linestyle=("-", "--", ":")[i // 10 % 3])
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize="small")
  fig.tight_layout()
  canvas.draw()
  image = np.asarray(canvas.buffer_rgba())[..., :3].copy()
  return _save(image, path)


def prior_curves_figure(curves: Dict[str, Dict[str, Sequence[float]]], path: Optional[str] = None,
                        figsize=(8.0, 3.0), dpi: int = 100) -> np.ndarray:
  """KL and MSE per step for several runs, e.g. fixed vs predictive prior (PARTS Fig. 7).

  Args:
    curves: name -> {"kl": [T], "mse": [T]}.
    path: optional output file.
    figsize, dpi: matplotlib size; the image is figsize * dpi pixels (800 x 300 by default).
  """
  panels = []
  for key in ("kl", "mse"):
    lines = {}
    for name, curve in curves.items():
      if key not in curve:
        raise ValueError(f"curves[{name!r}] has no {key!r} entry; expected keys 'kl' and 'mse'")
      lines[name] = (np.arange(len(curve[key])), curve[key])
    panels.append((f"{key.upper()} per step", "step", lines))
  return _line_plots(panels, path, figsize, dpi)


def training_curves_figure(curves: Dict[str, Sequence[Sequence[float]]], title: str,
                           path: Optional[str] = None, figsize=(6.0, 3.5),
                           dpi: int = 100) -> np.ndarray:
  """Held-out metrics over training, e.g. FG-ARI and its diagnostics against training step.

  Args:
    curves: name -> (training steps [N], values [N]).
    title: the panel title.
    path: optional output file.
    figsize, dpi: matplotlib size; the image is figsize * dpi pixels (600 x 350 by default).
  """
  return _line_plots([(title, "training step", _step_lines(curves))], path, figsize, dpi)


def runs_curves_figure(panels: Dict[str, Dict[str, Sequence[Sequence[float]]]],
                       path: Optional[str] = None, figsize=(10.0, 3.5),
                       dpi: int = 100) -> np.ndarray:
  """One held-out metric per panel, one line per run: a sweep's runs against training step.

  Args:
    panels: panel title (the metric) -> run name -> (training steps [N], values [N]).
    path: optional output file.
    figsize, dpi: matplotlib size; the image is figsize * dpi pixels (1000 x 350 by default).
  """
  if not panels:
    raise ValueError("runs_curves_figure needs at least one panel")
  return _line_plots([(title, "training step", _step_lines(runs))
                      for title, runs in panels.items()], path, figsize, dpi)


def _step_lines(curves) -> Dict[str, Tuple[Sequence[float], Sequence[float]]]:
  lines = {}
  for name, (steps, values) in curves.items():
    if len(steps) != len(values) or not len(steps):
      raise ValueError(f"curves[{name!r}] needs as many steps as values (> 0), got "
                       f"{len(steps)} and {len(values)}")
    lines[name] = (steps, values)
  if not lines:
    raise ValueError("a curves figure needs at least one curve")
  return lines


def save_gif(frames, path: str, fps: float = 4.0, min_size: int = MIN_TILE) -> np.ndarray:
  """Writes frames [T, H, W, 3] (float in [0, 1] or uint8) as a looping GIF.

  Frames are upscaled with nearest neighbour to at least `min_size` pixels (longer side). Pillow
  merges consecutive identical frames into one longer frame. Returns the uint8 frames written.
  """
  frames = to_uint8(_check("frames", frames, 4, 3))
  s = upscale_factor(*frames.shape[1:3], min_size=min_size)
  frames = frames.repeat(s, axis=1).repeat(s, axis=2)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  images = [Image.fromarray(f) for f in frames]
  images[0].save(path, save_all=True, append_images=images[1:], duration=int(round(1000 / fps)),
                 loop=0)
  return frames
