"""Prints run 31's tables (docs/study.md): the shipped run trained on from 71,000 to 96,887 on an
H200, then to 98,511 on the 2-core CPU.

  1. the held-out FG-ARI logged during training (the same 16 eval sequences every 500 steps,
     single checkpoints; checkpoints/sprites/metrics.jsonl), mean and standard error per window;
  2. the 256-sequence evaluation (8 checkpoints averaged) at 71,000 (run 29's JSON), 89,898,
     96,887 and 98,511 under two draws of the slots' noise, each paired per sequence with
     71,000's, and 98,511's last checkpoint alone;
  3. run 26's error budget at 71,000 beside the same script's at 96,887.

usage: python docs/study/run31/table.py   (from the repository root)
"""
import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
STUDY = os.path.dirname(HERE)
ROOT = os.path.dirname(os.path.dirname(STUDY))
WINDOWS = ((55_000, 63_506, "sigma_x 0.3 / 1.0 recipes (run 10-19)"),
           (63_506, 67_500, "sigma_x 2.0, CPU (run 22)"), (67_500, 71_001, "sigma_x 2.0, CPU"),
           (71_001, 77_500, "the same recipe, H200"), (77_500, 84_000, "H200"),
           (84_000, 90_500, "H200"), (90_500, 97_000, "H200"), (97_000, 98_512, "2-core CPU"))
BASE = os.path.join(STUDY, "run29", "evals", "shipped_eval_seed{s}.json")
EVALS = os.path.join(HERE, "evals", "step{step}_eval_seed{s}.json")


def load(path):
  with open(path) as f:
    return json.load(f)


def curve_table():
  with open(os.path.join(ROOT, "checkpoints", "sprites", "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  logged = [(r["step"], r["eval/fg_ari"]) for r in rows if "eval/fg_ari" in r]
  print("| steps | trained | evaluations | FG-ARI mean | s.e. |")
  print("|---" * 5 + "|")
  for lo, hi, what in WINDOWS:
    v = np.array([f for s, f in logged if lo <= s < hi])
    if len(v) < 2:
      continue
    last = min(hi - 1, max(s for s, _ in logged))
    print(f"| {lo:,}-{last:,} | {what} | {len(v)} | {v.mean():.3f} | "
          f"{v.std(ddof=1) / np.sqrt(len(v)):.3f} |")


def eval_table():
  print("| checkpoint (8 averaged unless alone) | eval.seed | FG-ARI | s.e. | minus 71,000 (paired) | ARI | MSE "
        "| FG in bg slot | frame 0 |")
  print("|---" * 9 + "|")
  rows = [(step, s, "", BASE.format(s=s) if step == 71_000 else EVALS.format(step=step, s=s))
          for step in (71_000, 89_898, 96_887, 98_511) for s in (0, 1)]
  rows.append((98_511, 0, " alone",
               os.path.join(HERE, "evals", "step98511_single_eval_seed0.json")))
  for step, s, alone, path in rows:
    m = load(path)
    base = np.array(load(BASE.format(s=s))["fg_ari_per_sequence"], float)
    x = np.array(m["fg_ari_per_sequence"], float)
    ok = ~(np.isnan(x) | np.isnan(base))
    d = x[ok] - base[ok]
    diff = ("" if step == 71_000 else
            f"{d.mean():+.4f} +- {d.std(ddof=1) / np.sqrt(ok.sum()):.4f}")
    print(f"| {step:,}{alone} | {s} | {m['fg_ari']:.4f} | {m['fg_ari_sem']:.4f} | {diff} | "
          f"{m['ari']:.3f} | {m['mse']:.5f} | "
          f"{m['diagnostics']['fg_in_background_slot']:.3f} | {m['fg_ari_per_step'][0]:.3f} |")


def budget_table():
  runs = (load(os.path.join(STUDY, "run26", "error_budget.json")),
          load(os.path.join(HERE, "error_budget_96887.json")))
  print("| error budget (eval.seed 0) | " + " | ".join(f"{r['step']:,}" for r in runs) + " |")
  print("|---" * 3 + "|")
  rows = [("FG-ARI", lambda r: f"{r['fg_ari']:.4f}")]
  for name in ("right", "merged", "missed", "to_bg", "to_other", "stray"):
    rows.append((f"pixels {name}", lambda r, n=name: f"{100 * r['pixel_fractions'][n]:.1f} %"))
  rows += [("sprites missed (all)", lambda r: f"{100 * r['missed_object_fraction']:.1f} %"),
           ("sprites missed, 1-15 px", lambda r: f"{100 * r['by_area_quartile'][0]['missed']:.0f} %"),
           ("sprites missed, 15-27 px",
            lambda r: f"{100 * r['by_area_quartile'][1]['missed']:.0f} %"),
           ("FG-ARI, 1-sprite frames",
            lambda r: f"{r['by_num_objects']['1']['fg_ari']:.3f}"),
           ("FG-ARI, background slot's pixels repaired",
            lambda r: f"{r['repaired_fg_ari']['background']:.3f}"),
           ("FG-ARI, responsibilities at sigma_x 0.1 (diag.)",
            lambda r: f"{r['responsibilities_at_sigma_x']['0.1']['fg_ari']:.3f}")]
  for name, fn in rows:
    print(f"| {name} | " + " | ".join(fn(r) for r in runs) + " |")


def main():
  curve_table()
  print()
  eval_table()
  print()
  budget_table()


if __name__ == "__main__":
  main()
