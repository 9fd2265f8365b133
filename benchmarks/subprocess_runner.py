"""Runs benchmarks.measure_once in a fresh process and returns its JSON."""
import json
import os
import subprocess
import sys
from typing import Dict, Sequence


def measure(args: Sequence[str], devices: int = 0) -> Dict:
  env = dict(os.environ)
  if devices:
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                        f" --xla_force_host_platform_device_count={devices}").strip()
  out = subprocess.run([sys.executable, "-m", "benchmarks.measure_once", *args], env=env,
                       check=True, capture_output=True, text=True).stdout
  return json.loads(out.strip().splitlines()[-1])
