r"""Peak memory of the train step at T = 8, 16, 32, 64 (XLA memory analysis and process peak
RSS, each T in a fresh process). Prints one JSON object.

  python -m benchmarks.memory_vs_length [--config=...] [--extra=--config.model.time_loop=scan]
"""
import argparse
import json

from benchmarks.subprocess_runner import measure


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--config", default="experiments/configs/sprites.py")
  p.add_argument("--lengths", default="8,16,32,64")
  p.add_argument("--extra", action="append", default=[], help="extra flags for measure_once")
  a = p.parse_args()
  rows = {int(t): measure([f"--config={a.config}", f"--num_frames={t}", "--steps=1", *a.extra])
          for t in a.lengths.split(",")}
  lengths = sorted(rows)
  print(json.dumps(dict(
      config=a.config, extra=a.extra, time_loop=rows[lengths[0]]["time_loop"],
      xla_bytes={t: rows[t]["xla_bytes"] for t in lengths},
      peak_rss_bytes={t: rows[t]["peak_rss"] for t in lengths},
      ratio_64_to_8=rows[lengths[-1]]["peak_rss"] / rows[lengths[0]]["peak_rss"],
      xla_ratio_64_to_8=rows[lengths[-1]]["xla_bytes"] / rows[lengths[0]]["xla_bytes"])))


if __name__ == "__main__":
  main()
