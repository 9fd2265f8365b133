"""Writers of the public datasets' file formats, for the loader tests.

Independent of `datasets/` on purpose (its own CRC32C, protobuf encoder, PNG
encoder and TFRecord framing), so a reader bug cannot cancel a writer bug:
  - TFRecord: uint64 length, masked CRC32C of it, data, masked CRC32C of data;
    optionally one GZIP (gzip.compress) or ZLIB (zlib.compress) stream.
  - tf.train.Example: Example{1: Features{1: map<string, Feature>}}, Feature
    {1: BytesList, 2: FloatList (packed), 3: Int64List (packed varints)}.
  - DeepMind multi_object_datasets records: every feature of the published
    readers' feature descriptions (image / mask one byte per value, as
    FixedLenFeature(shape, tf.string) stores them; CATER one value each).
  - Kubric MOVi tfds builds: <name>/<resolution>/<version>/dataset_info.json
    and <name>-<split>.tfrecord-XXXXX-of-YYYYY shards of Examples holding the
    features of the published builders (PNG frames, raw uint16 flows, ...).
"""
import gzip
import json
import os
import struct
import zlib

import numpy as np

# ----------------------------------------------------------------------------
# CRC32C, byte-table version (checked against the published test vector).


def _crc_table():
  table = []
  for n in range(256):
    c = n
    for _ in range(8):
      c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    table.append(c)
  return table


_CRC_TABLE = _crc_table()


def crc32c(data) -> int:
  c = 0xFFFFFFFF
  table = _CRC_TABLE
  for byte in bytes(data):
    c = table[(c ^ byte) & 0xFF] ^ (c >> 8)
  return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # RFC 3720 / iSCSI check value.


def masked_crc(data) -> int:
  c = crc32c(data)
  return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord_bytes(records) -> bytes:
  out = []
  for record in records:
    length = struct.pack("<Q", len(record))
    out += [length, struct.pack("<I", masked_crc(length)), record,
            struct.pack("<I", masked_crc(record))]
  return b"".join(out)


def write_tfrecord(path, records, compression=""):
  """Writes `records` (bytes) to `path`; returns the uncompressed offsets of
  each record's start (for tests that damage a record)."""
  offsets, position = [], 0
  for record in records:
    offsets.append(position)
    position += len(record) + 16
  data = tfrecord_bytes(records)
  if compression == "GZIP":
    data = gzip.compress(data)
  elif compression == "ZLIB":
    data = zlib.compress(data)
  else:
    assert not compression, compression
  os.makedirs(os.path.dirname(str(path)) or ".", exist_ok=True)
  with open(path, "wb") as f:
    f.write(data)
  return offsets


# ----------------------------------------------------------------------------
# Protobuf wire format.


def varint(n: int) -> bytes:
  n &= (1 << 64) - 1  # Negative int64: two's complement, 10 bytes.
  out = bytearray()
  while True:
    low = n & 0x7F
    n >>= 7
    if n:
      out.append(low | 0x80)
    else:
      out.append(low)
      return bytes(out)


def varints(values) -> bytes:
  """Packed varints of values in [0, 2**21), vectorised."""
  v = np.asarray(values, np.int64).ravel()
  assert v.min() >= 0 and v.max() < (1 << 21)
  parts = np.stack([(v & 0x7F) | ((v >= 1 << 7) << 7),
                    ((v >> 7) & 0x7F) | ((v >= 1 << 14) << 7),
                    v >> 14], axis=1).astype(np.uint8)
  used = np.stack([np.ones_like(v, bool), v >= 1 << 7, v >= 1 << 14], axis=1)
  return parts[used].tobytes()


def delimited(number: int, payload: bytes) -> bytes:
  return varint(number << 3 | 2) + varint(len(payload)) + payload


def bytes_feature(values) -> bytes:
  return delimited(1, b"".join(delimited(1, bytes(v)) for v in values))


