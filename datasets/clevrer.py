"""clevrer: CLEVRER mp4 videos with "derender proposals" masks (local files only).

Expected in data.data_dir, either layout of the official zip files:
  video_train/**/video_XXXXX.mp4        (split "train"; data.clevrer_train_dir)
  video_validation/**/video_XXXXX.mp4   (split "eval"; data.clevrer_eval_dir)
or, as video_train.zip / video_validation.zip unpack (no top-level folder):
  video_00000-01000/video_00000.mp4 ... in data.data_dir itself, split by the
  release's numbering: train = videos 0..9999, eval = 10000..14999.
  derender_proposals/**/proposal_XXXXX.json  (or sim_XXXXX.json;
                                        data.clevrer_proposals_dir)
Videos are matched to proposals by the number XXXXX; videos are used in
numeric order. Every used video needs its proposal file; a missing proposals
folder is an error unless data.segmentations = False (then episodes have no
segmentations and the folder is not looked at).

Known broken files of the release are skipped, counted and reported once per
source (a warning, and `ClevrerSource.skipped`): videos 7648 and 9777 (104
frames instead of 128) and 10800 (broken annotation); see KNOWN_BROKEN.

Frames: frames 0, s, 2s, ... (s = data.frame_stride, default 2) are decoded
with OpenCV (`pip install opencv-python-headless`, the `clevrer` extra), the
first data.num_frames of them kept, and resized (squashed: CLEVRER is 480x320)
to data.image_size x data.image_size, area-averaged. Actions have width A = 0.

Masks: proposal json = {"frames": [{"frame_index": i, "objects": [{"mask":
{"size": [h, w], "counts": RLE}, "score", "color", "material", "shape"},
...]}]}, RLE in COCO format (compressed string or a list of counts, decoded
here in NumPy). Object ids are consistent over time: an object is identified
by its (color, material, shape) attributes when all three are present (a
repeated triple within a frame gets its own identity per repeat), otherwise
by its position in the frame's list; ids 1..N follow the order of first
appearance. Objects with score < data.get("min_score", 0) are dropped. Where
masks overlap, objects are painted in increasing score order (list order when
there are no scores), so the higher-score (or later) object wins. Masks are
resized with nearest neighbour.

data.num_train / data.num_eval (when > 0) cap the number of videos (first in
numeric order). Episodes are decoded on demand (random access, no cache).
"""
import glob
import json
import os
import re
import warnings
from typing import Dict, List, Optional

import numpy as np

from datasets import base
from datasets import resize

_VIDEO_RE = re.compile(r"video_(\d+)\.mp4$")
_PROPOSAL_RE = re.compile(r"(?:proposal|sim)_(\d+)\.json$")
#: Video numbers of each split in the release (for the flat zip layout).
SPLIT_NUMBERS = {"train": range(0, 10000), "eval": range(10000, 15000)}
#: Broken in the release: skipped, counted and reported.
KNOWN_BROKEN = {7648: "104 frames instead of 128",
                9777: "104 frames instead of 128",
                10800: "broken annotation"}


# ----------------------------------------------------------------------------
# COCO run-length encoding.


def rle_string_to_counts(s: str) -> List[int]:
  """Decodes pycocotools' compressed RLE string into run lengths.

  Each count is stored as little-endian 5-bit groups, one character per group
  (char = group + 48, bit 0x20 = "more groups follow", bit 0x10 of the last
  group = sign); counts after the first two are stored as differences from
  the count two places earlier.
  """
  counts = []
  p = 0
  while p < len(s):
    x, shift, more = 0, 0, True
    while more:
      c = ord(s[p]) - 48
      x |= (c & 0x1F) << shift
      more = bool(c & 0x20)
      p += 1
      shift += 5
      if not more and c & 0x10:
        x -= 1 << shift  # Sign-extend.
    if len(counts) > 2:
      x += counts[-2]
    counts.append(x)
  return counts


def rle_decode(rle: Dict) -> np.ndarray:
  """COCO RLE {"size": [h, w], "counts": str or [int]} -> [h, w] bool mask.

  The runs cover the mask in column-major (Fortran) order and alternate
  between 0s and 1s, starting with 0s.
  """
  h, w = (int(v) for v in rle["size"])
  counts = rle["counts"]
  if isinstance(counts, bytes):
    counts = counts.decode("ascii")
  if isinstance(counts, str):
    counts = rle_string_to_counts(counts)
  counts = np.asarray(counts, np.int64)
  if counts.size and (counts.min() < 0 or counts.sum() != h * w):
    raise ValueError(f"RLE counts sum to {counts.sum()} (min {counts.min()}),"
                     f" expected {h * w} = {h} x {w}")
  values = np.arange(len(counts)) % 2 == 1
  flat = np.repeat(values, counts)
  if flat.size != h * w:
    raise ValueError(f"RLE covers {flat.size} pixels, expected {h * w}")
  return flat.reshape(w, h).T


