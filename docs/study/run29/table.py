"""Prints run 29's tables (docs/study.md) from docs/study/run29/ and run 25's control JSON.

  1. four refinement steps at frame 0 during training (model.first_frame_refine_steps=4; N = 2
     at every later frame), 500 steps from checkpoints/sprites at 71,000 on data seeds 2 and 3,
     against run 25's K = 5 control (the tables of run 27's table.py: each cell seed 2 / seed 3,
     then the arm minus the control);
  2. the shipped checkpoint's headline beside the new diagnostic masks_mean (the same posterior
     decoded at its mean instead of at the loss's sample), under two draws of the slots' noise.

usage: python docs/study/run29/table.py   (from the repository root)
"""
import importlib.util
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
_SPEC = importlib.util.spec_from_file_location(
    "run27_table", os.path.join(HERE, "..", "run27", "table.py"))
run27 = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(run27)
ARMS = (run27.ARMS[0],   # run 25's control
        ("first_frame_refine_steps 4", os.path.join(HERE, "evals", "ff4_s{s}_")))


def mean_decode_table():
  print("| shipped checkpoint (71,000, 8 averaged) | FG-ARI (headline) | s.e. | masks at the mean "
        "(diag.) | refined masks (diag.) | headline t = 0 | masks at the mean t = 0 |")
  print("|---" * 7 + "|")
  for seed in (0, 1):
    with open(os.path.join(HERE, "evals", f"shipped_eval_seed{seed}.json")) as f:
      m = json.load(f)
    d = m["diagnostics"]
    print(f"| eval.seed {seed} | {m['fg_ari']:.4f} | {m['fg_ari_sem']:.4f} | "
          f"{d['fg_ari_masks_mean']:.4f} | {d['fg_ari_masks_refined']:.4f} | "
          f"{m['fg_ari_per_step'][0]:.3f} | {d['fg_ari_masks_mean_per_step'][0]:.3f} |")


def main():
  run27.print_tables(ARMS)
  print()
  mean_decode_table()


if __name__ == "__main__":
  main()
