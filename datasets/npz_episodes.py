"""npz_episodes: recorded episodes (e.g. Playroom or Robotics Arm) as .npz files.

The Playroom and Robotics Arm datasets of the PARTS paper were never publicly
released. If you have recordings of your own (an agent moving a camera, a robot
arm acting on objects), store them in this format and set
`data.name='npz'` and `data.data_dir=<root>`.

Layout:
  <root>/train/*.npz   training episodes; episode i is the i-th file in
                       sorted file-name order.
  <root>/eval/*.npz    evaluation episodes, same format.

Each .npz file (np.savez or np.savez_compressed) holds one episode:
  video          [T, H, W, 3] uint8, RGB frames (required).
  actions        [T, A] float32 (optional; absent means A = 0). actions[t] is
                 the action taken after frame t, i.e. it leads from frame t to
                 frame t+1 (actions[T-1] is unused). E.g. A = 7 for a 7-DoF arm.
  segmentations  [T, H, W] integer (optional), 0 = background, 1..N = objects
                 (used only for evaluation).

Within a split, all episodes must have the same A and either all or none have
segmentations; T must be >= data.num_frames (the first data.num_frames frames
are used). Frames whose H or W differ from data.image_size are resized when
loaded (video: area averaging when shrinking, bilinear when enlarging;
segmentations: nearest neighbour). data.num_train / data.num_eval (when > 0)
cap the number of episodes used, taking the first files in name order.

Converting loose recordings:
  python -m datasets.npz_episodes --src=<folder of .npz> --dst=<root> \
      [--eval_fraction=0.1] [--seed=0]
reads every .npz below --src (any file names, searched recursively) and writes
<root>/train and <root>/eval. Accepted key names: the video under `video`,
`frames` or `images` (uint8, or float in [0, 1] which is scaled to 0..255);
actions under `actions` or `action`; segmentations under `segmentations`,
`segmentation` or `masks`. The split is deterministic: the files, in sorted
order, are permuted with np.random.default_rng(seed) and the first
round(eval_fraction * n) (at least 1 when eval_fraction > 0 and n >= 2) go to
eval. Every file is validated; a bad file stops the conversion with its name.
"""
import argparse
import glob
import os
import zipfile
import zlib
from typing import Dict, Optional, Tuple

import numpy as np

from datasets import base
from datasets import resize
from datasets import validation

VIDEO_KEYS = ("video", "frames", "images")
ACTION_KEYS = ("actions", "action")
SEGMENTATION_KEYS = ("segmentations", "segmentation", "masks")
_READ_ERRORS = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile,
                zlib.error)


def _missing_root_message(path: str) -> str:
  return (
      f"{path}: no such folder. npz_episodes reads <data_dir>/train/*.npz and "
      f"<data_dir>/eval/*.npz (format: see datasets/npz_episodes.py). The "
      f"Playroom (and Robotics Arm) data of the PARTS paper were never "
      f"publicly released: record your own episodes and convert them with "
      f"`python -m datasets.npz_episodes --src=<folder of .npz> "
      f"--dst={os.path.dirname(path.rstrip(os.sep)) or '<data_dir>'}`, or use "
      f"data.name='room3d' (a procedural 3D stand-in with camera actions).")


# ----------------------------------------------------------------------------
# Reading and checking one file.


def _array_headers(path: str) -> Dict[str, Tuple[tuple, np.dtype]]:
  """{key: (shape, dtype)} of an .npz, reading only the .npy headers."""
  headers = {}
  with zipfile.ZipFile(path) as archive:
    for name in archive.namelist():
      if not name.endswith(".npy"):
        continue
      with archive.open(name) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
          shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        else:
          shape, _, dtype = np.lib.format.read_array_header_2_0(f)
      headers[name[:-4]] = (shape, dtype)
  return headers


def _pick(keys, names, path, what, required=True) -> Optional[str]:
  found = [k for k in names if k in keys]
  if len(found) > 1:
    raise base.DataError(f"{path}: several {what} arrays {found}; keep one")
  if not found and required:
    raise base.DataError(f"{path}: no {what} array; expected one of {names}, "
                         f"found {sorted(keys)}")
  return found[0] if found else None