# ----------------------------------------------------------------------------
# Proposals -> ids.


def proposals_to_ids(proposals: Dict, frame_indices, height: int, width: int,
                     min_score: float = 0.0, origin: str = "") -> np.ndarray:
  """[len(frame_indices), height, width] int32 ids (see module docstring)."""
  by_index = {int(f["frame_index"]): f for f in proposals["frames"]}
  identities = {}  # Identity key -> id.
  out = np.zeros((len(frame_indices), height, width), np.int32)
  for t, index in enumerate(frame_indices):
    if index not in by_index:
      raise base.DataError(f"{origin}: no proposals for frame {index}")
    objects = [o for o in by_index[index].get("objects", [])
               if o.get("score", 1.0) >= min_score]
    seen = {}
    keyed = []
    for position, obj in enumerate(objects):
      attrs = tuple(obj.get(k) for k in ("color", "material", "shape"))
      key = attrs if None not in attrs else ("position", position)
      seen[key] = seen.get(key, -1) + 1
      keyed.append(((key, seen[key]), obj))
    for key, _ in keyed:  # Ids by order of first appearance.
      identities.setdefault(key, len(identities) + 1)
    order = sorted(range(len(keyed)),
                   key=lambda i: (keyed[i][1].get("score", 0.0), i))
    for i in order:
      key, obj = keyed[i]
      try:
        mask = rle_decode(obj["mask"])
      except (KeyError, ValueError, TypeError) as e:
        raise base.DataError(f"{origin}: bad mask in frame {index} ({e})") from e
      if mask.shape != (height, width):
        raise base.DataError(f"{origin}: mask of frame {index} has size "
                             f"{mask.shape}, the video {(height, width)}")
      out[t][mask] = identities[key]
  return out


# ----------------------------------------------------------------------------
# Video decoding.


def _cv2():
  try:
    import cv2  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise base.DataError(
        "clevrer needs OpenCV to decode mp4: `pip install -e .[clevrer]` (or "
        f"`pip install opencv-python-headless`). ({e})") from e
  return cv2


def read_frames(path: str, stride: int, num_frames: int) -> np.ndarray:
  """Frames 0, stride, 2 * stride, ... (num_frames of them): [T, H, W, 3] RGB."""
  cv2 = _cv2()
  capture = cv2.VideoCapture(path)
  if not capture.isOpened():
    raise base.DataError(f"{path}: cannot open the video (missing, corrupt or "
                         f"an unsupported codec)")
  frames = []
  index = 0
  try:
    while len(frames) < num_frames:
      ok, frame = capture.read()
      if not ok:
        break
      if index % stride == 0:
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
      index += 1
  finally:
    capture.release()
  if len(frames) < num_frames:
    raise base.DataError(
        f"{path}: only {index} frames decoded, need {num_frames} with "
        f"data.frame_stride={stride}; lower data.num_frames or frame_stride")
  return np.stack(frames)


# ----------------------------------------------------------------------------
# Episode source.


def _require_dir(folder: str, fix: str) -> None:
  if not os.path.isdir(folder):
    raise base.DataError(f"{folder}: no such folder; {fix}")


def _numbered(folder: str, regex) -> Dict[int, str]:
  found = {}
  for path in glob.glob(os.path.join(folder, "**", "*"), recursive=True):
    match = regex.search(os.path.basename(path))
    if match:
      found[int(match.group(1))] = path
  return found


