"""Prints run 27's table (docs/study.md): the KL weight beta on the plateau, against run 25's
K = 5 control (the same 500 steps from checkpoints/sprites at 71,000, data seeds 2 and 3, the
same flags but beta), each cell seed 2 / seed 3, then each arm minus the control.

usage: python docs/study/run27/table.py   (from the repository root)
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
RUN25 = os.path.join(HERE, "..", "run25", "evals")
SEEDS = (2, 3)
# (label, path of the JSON of seed s and reading r)
ARMS = (("control: beta 0.00125 (run 25)",
         lambda s, r: os.path.join(RUN25, f"k5_s{s}_evalK5_{r}.json")),)
ARMS += tuple((f"beta {b}", (lambda b: lambda s, r: os.path.join(
    HERE, "evals", f"b{b}_s{s}_{r}.json"))(b)) for b in ("0.005", "0.0003125")
              if os.path.exists(os.path.join(HERE, "evals", f"b{b}_s2_step71500.json")))
READINGS = (("71,500 alone", "step71500"), ("71,250 + 71,500 averaged", "avg71250_71500"))
COLUMNS = (("FG-ARI", lambda m: f"{m['fg_ari']:.3f}"),
           ("s.e.", lambda m: f"{m['fg_ari_sem']:.3f}"),
           ("ARI", lambda m: f"{m['ari']:.3f}"),
           ("MSE", lambda m: f"{m['mse']:.5f}"),
           ("FG in bg slot", lambda m: f"{m['diagnostics']['fg_in_background_slot']:.3f}"),
           ("contrast", lambda m: f"{m['diagnostics']['object_mask_contrast']:.3f}"),
           ("responsibilities", lambda m: f"{m['diagnostics']['fg_ari_responsibilities']:.3f}"))


def load(path):
  with open(path) as f:
    return json.load(f)


def main():
  print("| trained | reading | " + " | ".join(c for c, _ in COLUMNS) + " |")
  print("|---" * (len(COLUMNS) + 2) + "|")
  for label, path in ARMS:
    for reading, r in READINGS:
      runs = [load(path(s, r)) for s in SEEDS]
      cells = [" / ".join(fmt(m) for m in runs) for _, fmt in COLUMNS]
      print(f"| {label} | {reading} | " + " | ".join(cells) + " |")
  print()
  print("| arm | reading | FG-ARI - control (seed 2 / seed 3; mean +- half the difference) |")
  print("|---|---|---|")
  control = ARMS[0][1]
  for label, path in ARMS[1:]:
    for reading, r in READINGS:
      d = [load(path(s, r))["fg_ari"] - load(control(s, r))["fg_ari"] for s in SEEDS]
      print(f"| {label} | {reading} | {d[0]:+.3f} / {d[1]:+.3f} "
            f"({(d[0] + d[1]) / 2:+.3f} +- {abs(d[0] - d[1]) / 2:.3f}) |")


if __name__ == "__main__":
  main()