def load_episode(path: str) -> base.Episode:
  """One episode file in the documented format, checked (DataError if bad)."""
  try:
    with np.load(path, allow_pickle=False) as data:
      keys = set(data.files)
      if "video" not in keys:
        raise base.DataError(f"{path}: no `video` array (found {sorted(keys)})"
                             f"; convert loose files with `python -m "
                             f"datasets.npz_episodes --src=... --dst=...`")
      episode = {"video": data["video"]}
      episode["actions"] = (data["actions"].astype(np.float32)
                            if "actions" in keys else
                            np.zeros((len(episode["video"]), 0), np.float32))
      if "segmentations" in keys:
        episode["segmentations"] = data["segmentations"].astype(np.int32)
  except base.DataError:
    raise
  except _READ_ERRORS as e:
    raise base.DataError(f"{path}: cannot read ({type(e).__name__}: {e}); the "
                         f"file is truncated or corrupt, re-export it") from e
  validation.validate_episode(episode, path)
  if episode["video"].dtype != np.uint8:
    raise base.DataError(f"{path}: video dtype is {episode['video'].dtype}; "
                         f"the stored format is uint8 (the converter "
                         f"`python -m datasets.npz_episodes` scales floats)")
  return episode


# ----------------------------------------------------------------------------
# Episode source.


class NpzEpisodeSource(base.EpisodeSource):
  """Random access to <root>/<split>/*.npz (headers checked when built)."""

  def __init__(self, folder: str, image_size: int, num_frames: int,
               max_episodes: int = 0):
    self.origin = folder
    if not os.path.isdir(folder):
      raise base.DataError(_missing_root_message(folder))
    files = sorted(glob.glob(os.path.join(folder, "*.npz")))
    if not files:
      raise base.DataError(
          f"{folder}: no .npz episodes in this split folder; put episodes "
          f"there (format: datasets/npz_episodes.py) or convert loose ones "
          f"with `python -m datasets.npz_episodes --src=... --dst=...`")
    if max_episodes > 0:
      files = files[:max_episodes]
    self._files = files
    self._image_size, self._num_frames = int(image_size), int(num_frames)
    signature = None  # (A, has segmentations) of the first file.
    for path in files:
      try:
        headers = _array_headers(path)
      except _READ_ERRORS as e:
        raise base.DataError(f"{path}: cannot read ({type(e).__name__}: {e}); "
                             f"the file is truncated or corrupt, re-export "
                             f"it") from e
      if "video" not in headers:
        raise base.DataError(f"{path}: no `video` array (found "
                             f"{sorted(headers)})")
      validation.check_layout(path, headers["video"], headers.get("actions"),
                              headers.get("segmentations"),
                              video_dtypes=(np.uint8,))
      length = headers["video"][0][0]
      if length < self._num_frames:
        raise base.DataError(f"{path}: has {length} frames, fewer than "
                             f"data.num_frames={self._num_frames}")
      this = (headers["actions"][0][1] if "actions" in headers else 0,
              "segmentations" in headers)
      if signature is None:
        signature = this
      elif this != signature:
        raise base.DataError(
            f"{path}: (action dim, has segmentations) = {this}, but "
            f"{files[0]} has {signature}; all episodes of a split must agree")
    self.action_dim, self.has_segmentations = signature

  def __len__(self) -> int:
    return len(self._files)

  def __getitem__(self, index: int) -> base.Episode:
    index = base.check_index(self, index)
    path = self._files[index]
    return resize.fit_episode(load_episode(path), self._image_size,
                              self._num_frames, path)


def build_source(data_config, split: str) -> base.EpisodeSource:
  """Episodes of <data.data_dir>/<split>/*.npz, split in {"train", "eval"}."""
  base.check_split(split, "npz_episodes")
  root = str(data_config.data_dir or "")
  if not root or not os.path.isdir(root):
    raise base.DataError(_missing_root_message(root or "<data.data_dir unset>"))
  limit = data_config.get(f"num_{split}", 0) or 0
  return NpzEpisodeSource(os.path.join(root, split),
                          int(data_config.image_size),
                          int(data_config.num_frames), int(limit))


# ----------------------------------------------------------------------------
# Converter.


