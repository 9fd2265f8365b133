r"""Steps/s with 1, 2, 4 and 8 host devices (XLA_FLAGS=--xla_force_host_platform_device_count=N)
at a fixed per-device batch (fresh process each). One JSON object.

The batch is sharded over the devices as in training (benchmarks.common.StepRunner). On a CPU
the host "devices" share the cores: up to one per core they run side by side (the speed-up that
`train.host_devices` uses, experiments/host_devices.py), beyond that they only add overhead; on a
multi-accelerator host the same script measures real scaling.

  python -m benchmarks.scaling [--per_device_batch=2]
"""
import argparse
import json

from benchmarks.subprocess_runner import measure


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--config", default="experiments/configs/sprites.py")
  p.add_argument("--per_device_batch", type=int, default=2)
  p.add_argument("--devices", default="1,2,4,8")
  a = p.parse_args()
  rows = {}
  for n in (int(d) for d in a.devices.split(",")):
    r = measure([f"--config={a.config}", f"--batch_size={n * a.per_device_batch}",
                 "--steps=3"], devices=n)
    rows[n] = dict(steps_per_s=r["steps_per_s"],
                   frames_per_s=r["steps_per_s"] * n * a.per_device_batch * r["num_frames"],
                   devices_seen=r["devices"])
  print(json.dumps(dict(config=a.config, per_device_batch=a.per_device_batch, runs=rows)))


if __name__ == "__main__":
  main()
