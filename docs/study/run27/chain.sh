#!/bin/bash
# Run 27: the price of a slot's information on the plateau. The shipped run (checkpoints/sprites,
# step 71,000, sigma_x 2.0, beta 0.00125, K = 5) continued 500 steps to 71,500 with another KL
# weight beta (Eq 7; the paper's 0.5 is for sigma_x 0.1), data seeds 2 and 3: docs/study/continue.sh
# (run 25's K = 5 control flags but beta; its readings are the control) per NAME.
# usage: REPO=/path/to/parts-jax OUT=DIR bash chain.sh NAME...   (NAME = b<beta>_s<seed>, e.g.
# b0.005_s2). Writes DIR/NAME/ (workdir; an existing one resumes), DIR/NAME.log and
# DIR/evals/NAME_*.json.
set -u
for n in "$@"; do
  BETA=${n%%_*}; BETA=${BETA#b}
  BETA=$BETA bash "$(dirname "$0")/../continue.sh" "$n" || exit 1
done
date; echo all done
