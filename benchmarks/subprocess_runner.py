"""Runs benchmarks.measure_once in a fresh process and returns its JSON."""
import json
import os
import subprocess
import sys
from typing import Dict, Mapping, Optional, Sequence


def measure(args: Sequence[str], devices: int = 0,
            env: Optional[Mapping[str, str]] = None) -> Dict:
  """measure_once's JSON for ARGS; `env`: variables set (over this process's) for the run."""
  env = dict(os.environ, **(env or {}))
  if devices:
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                        f" --xla_force_host_platform_device_count={devices}").strip()
  out = subprocess.run([sys.executable, "-m", "benchmarks.measure_once", *args], env=env,
                       check=True, capture_output=True, text=True).stdout
  return json.loads(out.strip().splitlines()[-1])
