r"""Compile time of the train step (or --program=eval: the evaluation step) at T = 8 and T = 64
(fresh process each). One JSON object.

  python -m benchmarks.compile_vs_length [--config=...] [--program=eval] \
      [--extra=--config.model.time_loop=scan]
"""
import argparse
import json

from benchmarks.subprocess_runner import measure


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--config", default="experiments/configs/sprites.py")
  p.add_argument("--program", default="train", choices=("train", "eval"))
  p.add_argument("--extra", action="append", default=[], help="extra flags for measure_once")
  a = p.parse_args()
  rows = {t: measure([f"--config={a.config}", f"--num_frames={t}", "--steps=1",
                      f"--program={a.program}", *a.extra])
          for t in (8, 64)}
  print(json.dumps(dict(
      config=a.config, program=a.program, extra=a.extra, time_loop=rows[8]["time_loop"],
      compile_s={t: rows[t]["compile_s"] for t in rows},
      ratio=rows[64]["compile_s"] / rows[8]["compile_s"])))


if __name__ == "__main__":
  main()
