"""Prints run 25's table of the K = 7 pilot (docs/study.md) from the JSON that run 25's chain.sh
wrote (copied to docs/study/run25/evals/), data seeds 2 and 3 (each cell seed 2 / seed 3).

usage: python docs/study/run25/table.py   (from the repository root)
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = (2, 3)
# (label, run name prefix, the trained K)
ARMS = (("control: K = 5", "k5", 5), ("K = 7 from step 71,000", "k7", 7))
# (label, JSON name suffix): the single checkpoint at its own K, then the averaged pair at K 5, 7
READINGS = (("71,500 alone, own K", lambda k: f"evalK{k}_step71500"),
            ("71,250 + 71,500 averaged, evaluated at K = 5", lambda k: "evalK5_avg71250_71500"),
            ("71,250 + 71,500 averaged, evaluated at K = 7", lambda k: "evalK7_avg71250_71500"))
COLUMNS = (("FG-ARI", lambda m: f"{m['fg_ari']:.3f}"),
           ("s.e.", lambda m: f"{m['fg_ari_sem']:.3f}"),
           ("ARI", lambda m: f"{m['ari']:.3f}"),
           ("MSE", lambda m: f"{m['mse']:.5f}"),
           ("FG in bg slot", lambda m: f"{m['diagnostics']['fg_in_background_slot']:.3f}"),
           ("contrast", lambda m: f"{m['diagnostics']['object_mask_contrast']:.3f}"),
           ("responsibilities", lambda m: f"{m['diagnostics']['fg_ari_responsibilities']:.3f}"))


def load(name):
  with open(os.path.join(HERE, "evals", name + ".json")) as f:
    return json.load(f)


def main():
  print("| trained | reading | " + " | ".join(c for c, _ in COLUMNS) + " |")
  print("|---" * (len(COLUMNS) + 2) + "|")
  for label, prefix, k in ARMS:
    for reading, suffix in READINGS:
      runs = [load(f"{prefix}_s{s}_{suffix(k)}") for s in SEEDS]
      cells = [" / ".join(fmt(m) for m in runs) for _, fmt in COLUMNS]
      print(f"| {label} | {reading} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
  main()
