#!/bin/bash
# Run 23: the 63,506 checkpoint (git 1312fde) continued to 64,506 with mask-space distillation,
# then evaluated.
# usage: REPO=/path/to/parts-jax START=DIR OUT=DIR bash chain.sh SEEDS...
# START holds checkpoints/sprites as of git 1312fde (e.g. git worktree add START 1312fde);
# the run of seed S is OUT/dmask_sS, its logs OUT/dmask_sS.{log,eval.log,shape.log}.
set -u
cd "${REPO:?}"; . .venv/bin/activate
for SEED in "$@"; do
  W=${OUT:?}/dmask_s$SEED
  if [ ! -d "$W" ]; then mkdir -p "$W"; cp -r "${START:?}"/checkpoints/sprites/{checkpoints,config.json,config_history.jsonl,metrics.jsonl} "$W"/; fi
  date; echo train "$W"
  python -m experiments.train --config=experiments/configs/sprites.py --workdir="$W" \
    --config.seed=$SEED --config.model.sigma_x=1.0 --config.model.beta=0.005 \
    --config.model.semi_amortized.steps=20 --config.model.semi_amortized.fitted_elbo=False \
    --config.model.semi_amortized.distill=0.0025 --config.model.semi_amortized.distill_space=masks \
    --config.train.num_steps=64506 > "$W.log" 2>&1 || { echo train failed; exit 1; }
  date; echo eval "$W"
  python -m experiments.evaluate --workdir="$W" > "$W.eval.log" 2>&1
  python -m experiments.shape_probe --workdir="$W" > "$W.shape.log" 2>&1
done
date; echo all done
