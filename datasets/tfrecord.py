"""tfrecord: TFRecord files and tf.train.Example protos, read without TensorFlow.

The one place that reads the record files of the public datasets (MOVi's tfds
shards, DeepMind's multi_object_datasets); `movi.py` and `multi_object.py`
import it. Pure Python + NumPy: no TensorFlow, no protobuf schema.

TFRecord framing (optionally inside one GZIP or ZLIB stream), per record:
  uint64 length (little endian) | uint32 masked CRC32C of those 8 bytes |
  data (length bytes)           | uint32 masked CRC32C of data
with masked(c) = ((c >> 15) | (c << 17)) + 0xA282EAD8 (mod 2^32). Both CRCs
are checked; a truncated or corrupt record raises `base.DataError` naming the
file and the record index (0-based, within the file).

tf.train.Example (protobuf wire format; field numbers of example.proto /
feature.proto):
  Example      {1: Features features}
  SequenceExample {1: Features context, 2: FeatureLists feature_lists}
  Features     {1: map<string, Feature> feature}   (entry: 1 key, 2 value)
  FeatureLists {1: map<string, FeatureList> feature_list}
  FeatureList  {1: repeated Feature feature}
  Feature      oneof {1: BytesList, 2: FloatList, 3: Int64List}, each
               {1: repeated value} (floats / int64 packed or not).
`parse_example` decodes only the keys asked for; other features (MOVi's flows,
depth, normals, ...) are skipped by their length prefix, never decoded.
"""
import functools
import gzip
import os
import struct
import zlib
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from datasets import base

COMPRESSIONS = ("", "GZIP", "ZLIB")

# ----------------------------------------------------------------------------
# CRC32C (Castagnoli, reflected polynomial 0x82F63B78), in NumPy.

_POLY = 0x82F63B78
_LANE = 1024  # Bytes per lane of the vectorised CRC (a multiple of 4).


def _zero_bits(registers: np.ndarray, bits: int) -> np.ndarray:
  """Registers advanced over `bits` zero bits (one polynomial step each)."""
  registers = registers.astype(np.uint32)
  for _ in range(bits):
    registers = np.where(registers & 1, (registers >> 1) ^ np.uint32(_POLY),
                         registers >> 1).astype(np.uint32)
  return registers


_TABLE = _zero_bits(np.arange(256, dtype=np.uint32), 8)  # Per byte.
_TABLE_LIST = [int(v) for v in _TABLE]
# Per 32-bit word: register ^= word, then lo/hi halves over 32 zero bits.
_WORD_LO = _zero_bits(np.arange(1 << 16, dtype=np.uint32), 32)
_WORD_HI = _zero_bits(np.arange(1 << 16, dtype=np.uint32) << 16, 32)


def _update_py(register: int, data) -> int:
  """The CRC register after `data`, one byte at a time (short inputs)."""
  table = _TABLE_LIST
  for byte in bytes(data):
    register = table[(register ^ byte) & 0xFF] ^ (register >> 8)
  return register


def _apply_shift(tables: np.ndarray, registers):
  registers = np.asarray(registers, np.uint32)
  return (tables[0][registers & 0xFF] ^ tables[1][(registers >> 8) & 0xFF] ^
          tables[2][(registers >> 16) & 0xFF] ^ tables[3][registers >> 24])


@functools.lru_cache(maxsize=64)
def _shift_tables(level: int) -> np.ndarray:
  """[4, 256] uint32: register -> register after _LANE * 2**level zero bytes.

  The zero-byte shift is linear over GF(2); it is applied bytewise: the
  result is the XOR of tables[k][byte k of the register].
  """
  basis = np.uint32(1) << np.arange(32, dtype=np.uint32)
  if level == 0:
    images = _zero_bits(basis, 8 * _LANE)
  else:
    half = _shift_tables(level - 1)
    images = _apply_shift(half, _apply_shift(half, basis))
  values = np.arange(256)
  tables = np.zeros((4, 256), np.uint32)
  for k in range(4):
    for bit in range(8):
      tables[k] ^= np.where((values >> bit) & 1, images[8 * k + bit],
                            np.uint32(0)).astype(np.uint32)
  return tables