def bytes_per_element(array) -> bytes:
  """FixedLenFeature(shape, tf.string) of uint8 data: one value per byte."""
  data = np.asarray(array, np.uint8).ravel()
  triples = np.empty((data.size, 3), np.uint8)
  triples[:, 0], triples[:, 1], triples[:, 2] = 0x0A, 1, data
  return delimited(1, triples.tobytes())


def float_feature(values) -> bytes:
  data = np.asarray(values, "<f4").ravel().tobytes()
  return delimited(2, delimited(1, data))


def int64_feature(values) -> bytes:
  values = np.asarray(values, np.int64).ravel()
  if values.size and values.min() >= 0 and values.max() < 1 << 21:
    packed = varints(values)
  else:
    packed = b"".join(varint(int(v)) for v in values)
  return delimited(3, delimited(1, packed))


def example(features) -> bytes:
  """Example from {key: serialised Feature}."""
  entries = b"".join(delimited(1, delimited(1, k.encode()) + delimited(2, f))
                     for k, f in features.items())
  return delimited(1, entries)


def sequence_example(context, feature_lists) -> bytes:
  """SequenceExample from {key: Feature} and {key: [Feature, ...]}."""
  ctx = b"".join(delimited(1, delimited(1, k.encode()) + delimited(2, f))
                 for k, f in context.items())
  lists = b"".join(
      delimited(1, delimited(1, k.encode()) +
                delimited(2, b"".join(delimited(1, f) for f in fs)))
      for k, fs in feature_lists.items())
  return delimited(1, ctx) + delimited(2, lists)


# ----------------------------------------------------------------------------
# PNG (what tf.image.encode_png writes: 8- or 16-bit, gray / RGB, no alpha).


def png(array) -> bytes:
  """[H, W, C] uint8 / uint16 (C = 1 or 3) -> PNG bytes (filter 0 rows)."""
  array = np.asarray(array)
  h, w, c = array.shape
  depth = 16 if array.dtype == np.uint16 else 8
  colour = {1: 0, 3: 2}[c]
  samples = array.astype(">u2" if depth == 16 else np.uint8)
  rows = samples.reshape(h, -1).view(np.uint8)
  raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()

  def chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data +
            struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

  header = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0)
  return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
          chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# ----------------------------------------------------------------------------
# DeepMind multi_object_datasets.

# name: (T, H, W, C, K, mask layout, folder, file, compression).
MULTI_OBJECT = {
    "cater_with_masks": (33, 64, 64, 3, 11, "tkhw", "cater_with_masks",
                         "cater_with_masks_train.tfrecords-{:05d}-of-{:05d}",
                         "ZLIB"),
    "clevr_with_masks": (1, 240, 320, 3, 11, "khw", "clevr_with_masks",
                         "clevr_with_masks_train.tfrecords", "GZIP"),
    "objects_room": (1, 64, 64, 3, 7, "khw", "objects_room",
                     "objects_room_train.tfrecords", "GZIP"),
    "objects_room_empty_room": (1, 64, 64, 3, 4, "khw", "objects_room",
                                "objects_room_test_empty_room.tfrecords",
                                "GZIP"),
    "objects_room_six_objects": (1, 64, 64, 3, 10, "khw", "objects_room",
                                 "objects_room_test_six_objects.tfrecords",
                                 "GZIP"),
    "objects_room_identical_color": (
        1, 64, 64, 3, 10, "khw", "objects_room",
        "objects_room_test_identical_color.tfrecords", "GZIP"),
    "multi_dsprites_binarized": (1, 64, 64, 1, 4, "hwk", "multi_dsprites",
                                 "multi_dsprites_binarized.tfrecords", "GZIP"),
    "multi_dsprites_colored_on_grayscale": (
        1, 64, 64, 3, 6, "hwk", "multi_dsprites",
        "multi_dsprites_colored_on_grayscale.tfrecords", "GZIP"),
    "multi_dsprites_colored_on_colored": (
        1, 64, 64, 3, 5, "hwk", "multi_dsprites",
        "multi_dsprites_colored_on_colored.tfrecords", "GZIP"),
    "tetrominoes": (1, 35, 35, 3, 4, "khw", "tetrominoes",
                    "tetrominoes_train.tfrecords", "GZIP"),
}


