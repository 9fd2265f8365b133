"""Prints run 28's tables (docs/study.md) from docs/study/run28/ and run 25's control JSON.

  1. gradients through all 8 frames (model.tbptt=0), 500 steps from checkpoints/sprites at
     71,000 on data seeds 2 and 3, against run 25's K = 5 control (the tables of run 27's
     table.py: each cell seed 2 / seed 3, then the arm minus the control);
  2. more refinement steps at frame 0 at test time (model.first_frame_refine_steps = N_0, the
     model trained with N = 2 everywhere): each evaluated model at N_0 against itself at N_0 = 2
     on the same 256 sequences, paired per sequence (`metrics.paired_fg_ari_difference`).

usage: python docs/study/run28/table.py   (from the repository root)
"""
import importlib.util
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(HERE))))
from parts_jax import metrics  # pylint: disable=g-import-not-at-top,wrong-import-position

_SPEC = importlib.util.spec_from_file_location(
    "run27_table", os.path.join(HERE, "..", "run27", "table.py"))
run27 = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(run27)
ARMS = (run27.ARMS[0],   # run 25's control
        ("tbptt 0 (all 8 frames)", os.path.join(HERE, "evals", "tbptt0_s{s}_")))
# (label, JSON path without ".json" of the plain evaluation (N_0 = N = 2), the N_0 evaluated
# (JSON: the same path + "_first_frame<N_0>.json")); eval.seed draws the slots' noise
FIRST_FRAME = (
    ("shipped (71,000, 8 averaged), eval.seed 0", os.path.join(HERE, "shipped_eval"), (3, 4, 5, 6)),
    ("shipped, eval.seed 1", os.path.join(HERE, "shipped_eval_seed1"), (4,)),
    ("shipped, eval.seed 2", os.path.join(HERE, "shipped_eval_seed2"), (4,)),
    ("tbptt 0, seed 2 (71,250 + 71,500)",
     os.path.join(HERE, "evals", "tbptt0_s2_avg71250_71500"), (4,)))


def load(path):
  with open(path + ".json") as f:
    return json.load(f)


def first_frame_table():
  print("| model, noise | N_0 at t = 0 | FG-ARI | s.e. | minus N_0 = 2, paired | ARI | MSE | "
        "FG in bg slot | FG-ARI t = 0 |")
  print("|---" * 9 + "|")
  for label, plain_path, n0s in FIRST_FRAME:
    plain = load(plain_path)
    for n0 in (2,) + n0s:
      m = plain if n0 == 2 else load(f"{plain_path}_first_frame{n0}")
      d = metrics.paired_fg_ari_difference(m["fg_ari_per_sequence"], plain["fg_ari_per_sequence"])
      diff = "" if n0 == 2 else f"{d['difference']:+.4f} +- {d['sem']:.4f}"
      print(f"| {label} | {n0} | {m['fg_ari']:.4f} | {m['fg_ari_sem']:.4f} | {diff} | "
            f"{m['ari']:.3f} | {m['mse']:.5f} | "
            f"{m['diagnostics']['fg_in_background_slot']:.3f} | {m['fg_ari_per_step'][0]:.3f} |")
  print()
  base = [load(path) for _, path, _ in FIRST_FRAME[:3]]
  for seed in (1, 2):
    d = metrics.paired_fg_ari_difference(base[seed]["fg_ari_per_sequence"],
                                         base[0]["fg_ari_per_sequence"])
    print(f"The noise alone (shipped, N_0 = 2): eval.seed {seed} minus eval.seed 0, paired: "
          f"{d['difference']:+.4f} +- {d['sem']:.4f}")


def main():
  run27.print_tables(ARMS)
  print()
  first_frame_table()


if __name__ == "__main__":
  main()
