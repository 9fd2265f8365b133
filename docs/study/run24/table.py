"""Prints run 24's tables (docs/study.md) from the JSON of run 24's chain.sh and runs 22-23's.

usage: python docs/study/run24/table.py   (from the repository root)
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ARMS = (("control: shipped recipe then (run 20)", "sigma10", "run22"),
        ("distilled in the masks, w 0.0025 (run 23)", "dmask", "run23"))
# end step, the run whose pairs/ hold its JSON, the three readings (the end's is the second)
READINGS = ((64506, None, ("step64000", "step64506", "avg64000_64500")),
            (65506, "run24", ("step65000", "step65506", "avg65000_65500")))
SEEDS = (2, 3)


def load(run, arm, seed, reading):
  with open(os.path.join(HERE, "..", run, "pairs", f"{arm}_s{seed}_{reading}.json")) as f:
    return json.load(f)


def per_seed(values, fmt="{:.3f}"):
  return " / ".join(fmt.format(v) for v in values)


def main():
  print("| run | end step | FG-ARI seed 2 (3 readings) | seed 3 | mean of the six | ARI at end | "
        "MSE at end | FG in bg slot at end | contrast at end |")
  print("|---|---|---|---|---|---|---|---|---|")
  for label, arm, first_run in ARMS:
    for end, run, readings in READINGS:
      run = run or first_run
      fg = {s: [load(run, arm, s, r)["fg_ari"] for r in readings] for s in SEEDS}
      last = [load(run, arm, s, readings[1]) for s in SEEDS]
      diag = lambda key: per_seed(m["diagnostics"][key] for m in last)
      cells = [label, f"{end:,}", *(per_seed(fg[s]) for s in SEEDS),
               f"{sum(sum(v) for v in fg.values()) / 6:.3f}",
               per_seed(m["ari"] for m in last), per_seed((m["mse"] for m in last), "{:.5f}"),
               diag("fg_in_background_slot"), diag("object_mask_contrast")]
      print("| " + " | ".join(cells) + " |")

if __name__ == "__main__":
  main()
