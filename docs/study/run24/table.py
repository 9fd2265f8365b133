"""Prints run 24's tables (docs/study.md) from the JSON of run 24's chain.sh and runs 22-23's.

usage: python docs/study/run24/table.py   (from the repository root)
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ARMS = (("control: shipped recipe then (run 20)", "sigma10", os.path.join(HERE, "..", "run22", "pairs")),
        ("distilled in the masks, w 0.0025 (run 23)", "dmask", os.path.join(HERE, "..", "run23", "pairs")))
READINGS = ((64506, "step64000", "step64506", "avg64000_64500"),
            (65506, "step65000", "step65506", "avg65000_65500"))


def load(directory, arm, seed, reading):
  with open(os.path.join(directory, f"{arm}_s{seed}_{reading}.json")) as f:
    return json.load(f)


def main():
  print("| run | end step | FG-ARI seed 2 (3 readings) | seed 3 | mean of the six | ARI at end | MSE at end | FG in bg slot at end | contrast at end |")
  print("|---|---|---|---|---|---|---|---|---|")
  for label, arm, old in ARMS:
    for end, *readings in READINGS:
      directory = old if end == 64506 else os.path.join(HERE, "pairs")
      fg, last = {}, {}
      for seed in (2, 3):
        fg[seed] = [load(directory, arm, seed, r)["fg_ari"] for r in readings]
        last[seed] = load(directory, arm, seed, readings[1])
      mean = sum(fg[2] + fg[3]) / 6
      two = lambda key, fmt="{:.3f}", g=lambda m, k: m[k]: " / ".join(fmt.format(g(last[s], key)) for s in (2, 3))
      diag = lambda m, k: m["diagnostics"][k]
      print(f"| {label} | {end:,} | " + " | ".join(" / ".join(f"{v:.3f}" for v in fg[s]) for s in (2, 3))
            + f" | {mean:.3f} | {two('ari')} | {two('mse', '{:.5f}')} | "
            f"{two('fg_in_background_slot', g=diag)} | {two('object_mask_contrast', g=diag)} |")


if __name__ == "__main__":
  main()