class ClevrerSource(base.EpisodeSource):
  """CLEVRER episodes decoded on demand.

  Args:
    video_dir: searched recursively for video_XXXXX.mp4.
    proposals_dir: searched recursively for proposal_XXXXX.json; None when
      segmentations are not wanted (DataError if given but missing).
    image_size, num_frames, frame_stride, min_score: see the module docstring.
    max_videos: use the first max_videos videos (0 = all).
    numbers: keep only videos with these numbers (None = all).
  """

  action_dim = 0

  def __init__(self, video_dir: str, proposals_dir: Optional[str],
               image_size: int, num_frames: int, frame_stride: int = 2,
               max_videos: int = 0, min_score: float = 0.0,
               numbers: Optional[range] = None):
    self.origin = video_dir
    _require_dir(video_dir, "unzip the CLEVRER videos there (video_train.zip"
                 " / video_validation.zip) or set data.data_dir / "
                 "data.clevrer_train_dir / data.clevrer_eval_dir")
    videos = _numbered(video_dir, _VIDEO_RE)
    if numbers is not None:
      videos = {n: p for n, p in videos.items() if n in numbers}
    if not videos:
      where = (f" numbered {numbers.start}..{numbers.stop - 1}"
               if numbers is not None else "")
      raise base.DataError(
          f"{video_dir}: no video_XXXXX.mp4 files{where} found (searched "
          f"recursively); unzip video_train.zip / video_validation.zip there "
          f"or into video_train/ / video_validation/")
    #: {video number: why} of the known broken videos left out.
    self.skipped = {n: KNOWN_BROKEN[n] for n in sorted(videos)
                    if n in KNOWN_BROKEN}
    numbers = [n for n in sorted(videos) if n not in self.skipped]
    if self.skipped:
      warnings.warn(
          f"{video_dir}: skipped {len(self.skipped)} known broken video(s) "
          f"of the CLEVRER release: " + ", ".join(
              f"{n} ({why})" for n, why in self.skipped.items()),
          stacklevel=2)
    if max_videos > 0:
      numbers = numbers[:max_videos]
    self._videos = [videos[n] for n in numbers]
    self.has_segmentations = proposals_dir is not None
    if self.has_segmentations:
      _require_dir(proposals_dir, "unzip the derender proposals there, set "
                   "data.clevrer_proposals_dir, or set "
                   "data.segmentations=False to train without masks")
      proposals = _numbered(proposals_dir, _PROPOSAL_RE)
      missing = [n for n in numbers if n not in proposals]
      if missing:
        raise base.DataError(
            f"{proposals_dir}: no proposal_{missing[0]:05d}.json for "
            f"{videos[missing[0]]} ({len(missing)} videos lack proposals); "
            f"add them or set data.segmentations=False to train without "
            f"masks")
      self._proposals = [proposals[n] for n in numbers]
    self._size, self._frames = int(image_size), int(num_frames)
    self._stride, self._min_score = int(frame_stride), float(min_score)
    if self._stride < 1:
      raise base.DataError(f"clevrer: data.frame_stride must be >= 1, got "
                           f"{frame_stride}")

  def __len__(self) -> int:
    return len(self._videos)

  def __getitem__(self, index: int) -> base.Episode:
    index = base.check_index(self, index)
    path = self._videos[index]
    video = read_frames(path, self._stride, self._frames)
    cv2 = _cv2()  # Area averaging, as resize.resize_video but faster.
    small = [cv2.resize(f, (self._size, self._size),
                        interpolation=cv2.INTER_AREA) for f in video]
    episode = {"video": np.stack(small),
               "actions": np.zeros((self._frames, 0), np.float32)}
    if self.has_segmentations:
      proposal_path = self._proposals[index]
      try:
        with open(proposal_path) as f:
          proposals = json.load(f)
      except (OSError, ValueError) as e:
        raise base.DataError(f"{proposal_path}: cannot read ({e})") from e
      frame_indices = [t * self._stride for t in range(self._frames)]
      ids = proposals_to_ids(proposals, frame_indices, *video.shape[1:3],
                             min_score=self._min_score, origin=proposal_path)
      episode["segmentations"] = resize.resize_segmentations(
          ids, self._size, self._size)
    return episode


def build_source(data_config, split: str) -> base.EpisodeSource:
  """CLEVRER episodes of `split` ("train" or "eval"); see the docstring."""
  base.check_split(split, "clevrer")
  get = data_config.get
  root = str(data_config.data_dir or "")
  default = "video_train" if split == "train" else "video_validation"
  custom = get(f"clevrer_{split}_dir", None)
  numbers = None
  if custom:
    video_dir = os.path.join(root, custom)
  elif os.path.isdir(os.path.join(root, default)):
    video_dir = os.path.join(root, default)
  else:  # The zips unpacked into data_dir: split by the release's numbers.
    video_dir, numbers = root, SPLIT_NUMBERS[split]
  proposals_dir = None
  if get("segmentations", True):
    proposals_dir = os.path.join(
        root, get("clevrer_proposals_dir", None) or "derender_proposals")
  return ClevrerSource(video_dir, proposals_dir, int(data_config.image_size),
                       int(data_config.num_frames),
                       int(get("frame_stride", 2)),
                       int(get(f"num_{split}", 0) or 0),
                       float(get("min_score", 0.0)), numbers)