def crc32c(data) -> int:
  """CRC32C of `data` (bytes-like), e.g. crc32c(b"123456789") == 0xE3069283.

  Long inputs are cut into lanes of _LANE bytes whose registers advance
  together, one little-endian 32-bit word per NumPy step (two 64K-entry
  tables); the lanes are then combined pairwise with the zero-byte shift
  operator (CRC registers are linear over GF(2)).
  """
  view = memoryview(data).cast("B")
  lanes = len(view) // _LANE
  if lanes < 8:
    return _update_py(0xFFFFFFFF, view) ^ 0xFFFFFFFF
  words = np.frombuffer(view, "<u4", lanes * _LANE // 4)
  columns = np.ascontiguousarray(words.reshape(lanes, _LANE // 4).T)
  registers = np.zeros(lanes, np.uint32)
  registers[0] = 0xFFFFFFFF
  low = np.empty(lanes, np.uint32)
  for column in columns:  # [lanes] words at one position of every lane.
    registers ^= column
    np.bitwise_and(registers, 0xFFFF, out=low)
    registers >>= 16
    registers = _WORD_HI[registers]
    registers ^= _WORD_LO[low]
  level = 0
  while len(registers) > 1:  # Pairwise: shift(left) ^ right, by 2**level lanes.
    if len(registers) % 2:  # A zero lane in front changes nothing.
      registers = np.concatenate([np.zeros(1, np.uint32), registers])
    pairs = registers.reshape(-1, 2)
    registers = _apply_shift(_shift_tables(level), pairs[:, 0]) ^ pairs[:, 1]
    level += 1
  register = _update_py(int(registers[0]), view[lanes * _LANE:])
  return register ^ 0xFFFFFFFF


def masked_crc32c(data) -> int:
  """The CRC as TFRecord stores it (rotated right by 15, plus a constant)."""
  crc = crc32c(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# ----------------------------------------------------------------------------
# Record framing.


class _Inflated:
  """read(n) over a zlib (wbits=15) or gzip (wbits=31) compressed file."""

  def __init__(self, raw, wbits: int):
    self._raw, self._wbits = raw, wbits
    self._inflate = zlib.decompressobj(wbits)
    self._buffer, self._offset = b"", 0
    self.complete = True  # False while inside an unfinished stream.

  def read(self, n: int) -> bytes:
    parts, need = [], n
    while need > 0:
      if self._offset < len(self._buffer):
        part = self._buffer[self._offset:self._offset + need]
        self._offset += len(part)
        parts.append(part)
        need -= len(part)
        continue
      if not self._fill():
        break
    return b"".join(parts)

  def _fill(self) -> bool:
    """Inflates more input into the buffer; False at the end of the file."""
    while True:
      if self._inflate.eof:
        rest = self._inflate.unused_data  # Another gzip member may follow.
        self._inflate = zlib.decompressobj(self._wbits)
        if not rest:
          rest = self._raw.read(1 << 16)
          if not rest:
            self.complete = True
            return False
      else:
        rest = self._raw.read(1 << 16)
        if not rest:
          self.complete = False
          tail = self._inflate.flush()
          self._buffer, self._offset = tail, 0
          return bool(tail)
      self.complete = False
      self._buffer = self._inflate.decompress(rest)
      self._offset = 0
      if self._buffer:
        return True


def _open(path: str, compression: str):
  if compression not in COMPRESSIONS:
    raise base.DataError(f"{path}: unknown TFRecord compression "
                         f"{compression!r}; valid: {COMPRESSIONS}")
  try:
    raw = open(path, "rb")  # pylint: disable=consider-using-with
  except OSError as e:
    raise base.DataError(f"{path}: cannot open ({e})") from e
  if not compression:
    return raw, raw
  return raw, _Inflated(raw, 31 if compression == "GZIP" else 15)


def _hint(path: str, compression: str) -> str:
  """Why framing may fail on a whole file: the wrong compression."""
  try:
    with open(path, "rb") as f:
      magic = f.read(2)
  except OSError:
    return ""
  if magic == b"\x1f\x8b" and compression != "GZIP":
    return "; the file starts like GZIP data: is the compression right?"
  if not compression:
    return ""
  return f"; is it really {compression}-compressed?"


def read_records(path: str, compression: str = "", start: int = 0
                 ) -> Iterator[Tuple[int, memoryview]]:
  """(index, data) of the records of one TFRecord file, from record `start`.

  Args:
    path: the file.
    compression: "" (none), "GZIP" or "ZLIB" (one stream over the file).
    start: records before it are skipped: only their length and its CRC are
      read (uncompressed files are seeked past, compressed ones inflated).

  Yields:
    (record index in the file, record bytes), both CRCs verified.

  Returns:
    (as the generator's StopIteration value) the number of records in the file.

  Raises:
    base.DataError naming the file and record on truncation, a CRC mismatch
    or a broken compressed stream.
  """
  raw, stream = _open(path, compression)
  index = 0
  try:
    while True:
      where = f"{path}: record {index}"
      try:
        header = stream.read(12)
        if not header:
          if compression and not stream.complete:
            raise base.DataError(f"{where}: the {compression} stream ends "
                                 f"early (file truncated)")
          return index
        if len(header) < 12:
          raise base.DataError(f"{where}: truncated ({len(header)} of the 12 "
                               f"header bytes){_hint(path, compression)}")
        length, length_crc = struct.unpack("<QI", header)
        if masked_crc32c(header[:8]) != length_crc:
          raise base.DataError(f"{where}: corrupt (CRC of the length field "
                               f"does not match){_hint(path, compression)}")
        if index < start and not compression:
          raw.seek(length + 4, os.SEEK_CUR)
          data = b"" if raw.tell() > os.fstat(raw.fileno()).st_size else None
        else:
          data = stream.read(length + 4)
      except zlib.error as e:
        raise base.DataError(f"{where}: broken {compression} data "
                             f"({e}){_hint(path, compression)}") from e
      if data is not None and len(data) < length + 4:
        raise base.DataError(f"{where}: truncated (the record needs "
                             f"{length + 4} bytes after its header, the file "
                             f"has {len(data) if data else 'fewer'})")
      if index >= start:
        (data_crc,) = struct.unpack("<I", data[length:])
        payload = memoryview(data)[:length]
        if masked_crc32c(payload) != data_crc:
          raise base.DataError(f"{where}: corrupt (CRC of the {length} data "
                               f"bytes does not match)")
        yield index, payload
      index += 1
  finally:
    raw.close()


def read_files(files: Sequence[str], compression: str = "", start: int = 0
               ) -> Iterator[Tuple[str, int, memoryview]]:
  """(path, index in its file, data) of the records of `files`, in order,
  from record `start` counted over all files (see read_records)."""
  for path in files:
    records = read_records(path, compression, start)
    while True:
      try:
        index, data = next(records)
      except StopIteration as stop:
        start = max(0, start - stop.value)
        break
      yield path, index, data


# ----------------------------------------------------------------------------
# tf.train.Example / SequenceExample (protobuf wire format).


class ProtoError(ValueError):
  """Malformed protobuf bytes (callers add the file and record)."""


def _varint(data, pos: int) -> Tuple[int, int]:
  """(value, next position) of the varint at data[pos]."""
  value, shift = 0, 0
  while True:
    if pos >= len(data):
      raise ProtoError("varint runs past the end")
    byte = data[pos]
    pos += 1
    value |= (byte & 0x7F) << shift
    if byte < 0x80:
      return value, pos
    shift += 7
    if shift > 63:
      raise ProtoError("varint longer than 10 bytes")


def _fields(data) -> Iterator[Tuple[int, int, object]]:
  """(field number, wire type, value) of a message; length-delimited values
  are memoryview slices (not copied), varints ints, fixed ones raw bytes."""
  data = memoryview(data)
  pos, end = 0, len(data)
  while pos < end:
    key, pos = _varint(data, pos)
    number, wire = key >> 3, key & 7
    if wire == 0:
      value, pos = _varint(data, pos)
    elif wire == 2:
      size, pos = _varint(data, pos)
      if pos + size > end:
        raise ProtoError(f"field {number} needs {size} bytes, "
                         f"{end - pos} left")
      value, pos = data[pos:pos + size], pos + size
    elif wire in (1, 5):
      size = 8 if wire == 1 else 4
      if pos + size > end:
        raise ProtoError(f"field {number} runs past the end")
      value, pos = data[pos:pos + size], pos + size
    else:
      raise ProtoError(f"unsupported wire type {wire} (field {number})")
    yield number, wire, value


class Feature:
  """One tf.train.Feature, decoded on request.

  kind is "bytes", "float", "int64" or "" (an empty Feature).
  """

  def __init__(self, message):
    self.kind, self._list = "", memoryview(b"")
    for number, wire, value in _fields(message):
      if wire == 2 and number in (1, 2, 3):
        self.kind, self._list = ("bytes", "float", "int64")[number - 1], value

  def _expect(self, kind: str):
    if self.kind not in (kind, ""):
      raise ProtoError(f"is a {self.kind}_list, expected {kind}_list")

  def bytes_list(self) -> List[memoryview]:
    """The values of a BytesList (memoryviews into the record)."""
    self._expect("bytes")
    return [v for n, w, v in _fields(self._list) if n == 1 and w == 2]

  def concatenated_bytes(self) -> np.ndarray:
    """All values of a BytesList joined: flat uint8 array.

    Fast path for the multi_object_datasets layout (one value per byte: the
    list is then the bytes 0x0A 0x01 v, 0x0A 0x01 v, ...).
    """
    self._expect("bytes")
    raw = np.frombuffer(self._list, np.uint8)
    if raw.size and raw.size % 3 == 0:
      triples = raw.reshape(-1, 3)
      if (triples[:, 0] == 0x0A).all() and (triples[:, 1] == 1).all():
        return triples[:, 2].copy()
    values = self.bytes_list()
    return np.frombuffer(b"".join(values), np.uint8)

  def _numbers(self, packed_dtype, wire_single: int) -> np.ndarray:
    packed, single = [], []
    for number, wire, value in _fields(self._list):
      if number != 1:
        continue
      if wire == 2:
        packed.append(value)
      elif wire == wire_single:
        single.append(value)
    if packed_dtype is None:  # Varints.
      values = []
      for chunk in packed:
        pos = 0
        while pos < len(chunk):
          value, pos = _varint(chunk, pos)
          values.append(value)
      values += single
      out = np.array(values, np.uint64).view(np.int64)
      return out
    chunks = [bytes(c) for c in packed] + [bytes(c) for c in single]
    return np.frombuffer(b"".join(chunks), packed_dtype).copy()

  def floats(self) -> np.ndarray:
    """The values of a FloatList: float32 array."""
    self._expect("float")
    return self._numbers(np.dtype("<f4"), 5)

  def int64s(self) -> np.ndarray:
    """The values of an Int64List: int64 array."""
    self._expect("int64")
    return self._numbers(None, 0)


def _features(message, keys: Optional[Iterable[str]]) -> Dict[str, memoryview]:
  """{key: serialised value} of a Features / FeatureLists map, for `keys`."""
  wanted = None if keys is None else set(keys)
  out = {}
  for number, wire, entry in _fields(message):
    if number != 1 or wire != 2:
      continue
    key, value = None, memoryview(b"")
    for n, w, v in _fields(entry):
      if n == 1 and w == 2:
        key = bytes(v).decode("utf-8")
      elif n == 2 and w == 2:
        value = v
    if key is not None and (wanted is None or key in wanted):
      out[key] = value  # A later entry for the same key wins, as in protobuf.
  return out


def _submessage(message, field: int) -> memoryview:
  parts = [v for n, w, v in _fields(message) if n == field and w == 2]
  if len(parts) > 1:  # Repeated sub-messages merge; keep it simple: concat.
    return memoryview(b"".join(bytes(p) for p in parts))
  return parts[0] if parts else memoryview(b"")


def parse_example(data, keys: Optional[Iterable[str]] = None
                  ) -> Dict[str, Feature]:
  """{key: Feature} of a serialised tf.train.Example, only for `keys`
  (all when None); missing keys are absent from the result."""
  features = _submessage(data, 1)
  return {k: Feature(v) for k, v in _features(features, keys).items()}


def parse_sequence_example(data, context_keys: Optional[Iterable[str]] = None,
                           list_keys: Optional[Iterable[str]] = None
                           ) -> Tuple[Dict[str, Feature],
                                      Dict[str, List[Feature]]]:
  """(context {key: Feature}, feature_lists {key: [Feature per step]}) of a
  serialised tf.train.SequenceExample, only for the keys asked for."""
  context = _submessage(data, 1)
  lists = _submessage(data, 2)
  out_context = {k: Feature(v)
                 for k, v in _features(context, context_keys).items()}
  out_lists = {k: [Feature(f) for n, w, f in _fields(v) if n == 1 and w == 2]
               for k, v in _features(lists, list_keys).items()}
  return out_context, out_lists


def example_features(path: str, index: int, data, keys: Sequence[str]
                     ) -> Dict[str, Feature]:
  """parse_example for `keys`, all required: DataError (naming the file and
  record) if the bytes are not an Example or a key is missing."""
  try:
    features = parse_example(data, keys)
  except ProtoError as e:
    raise base.DataError(f"{path}: record {index}: not a tf.train.Example "
                         f"({e})") from e
  missing = [k for k in keys if k not in features]
  if missing:
    raise base.DataError(f"{path}: record {index}: no feature {missing[0]!r} "
                         f"(found {sorted(parse_example(data))[:20]})")
  return features
