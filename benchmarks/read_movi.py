"""Reading speed of MOVi-A-shaped TFRecords (no TensorFlow), against training.

  python -m benchmarks.read_movi [--num_records 16] [--image_size 64]

Writes a tfds build of --num_records MOVi-A-shaped examples (24 frames of
128x128, every published feature: PNG video / segmentations / depth / normals
/ object coordinates, full-range uint16 flows as int64 lists, metadata) to a
temporary directory, then times, in this process, one pass of:
  read_seq_per_s     datasets.tfrecord framing + both CRC32Cs, per sequence.
  decode_seq_per_s   the above + Example parsing + PNG decoding of the video
                     and segmentation frames (what movi.read_examples does).
  episode_seq_per_s  the above + resizing to --image_size (the episodes the
                     cache stores; what the first epoch with data.cache costs).
  crc_mb_per_s       the NumPy CRC32C alone.
Prints one JSON object. One sequence = one example.

Against the training step: train_step_consumes_seq_per_s is the batch size over
the measured step time of the MOVi config's training step (experiments/configs/
movi.py: T = 24, 64 x 64, K = 11; synthetic data, one XLA:CPU device per core as
in the training command; benchmarks.measure_once in a subprocess; --step=skip
leaves it out) at --step_batch sequences (default 2: the config's B = 32 needs
more memory than a 24 GiB CPU machine comfortably holds; a larger batch runs a
little faster per sequence). With data.cache (the default) MOVi is read only once,
to build the cache, and training then reads the array_record cache
(benchmarks/data_throughput.py).
"""
import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np

from benchmarks import common
from benchmarks.subprocess_runner import measure
from datasets import movi
from datasets import tfrecord
from experiments import host_devices
from experiments.configs import movi as movi_config
from tests import published_formats as formats

STEP_CONFIG = "experiments/configs/movi.py"


def step_seconds(batch_size: int) -> dict:
  """The MOVi config's train step on `batch_size` sequences, measured in a fresh
  process: its measure_once JSON."""
  c = movi_config.get_config()
  devices = host_devices.choose(0, (batch_size,), host_devices.num_cores())
  return measure([f"--config={STEP_CONFIG}", f"--batch_size={batch_size}",
                  f"--num_frames={c.data.num_frames}", "--steps=1"], devices=devices)


def write_build(root: str, num: int, seed: int = 0) -> str:
  rng = np.random.default_rng(seed)
  records = []
  for i in range(num):
    video, seg = formats.movi_scene(rng, num_frames=24, size=128)
    records.append(formats.movi_record("movi_a", video, seg, rng, str(i),
                                       full_range_flows=True))
  half = (num + 1) // 2
  return formats.write_movi_build(root, "movi_a", {
      "train": [records[:half], records[half:]], "validation": [records[:1]]})


def rate(fn, count: int) -> float:
  start = time.perf_counter()
  fn()
  return count / (time.perf_counter() - start)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--num_records", type=int, default=16)
  parser.add_argument("--image_size", type=int, default=64)
  parser.add_argument("--num_frames", type=int, default=24)
  parser.add_argument("--step", choices=("measure", "skip"), default="measure",
                      help="measure the MOVi config's train step to compare against")
  parser.add_argument("--step_batch", type=int, default=2)
  args = parser.parse_args()
  n = args.num_records
  with tempfile.TemporaryDirectory() as tmp:
    directory = write_build(tmp, n)
    files, lengths = movi.split_shards(directory, "train")
    size = sum(os.path.getsize(f) for f in files)

    def read():
      for _ in tfrecord.read_files(files):
        pass

    def decode():
      for _ in movi.read_examples(files, lengths, 0, args.num_frames):
        pass

    def episodes():
      for example in movi.read_examples(files, lengths, 0, args.num_frames):
        movi.example_to_episode(example, args.image_size, args.num_frames)

    read()  # Warm the page cache and the CRC tables.
    read_rate = rate(read, n)
    decode_rate = rate(decode, n)
    episode_rate = rate(episodes, n)
    blob = np.random.default_rng(1).bytes(size // n)
    crc_rate = rate(lambda: tfrecord.crc32c(blob), 1) * len(blob) / 1e6
  step = step_seconds(args.step_batch) if args.step == "measure" else None
  consumed = step["batch_size"] / step["step_s"] if step else None
  print(json.dumps({
      "read_seq_per_s": round(read_rate, 1),
      "decode_seq_per_s": round(decode_rate, 1),
      "episode_seq_per_s": round(episode_rate, 1),
      "crc_mb_per_s": round(crc_rate, 1),
      "record_bytes": size // n,
      "train_step_consumes_seq_per_s": round(consumed, 3) if step else None,
      "episode_rate_over_consumption":
          round(episode_rate / consumed, 1) if step else None,
      "train_step": dict(config=STEP_CONFIG, step_s=round(step["step_s"], 2),
                         batch_size=step["batch_size"],
                         num_frames=step["num_frames"],
                         devices=step["devices"]) if step else None,
      "processor": common.processor_name(),
      "config": dict(num_records=n, frames=24, resolution="128x128",
                     num_frames=args.num_frames, image_size=args.image_size,
                     cpus=os.cpu_count(),
                     machine=platform.machine(),
                     python=platform.python_version()),
  }))


if __name__ == "__main__":
  main()
