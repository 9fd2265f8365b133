#!/bin/bash
# Run 25: more slots on the plateau. The shipped run (checkpoints/sprites, step 71,000, sigma_x
# 2.0, beta 0.00125, K = 5) continued 500 steps to 71,500 with K = 5 (control) and with K = 7
# (model.num_slots=7; the issue allows K >= 5; the slots are drawn from the fixed prior and every
# parameter is shared over slots, so the same parameters run with any K), data seeds 2 and 3
# (seed 3 was stopped in session 27 and resumed to 71,500 in session 28: a NAME whose DIR/NAME
# exists resumes; docs/study.md),
# checkpoints every 250 steps. Each run is then evaluated at 71,500 alone at its own K, and with
# 71,250 and 71,500 averaged at K = 5 and at K = 7 (test-time K: eval.num_slots).
# usage: REPO=/path/to/parts-jax OUT=DIR bash chain.sh NAME...   (NAME = k5_s2, k7_s3, ...:
# K and the data seed from the name). Writes DIR/NAME/ (workdir), DIR/NAME.log and
# DIR/evals/NAME_*.json.
set -u
cd "${REPO:?}"; . .venv/bin/activate
mkdir -p "${OUT:?}/evals"
END=71500
for n in "$@"; do
  K=${n%%_*}; K=${K#k}; SEED=${n##*_s}; W="$OUT/$n"
  if [ ! -d "$W" ]; then
    mkdir -p "$W"
    cp -r checkpoints/sprites/{checkpoints,config.json,config_history.jsonl,metrics.jsonl} "$W/"
  fi
  date; echo "train $n (K=$K, seed $SEED)"
  python -m experiments.train --config=experiments/configs/sprites.py --workdir="$W" \
    --config.seed=$SEED --config.model.sigma_x=2.0 --config.model.beta=0.00125 \
    --config.model.num_slots=$K --config.train.max_checkpoints=8 \
    --config.train.checkpoint_every=250 --config.eval.average_checkpoints=1 \
    --config.train.num_steps=$END > "$OUT/$n.log" 2>&1 || { echo train failed; exit 1; }
  date; echo "eval $n"
  python -m experiments.evaluate --workdir="$W" \
    --output="$OUT/evals/${n}_evalK${K}_step${END}.json" > /dev/null 2>&1
  for EK in 5 7; do
    python -m experiments.evaluate --workdir="$W" --config.eval.num_slots=$EK \
      --config.eval.average_checkpoints=2 \
      --output="$OUT/evals/${n}_evalK${EK}_avg$((END - 250))_${END}.json" > /dev/null 2>&1
  done
done
date; echo all done
