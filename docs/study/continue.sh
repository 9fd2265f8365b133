#!/bin/bash
# One continuation arm of the plateau studies (runs 27, 28): the shipped run (checkpoints/sprites,
# step 71,000, sigma_x 2.0, K = 5) continued 500 steps to 71,500 on the data seed in NAME, with
# checkpoints every 250 steps and the flags of run 25's K = 5 control (docs/study/run25/chain.sh:
# beta 0.00125 unless BETA says otherwise) plus ARM_FLAGS, then evaluated at 71,500 alone and with
# 71,250 and 71,500 averaged. Run 25's K = 5 readings are the control of every such arm.
# usage: REPO=/path/to/parts-jax OUT=DIR [BETA=b] [ARM_FLAGS="--config.x=y ..."] \
#          bash docs/study/continue.sh NAME     (NAME = <arm>_s<seed>, e.g. tbptt0_s2)
# Writes DIR/NAME/ (workdir; an existing one resumes), DIR/NAME.log, DIR/evals/NAME_*.json.
set -u
cd "${REPO:?}"; . .venv/bin/activate
n=${1:?NAME}; SEED=${n##*_s}; W="${OUT:?}/$n"; END=71500
mkdir -p "$OUT/evals"
if [ ! -d "$W" ]; then
  mkdir -p "$W"
  cp -r checkpoints/sprites/{checkpoints,config.json,config_history.jsonl,metrics.jsonl} "$W/"
fi
date; echo "train $n (seed $SEED, beta ${BETA:-0.00125}, ${ARM_FLAGS:-no other flags})"
# shellcheck disable=SC2086
python -m experiments.train --config=experiments/configs/sprites.py --workdir="$W" \
  --config.seed="$SEED" --config.model.sigma_x=2.0 --config.model.beta="${BETA:-0.00125}" \
  --config.train.max_checkpoints=8 \
  --config.train.checkpoint_every=250 --config.eval.average_checkpoints=1 \
  --config.train.num_steps=$END ${ARM_FLAGS:-} > "$OUT/$n.log" 2>&1 || { echo train failed; exit 1; }
date; echo "eval $n"
python -m experiments.evaluate --workdir="$W" \
  --output="$OUT/evals/${n}_step${END}.json" > /dev/null 2>&1
python -m experiments.evaluate --workdir="$W" --config.eval.average_checkpoints=2 \
  --output="$OUT/evals/${n}_avg$((END - 250))_${END}.json" > /dev/null 2>&1