def multi_object_scene(name, rng):
  """(image [T, H, W, C] uint8, slots [T, H, W] int) of one random scene."""
  t, h, w, c, k = MULTI_OBJECT[name][:5]
  image = rng.integers(0, 256, (t, h, w, c), dtype=np.uint8)
  slots = rng.integers(0, k, (t, h, w))
  return image, slots


def multi_object_record(name, image, slots, rng) -> bytes:
  """One record with the features of the published reader of `name`."""
  t, h, w, c, k, layout = MULTI_OBJECT[name][:6]
  onehot = (np.arange(k)[None, :, None, None] == slots[:, None]) * 255
  mask = onehot.astype(np.uint8)  # [T, K, H, W].
  if layout == "hwk":
    mask = mask.transpose(0, 2, 3, 1)
  floats = lambda *shape: float_feature(rng.normal(size=shape))
  if name == "cater_with_masks":
    return example({
        "camera_matrix": floats(t, 4, 4),
        "image": bytes_feature([image.tobytes()]),
        "mask": bytes_feature([mask.tobytes()]),
        "object_positions": floats(k, t, 3)})
  features = {"image": bytes_per_element(image[0]),
              "mask": bytes_per_element(mask[0])}
  if name == "clevr_with_masks":
    features.update(x=floats(k), y=floats(k), z=floats(k),
                    pixel_coords=floats(k, 3), rotation=floats(k),
                    visibility=floats(k))
    for key in ("size", "material", "shape", "color"):
      features[key] = bytes_per_element(rng.integers(0, 4, k))
  elif name.startswith("multi_dsprites"):
    features.update(x=floats(k), y=floats(k), shape=floats(k),
                    color=floats(k, c), visibility=floats(k),
                    orientation=floats(k), scale=floats(k))
  elif name == "tetrominoes":
    features.update(x=floats(k), y=floats(k), shape=floats(k),
                    color=floats(k, 3), visibility=floats(k))
  return example(features)


# ----------------------------------------------------------------------------
# Kubric MOVi.

MOVI_OBJECTS = {"movi_a": 10, "movi_e": 23}  # Most instances per video.


def movi_scene(rng, num_frames=24, size=128, max_objects=10):
  """(video [T, S, S, 3] uint8, segmentations [T, S, S, 1] uint8): moving
  flat squares on a smooth background (compressible, like renders)."""
  yy, xx = np.mgrid[:size, :size]
  background = np.stack([xx * 255 // size, yy * 255 // size,
                         np.full_like(xx, 90)], -1).astype(np.uint8)
  video = np.repeat(background[None], num_frames, axis=0)
  seg = np.zeros((num_frames, size, size, 1), np.uint8)
  num = int(rng.integers(1, max_objects + 1))
  colours = rng.integers(0, 256, (num, 3), dtype=np.uint8)
  corners = rng.integers(0, size - 12, (num, 2))
  velocity = rng.integers(-2, 3, (num, 2))
  for t in range(num_frames):
    for j in range(num):
      y, x = np.clip(corners[j] + t * velocity[j], 0, size - 12)
      video[t, y:y + 12, x:x + 12] = colours[j]
      seg[t, y:y + 12, x:x + 12] = j + 1
  return video, seg


