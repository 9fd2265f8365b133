"""WORKDIR/metrics.jsonl: one JSON object per logged step ({"step": int, "train/...": float,
"eval/...": float, "eval_diagnostics/...": float}). train.py appends to it; sweeps, benchmarks
and figures read it here.
"""
import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

FILENAME = "metrics.jsonl"


def path(workdir: str) -> str:
  return os.path.join(workdir, FILENAME)


def read(workdir: str) -> List[Dict[str, Any]]:
  """The logged rows in order; [] when the run has logged nothing yet."""
  if not os.path.exists(path(workdir)):
    return []
  with open(path(workdir)) as f:
    return [json.loads(line) for line in f if line.strip()]


def truncate(workdir: str, last_step: int) -> int:
  """Keeps the rows with step <= last_step (rewritten atomically); returns how many were
  dropped. A resumed run calls it: the steps after its checkpoint are run and logged again."""
  p = path(workdir)
  with open(p) as f:
    lines = f.readlines()
  keep = [l for l in lines if l.strip() and json.loads(l)["step"] <= last_step]
  if len(keep) != len(lines):
    with open(p + ".tmp", "w") as f:
      f.writelines(keep)
    os.replace(p + ".tmp", p)
  return len(lines) - len(keep)


def median_steps_per_s(workdir: str, after_step: int = 0) -> Optional[float]:
  """Median train/steps_per_s logged after `after_step` (a resumed run's start), leaving out
  the first row (it includes compilation); None without any."""
  rates = [r.get("train/steps_per_s") for r in read(workdir) if r["step"] > after_step]
  rates = [r for r in rates[1:] if r is not None]
  return float(np.median(rates)) if rates else None


def curves(workdir: str, keys: Sequence[str]) -> Dict[str, Tuple[List[int], List[float]]]:
  """key -> (steps, values) over the rows that logged it, for the `keys` logged at least once."""
  rows = read(workdir)
  out = {}
  for key in keys:
    points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
    if points:
      out[key] = ([s for s, _ in points], [v for _, v in points])
  return out
