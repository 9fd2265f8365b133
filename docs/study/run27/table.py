"""Prints run 27's table (docs/study.md): the KL weight beta on the plateau, against run 25's
K = 5 control (the same 500 steps from checkpoints/sprites at 71,000, data seeds 2 and 3, the
same flags but beta), each cell seed 2 / seed 3, then each arm minus the control.

usage: python docs/study/run27/table.py   (from the repository root)
"""
import importlib.util
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
_SPEC = importlib.util.spec_from_file_location(
    "run25_table", os.path.join(HERE, "..", "run25", "table.py"))
run25 = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(run25)
SEEDS = run25.SEEDS
COLUMNS = run25.COLUMNS   # the same fields of the same evaluation JSON
# (label, JSON path of a seed's reading without "<reading>.json"); the control is run 25's
ARMS = (("control: beta 0.00125 (run 25)", os.path.join(run25.HERE, "evals", "k5_s{s}_evalK5_")),
        ("beta 0.005 (4x)", os.path.join(HERE, "evals", "b0.005_s{s}_")),
        ("beta 0.0003125 (1/4)", os.path.join(HERE, "evals", "b0.0003125_s{s}_")))
READINGS = (("71,500 alone", "step71500"), ("71,250 + 71,500 averaged", "avg71250_71500"))


def load(prefix, seed, reading):
  with open(prefix.format(s=seed) + reading + ".json") as f:
    return json.load(f)


def print_tables(arms=ARMS, readings=READINGS):
  """The two tables of the module docstring for `arms` (the control first; run 28 reuses it)."""
  print("| trained | reading | " + " | ".join(c for c, _ in COLUMNS) + " |")
  print("|---" * (len(COLUMNS) + 2) + "|")
  for label, prefix in arms:
    for reading, r in readings:
      runs = [load(prefix, s, r) for s in SEEDS]
      cells = [" / ".join(fmt(m) for m in runs) for _, fmt in COLUMNS]
      print(f"| {label} | {reading} | " + " | ".join(cells) + " |")
  print()
  print("| arm | reading | FG-ARI - control (seed 2 / seed 3; mean +- half the difference) |")
  print("|---|---|---|")
  control = arms[0][1]
  for label, prefix in arms[1:]:
    for reading, r in readings:
      d = [load(prefix, s, r)["fg_ari"] - load(control, s, r)["fg_ari"] for s in SEEDS]
      print(f"| {label} | {reading} | {d[0]:+.3f} / {d[1]:+.3f} "
            f"({(d[0] + d[1]) / 2:+.3f} +- {abs(d[0] - d[1]) / 2:.3f}) |")


def main():
  print_tables()


if __name__ == "__main__":
  main()