def _convert_one(path: str) -> Dict[str, np.ndarray]:
  """A loose episode file -> arrays in the documented format (checked)."""
  try:
    with np.load(path, allow_pickle=False) as data:
      keys = set(data.files)
      v = _pick(keys, VIDEO_KEYS, path, "video")
      a = _pick(keys, ACTION_KEYS, path, "actions", required=False)
      s = _pick(keys, SEGMENTATION_KEYS, path, "segmentations", required=False)
      video = data[v]
      out = {}
      if a is not None:
        out["actions"] = data[a]
      if s is not None:
        out["segmentations"] = data[s]
  except base.DataError:
    raise
  except _READ_ERRORS as e:
    raise base.DataError(f"{path}: cannot read ({type(e).__name__}: {e}); the "
                         f"file is truncated or corrupt") from e
  out["video"] = video
  if "actions" not in out:
    out["actions"] = np.zeros((len(video), 0), np.float32)
  validation.check_layout(path, (video.shape, video.dtype),
                          (out["actions"].shape, out["actions"].dtype),
                          (out["segmentations"].shape, out["segmentations"].dtype)
                          if "segmentations" in out else None)
  out["actions"] = out["actions"].astype(np.float32)
  if "segmentations" in out:
    out["segmentations"] = out["segmentations"].astype(np.int32)
  validation.validate_episode(out, path)
  if video.dtype != np.uint8:
    out["video"] = np.round(video * 255.0).astype(np.uint8)
  if out["actions"].shape[1] == 0:
    del out["actions"]  # Absent means A = 0.
  return out


def convert_folder(src_dir: str, dst_dir: str, eval_fraction: float = 0.1,
                   seed: int = 0, compress: bool = True) -> Tuple[int, int]:
  """Converts loose .npz episodes below `src_dir` into <dst_dir>/{train,eval}.

  Args:
    src_dir: folder searched recursively for *.npz (any names; keys as in the
      module docstring).
    dst_dir: output root; its train/ and eval/ must be absent or empty.
    eval_fraction: fraction of episodes for eval (deterministic split).
    seed: seed of the split permutation.
    compress: write with np.savez_compressed (else np.savez).

  Returns:
    (number of train episodes, number of eval episodes).
  """
  if not os.path.isdir(src_dir):
    raise base.DataError(f"{src_dir}: no such folder (--src)")
  if not 0.0 <= eval_fraction <= 1.0:
    raise base.DataError(f"eval_fraction must be in [0, 1], got "
                         f"{eval_fraction}")
  files = sorted(glob.glob(os.path.join(src_dir, "**", "*.npz"),
                           recursive=True))
  if not files:
    raise base.DataError(f"{src_dir}: no .npz files found (searched "
                         f"recursively)")
  for split in ("train", "eval"):
    folder = os.path.join(dst_dir, split)
    if os.path.isdir(folder) and os.listdir(folder):
      raise base.DataError(f"{folder}: already contains files; choose an empty "
                           f"--dst (conversion never overwrites episodes)")
  num_eval = int(round(eval_fraction * len(files)))
  if eval_fraction > 0 and len(files) >= 2:
    num_eval = min(max(num_eval, 1), len(files) - 1)
  order = np.random.default_rng(seed).permutation(len(files))
  is_eval = np.zeros(len(files), bool)
  is_eval[order[:num_eval]] = True
  save = np.savez_compressed if compress else np.savez
  for split in ("train", "eval"):
    os.makedirs(os.path.join(dst_dir, split), exist_ok=True)
  for path, to_eval in zip(files, is_eval):
    arrays = _convert_one(path)
    name = os.path.relpath(path, src_dir)[:-len(".npz")].replace(os.sep, "__")
    save(os.path.join(dst_dir, "eval" if to_eval else "train", name + ".npz"),
         **arrays)
  return len(files) - num_eval, num_eval


def main(argv=None):
  parser = argparse.ArgumentParser(
      description="Convert loose .npz episodes into the npz_episodes format "
                  "(<dst>/train, <dst>/eval); see datasets/npz_episodes.py.")
  parser.add_argument("--src", required=True, help="folder of loose .npz")
  parser.add_argument("--dst", required=True, help="output root")
  parser.add_argument("--eval_fraction", type=float, default=0.1)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--no_compress", action="store_true")
  args = parser.parse_args(argv)
  num_train, num_eval = convert_folder(args.src, args.dst, args.eval_fraction,
                                       args.seed, not args.no_compress)
  print(f"wrote {num_train} train and {num_eval} eval episodes to {args.dst}")


if __name__ == "__main__":
  main()
