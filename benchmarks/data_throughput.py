"""Data throughput: sprites generation, cache write/read, batching.

  python -m benchmarks.data_throughput [--num_episodes 512] [--batch_size 8]

Prints one JSON object (sequences per second; one sequence = one episode).
The cache is written to a temporary directory unless --data_dir is given.
"""
import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np

from datasets import cache
from datasets import pipeline
from datasets import sprites


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--num_episodes", type=int, default=512)
  parser.add_argument("--image_size", type=int, default=64)
  parser.add_argument("--num_frames", type=int, default=16)
  parser.add_argument("--batch_size", type=int, default=8)
  parser.add_argument("--num_batches", type=int, default=200)
  parser.add_argument("--data_dir", default=None)
  args = parser.parse_args()
  params = dict(num_frames=args.num_frames, image_size=args.image_size)
  n = args.num_episodes

  start = time.perf_counter()
  for i in range(n):
    sprites.make_episode(0, 0, i, **params)
  generate = n / (time.perf_counter() - start)

  with tempfile.TemporaryDirectory() as tmp:
    data_dir = args.data_dir or tmp
    start = time.perf_counter()
    path = cache.build_cached(
        "sprites", dict(params, seed=0, version=sprites.VERSION, bench=True),
        lambda s, i: sprites.make_episode(0, s, i, **params), n, data_dir,
        progress=False)
    write = n / (time.perf_counter() - start)
    size = sum(os.path.getsize(os.path.join(d, f))
               for d, _, files in os.walk(path) for f in files)

    source = cache.CachedSource(path)
    order = np.random.default_rng(0).permutation(n)
    start = time.perf_counter()
    for i in order:
      source[int(i)]
    read = n / (time.perf_counter() - start)

    it = pipeline.BatchIterator(source, args.batch_size, seed=0,
                                image_size=args.image_size,
                                num_frames=args.num_frames)
    next(it)  # Start-up.
    start = time.perf_counter()
    for _ in range(args.num_batches):
      next(it)
    batching = args.num_batches * args.batch_size / (
        time.perf_counter() - start)
    it.close()

  print(json.dumps({
      "sprites_generate_seq_per_s": round(generate, 1),
      "cache_write_seq_per_s": round(write, 1),
      "cache_read_random_seq_per_s": round(read, 1),
      "batching_seq_per_s": round(batching, 1),
      "cache_bytes_per_seq": size // n,
      "config": dict(params, num_episodes=n, batch_size=args.batch_size,
                     num_batches=args.num_batches, shard_size=256,
                     prefetch=2, cpus=os.cpu_count(),
                     machine=platform.machine(),
                     python=platform.python_version()),
  }))


if __name__ == "__main__":
  main()
