"""Prints the tables of runs 32 and 33 (docs/study.md): the shipped run resumed on the 2-core CPU
(AMD EPYC with AVX-512) from 98,511 (run 32, to 104,442) and from 104,442 (run 33, to 110,367).

  1. the held-out FG-ARI logged during training (the same 16 eval sequences every 500 steps,
     single checkpoints; checkpoints/sprites/metrics.jsonl), mean and standard error per window
     from 84,000 on (run 31's table has the earlier ones);
  2. the 256-sequence evaluation on this machine of 98,511 (8 checkpoints averaged, restored
     from git) and of every later step in evals/ (8 averaged, and alone where evaluated so),
     under two draws of the slots' noise, each paired per sequence (under the same draw) with
     98,511's and with 104,442's (`metrics.paired_fg_ari_difference`).

usage: python docs/study/run32/table.py   (from the repository root)
"""
import glob
import json
import os
import re
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, ROOT)
from parts_jax import metrics  # pylint: disable=g-import-not-at-top,wrong-import-position

BASE_STEP = 98_511
PAIRED_WITH = (BASE_STEP, 104_442)   # the columns "minus S (paired)"
WINDOW = 6_500
EVALS = os.path.join(HERE, "evals")


def load(path):
  with open(path) as f:
    return json.load(f)


def curve_table():
  with open(os.path.join(ROOT, "checkpoints", "sprites", "metrics.jsonl")) as f:
    logged = [(r["step"], r["eval/fg_ari"]) for r in map(json.loads, f) if "eval/fg_ari" in r]
  last = max(s for s, _ in logged)
  edges = [84_000, 90_500, 97_000, BASE_STEP + 1]
  edges += list(range(BASE_STEP + 1 + WINDOW, last + 1, WINDOW)) + [last + 1]
  print("| steps | trained on | evaluations | FG-ARI mean | s.e. |")
  print("|---" * 5 + "|")
  for lo, hi in zip(edges[:-1], edges[1:]):
    v = np.array([f for s, f in logged if lo <= s < hi])
    if len(v) < 2:
      continue
    where = "H200 (run 31)" if hi <= 97_000 else ("2-core CPU, AVX2 (run 31)" if
                                                  hi <= BASE_STEP + 1 else "2-core CPU, AVX-512")
    print(f"| {lo:,}-{min(hi - 1, last):,} | {where} | {len(v)} | {v.mean():.3f} | "
          f"{metrics.standard_error(v):.3f} |")


def eval_table():
  pattern = re.compile(r"step(\d+)(_single)?_eval_seed(\d)\.json$")
  rows = sorted((int(m.group(1)), bool(m.group(2)), int(m.group(3)), path)
                for path in glob.glob(os.path.join(EVALS, "*.json"))
                for m in [pattern.search(path)] if m)
  print("| checkpoint (8 averaged unless alone) | eval.seed | FG-ARI | s.e. | "
        + "".join(f"minus {b:,} (paired) | " for b in PAIRED_WITH)
        + "ARI | MSE | FG in bg slot | refined masks (diag.) |")
  print("|---" * (8 + len(PAIRED_WITH)) + "|")
  for step, alone, seed, path in rows:
    m = load(path)
    diffs = []
    for base_step in PAIRED_WITH:
      if step < base_step or (step, alone) == (base_step, False):
        diffs.append("")
        continue
      d = metrics.paired_fg_ari_difference(
          m["fg_ari_per_sequence"],
          load(os.path.join(EVALS, f"step{base_step}_eval_seed{seed}.json"))[
              "fg_ari_per_sequence"])
      diffs.append(f"{d['difference']:+.4f} +- {d['sem']:.4f}")
    print(f"| {step:,}{' alone' if alone else ''} | {seed} | {m['fg_ari']:.4f} | "
          f"{m['fg_ari_sem']:.4f} | {' | '.join(diffs)} | {m['ari']:.3f} | {m['mse']:.5f} | "
          f"{m['diagnostics']['fg_in_background_slot']:.3f} | "
          f"{m['diagnostics']['fg_ari_masks_refined']:.4f} |")


def main():
  curve_table()
  print()
  eval_table()


if __name__ == "__main__":
  main()
