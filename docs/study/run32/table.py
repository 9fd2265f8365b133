"""Prints the tables of runs 32 and 33 (docs/study.md): the shipped run resumed on the 2-core CPU
(AMD EPYC with AVX-512) from 98,511 (run 32, to 104,442) and from 104,442 (run 33, to 110,367).

  1. the held-out FG-ARI logged during training (the same 16 eval sequences every 500 steps,
     single checkpoints; checkpoints/sprites/metrics.jsonl), mean and standard error per window
     from 84,000 on (run 31's table has the earlier ones);
  2. the 256-sequence evaluation on this machine of 98,511 (8 checkpoints averaged, restored
     from git) and of every later step in evals/ (8 averaged, and alone where evaluated so),
     under two draws of the slots' noise, each paired per sequence with 98,511's under the same
     draw.

usage: python docs/study/run32/table.py   (from the repository root)
"""
import glob
import json
import os
import re

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
BASE_STEP = 98_511
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
          f"{v.std(ddof=1) / np.sqrt(len(v)):.3f} |")


def eval_table():
  pattern = re.compile(r"step(\d+)(_single)?_eval_seed(\d)\.json$")
  rows = sorted((int(m.group(1)), bool(m.group(2)), int(m.group(3)), path)
                for path in glob.glob(os.path.join(EVALS, "*.json"))
                for m in [pattern.search(path)] if m)
  print("| checkpoint (8 averaged unless alone) | eval.seed | FG-ARI | s.e. | minus 98,511 "
        "(paired) | ARI | MSE | FG in bg slot | refined masks (diag.) |")
  print("|---" * 9 + "|")
  for step, alone, seed, path in rows:
    m = load(path)
    base = np.array(load(os.path.join(EVALS, f"step{BASE_STEP}_eval_seed{seed}.json"))[
        "fg_ari_per_sequence"], float)
    x = np.array(m["fg_ari_per_sequence"], float)
    ok = ~(np.isnan(x) | np.isnan(base))
    d = x[ok] - base[ok]
    diff = ("" if (step, alone) == (BASE_STEP, False) else
            f"{d.mean():+.4f} +- {d.std(ddof=1) / np.sqrt(ok.sum()):.4f}")
    print(f"| {step:,}{' alone' if alone else ''} | {seed} | {m['fg_ari']:.4f} | "
          f"{m['fg_ari_sem']:.4f} | {diff} | {m['ari']:.3f} | {m['mse']:.5f} | "
          f"{m['diagnostics']['fg_in_background_slot']:.3f} | "
          f"{m['diagnostics']['fg_ari_masks_refined']:.4f} |")


def main():
  curve_table()
  print()
  eval_table()


if __name__ == "__main__":
  main()
