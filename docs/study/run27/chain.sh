#!/bin/bash
# Run 27: the price of a slot's information on the plateau. The shipped run (checkpoints/sprites,
# step 71,000, sigma_x 2.0, beta 0.00125, K = 5) continued 500 steps to 71,500 with another KL
# weight beta (Eq 7; the paper's 0.5 is for sigma_x 0.1), data seeds 2 and 3, checkpoints every
# 250 steps: the same steps, seeds and flags as run 25's K = 5 control (docs/study/run25/chain.sh,
# whose readings are the control here). Each run is evaluated at 71,500 alone and with 71,250
# and 71,500 averaged (as run 25).
# usage: REPO=/path/to/parts-jax OUT=DIR bash chain.sh NAME...   (NAME = b<beta>_s<seed>, e.g.
# b0.005_s2). Writes DIR/NAME/ (workdir; an existing one resumes), DIR/NAME.log and
# DIR/evals/NAME_*.json.
set -u
cd "${REPO:?}"; . .venv/bin/activate
mkdir -p "${OUT:?}/evals"
END=71500
for n in "$@"; do
  BETA=${n%%_*}; BETA=${BETA#b}; SEED=${n##*_s}; W="$OUT/$n"
  if [ ! -d "$W" ]; then
    mkdir -p "$W"
    cp -r checkpoints/sprites/{checkpoints,config.json,config_history.jsonl,metrics.jsonl} "$W/"
  fi
  date; echo "train $n (beta=$BETA, seed $SEED)"
  python -m experiments.train --config=experiments/configs/sprites.py --workdir="$W" \
    --config.seed=$SEED --config.model.sigma_x=2.0 --config.model.beta=$BETA \
    --config.train.max_checkpoints=8 \
    --config.train.checkpoint_every=250 --config.eval.average_checkpoints=1 \
    --config.train.num_steps=$END > "$OUT/$n.log" 2>&1 || { echo train failed; exit 1; }
  date; echo "eval $n"
  python -m experiments.evaluate --workdir="$W" \
    --output="$OUT/evals/${n}_step${END}.json" > /dev/null 2>&1
  python -m experiments.evaluate --workdir="$W" --config.eval.average_checkpoints=2 \
    --output="$OUT/evals/${n}_avg$((END - 250))_${END}.json" > /dev/null 2>&1
done
date; echo all done