def movi_record(name, video, seg, rng, key="0", full_range_flows=False
                ) -> bytes:
  """A MOVi example: every top-level feature of the published builders
  (flattened with "/"), with their encodings. full_range_flows: flows span
  0..65535 as in real builds (3-byte varints; else 1-byte, smaller files)."""
  t, h, w = video.shape[:3]
  n = int(seg.max())
  flow_max = 1 << 16 if full_range_flows else 128
  uint16 = lambda *shape: rng.integers(0, 1 << 16, shape, dtype=np.uint16)
  floats = lambda *shape: float_feature(rng.normal(size=shape))
  features = {
      "metadata/video_name": bytes_feature([key.encode()]),
      "metadata/width": int64_feature([w]),
      "metadata/height": int64_feature([h]),
      "metadata/num_frames": int64_feature([t]),
      "metadata/num_instances": int64_feature([n]),
      "metadata/depth_range": floats(2),
      "metadata/forward_flow_range": floats(2),
      "metadata/backward_flow_range": floats(2),
      "camera/focal_length": floats(1),
      "camera/sensor_width": floats(1),
      "camera/field_of_view": floats(1),
      "camera/positions": floats(t, 3),
      "camera/quaternions": floats(t, 4),
      "instances/mass": floats(n),
      "instances/positions": floats(n, t, 3),
      "instances/quaternions": floats(n, t, 4),
      "instances/bboxes_3d": floats(n, t, 8, 3),
      "instances/image_positions": floats(n, t, 2),
      "instances/bboxes/ragged_flat_values": floats(n * t, 4),
      "instances/bboxes/ragged_row_lengths_0": int64_feature([t] * n),
      "instances/bbox_frames/ragged_flat_values": int64_feature(
          list(range(t)) * n),
      "instances/bbox_frames/ragged_row_lengths_0": int64_feature([t] * n),
      "instances/visibility": int64_feature(rng.integers(0, 500, (n, t))),
      "events/collisions/instances": int64_feature([0, 65535]),
      "events/collisions/frame": int64_feature([3]),
      "events/collisions/force": floats(1),
      "video": bytes_feature([png(f) for f in video]),
      "segmentations": bytes_feature([png(f) for f in seg]),
      # Raw uint16 tensors (tfds Tensor): int64 lists; small values keep the
      # fixture small (1-byte varints), the wire type is the published one.
      "forward_flow": int64_feature(rng.integers(0, flow_max, (t, h, w, 2))),
      "backward_flow": int64_feature(rng.integers(0, flow_max, (t, h, w, 2))),
      "depth": bytes_feature([png(uint16(h, w, 1)) for _ in range(t)]),
      "normal": bytes_feature([png(np.full((h, w, 3), 2500 * i, np.uint16))
                               for i in range(t)]),
      "object_coordinates": bytes_feature(
          [png(np.full((h, w, 3), 2700 * i, np.uint16)) for i in range(t)]),
  }
  if name == "movi_a":
    for label in ("shape_label", "size_label", "color_label",
                  "material_label"):
      features[f"instances/{label}"] = int64_feature(rng.integers(0, 3, n))
    features["instances/color"] = floats(n, 3)
  else:
    features["background"] = bytes_feature([b"hdri_042"])
    features["instances/asset_id"] = bytes_feature([b"Toy_%d" % i
                                                    for i in range(n)])
    features["instances/category"] = int64_feature(rng.integers(0, 17, n))
    features["instances/scale"] = floats(n)
    features["instances/is_dynamic"] = int64_feature(rng.integers(0, 2, n))
  return example(features)


def write_movi_build(root, name, splits, resolution="128x128",
                     version="1.0.0", new_tfds=False):
  """A tfds build folder as published: {split: [[record, ...] per shard]}.

  new_tfds: write the "fileFormat" / "filepathTemplate" fields of newer tfds
  versions (the 2022 builds do without them).
  Returns the build directory.
  """
  directory = os.path.join(str(root), name, resolution, version)
  os.makedirs(directory, exist_ok=True)
  info_splits = []
  for split, shards in splits.items():
    for i, records in enumerate(shards):
      path = os.path.join(directory, f"{name}-{split}.tfrecord-"
                          f"{i:05d}-of-{len(shards):05d}")
      write_tfrecord(path, records)
    entry = {"name": split,
             "numBytes": str(sum(len(r) for s in shards for r in s)),
             "shardLengths": [str(len(s)) for s in shards]}
    if new_tfds:
      entry["filepathTemplate"] = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
    info_splits.append(entry)
  info = {"name": name, "version": version, "configName": resolution,
          "description": "fixture", "moduleName": f"{name}.{name}",
          "splits": info_splits}
  if new_tfds:
    info["fileFormat"] = "tfrecord"
  with open(os.path.join(directory, "dataset_info.json"), "w") as f:
    json.dump(info, f)
  return directory
