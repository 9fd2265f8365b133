r"""Steps/s of the training command itself with 1 host device (as before) against the default
(`train.host_devices=0`: one XLA:CPU device per core, the batch split over them), side by side in
one run: each in a fresh process, the same config, steps and data. One JSON object.

  python -m benchmarks.host_devices [--config=experiments/configs/sprites.py] [--steps=60]
      [--counts=1,0]

Each run is `python -m experiments.train --config=CONFIG --config.train.host_devices=N` for
--steps steps into a temporary workdir (no checkpoint or held-out evaluation inside the timed
steps); steps/s is the median of the trainer's own `train/steps_per_s` over the log intervals
after the first (which includes compilation).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from benchmarks import common
from experiments import metrics_log


def run_training(config: str, host_devices: int, steps: int, log_every: int,
                 workdir: str) -> dict:
  """Trains `steps` steps in a fresh process; the trainer's steps/s and the device count."""
  cmd = [sys.executable, "-m", "experiments.train", f"--config={config}",
         f"--workdir={workdir}", f"--config.train.host_devices={host_devices}",
         f"--config.train.num_steps={steps}", f"--config.train.log_every={log_every}",
         f"--config.train.eval_every={10 * steps}", f"--config.train.checkpoint_every={10 * steps}"]
  t0 = time.perf_counter()
  out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
  wall = time.perf_counter() - t0
  rate = metrics_log.median_steps_per_s(workdir)
  if rate is None:
    raise SystemExit(f"--steps={steps} with --log_every={log_every} logs < 2 intervals; need >= 2")
  devices = next((line for line in out.splitlines() if line.startswith("JAX ")), "")
  return dict(host_devices=host_devices, steps_per_s=rate, devices_line=devices, wall_s=wall)


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--config", default="experiments/configs/sprites.py")
  p.add_argument("--steps", type=int, default=60)
  p.add_argument("--log_every", type=int, default=10)
  p.add_argument("--counts", default="1,0",
                 help="train.host_devices values, run in this order (0 = one per core)")
  a = p.parse_args()
  runs = []
  with tempfile.TemporaryDirectory() as tmp:
    for i, n in enumerate(int(c) for c in a.counts.split(",")):
      runs.append(run_training(a.config, n, a.steps, a.log_every, os.path.join(tmp, str(i))))
  base = runs[0]["steps_per_s"]
  for r in runs:
    r["speedup_vs_first"] = r["steps_per_s"] / base
  print(json.dumps(dict(config=a.config, steps=a.steps, processor=common.processor_name(),
                        runs=runs)))


if __name__ == "__main__":
  main()
