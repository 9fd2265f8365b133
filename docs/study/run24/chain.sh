#!/bin/bash
# Run 24: run 23's mask-distilled runs and run 20's control (sigma_x 1.0), both at 64,506,
# continued 1,000 more steps to 65,506 with their own recipes, then evaluated at 65,000, at
# 65,506 and with 65,000 and 65,500 averaged.
# usage: REPO=/path/to/parts-jax OUT=DIR bash chain.sh CONTROL_WORKDIR... -- DISTILL_WORKDIR...
# (the workdirs are run 20's sigma10_s{2,3} and run 23's dmask_s{2,3}; their seed is the
# trailing _sN of the name). Writes DIR/NAME.log, DIR/NAME.eval.log and DIR/pairs/*.json.
set -u
cd "${REPO:?}"; . .venv/bin/activate
mkdir -p "${OUT:?}/pairs"
KIND=control
for W in "$@"; do
  if [ "$W" = "--" ]; then KIND=distill; continue; fi
  n=$(basename "$W"); SEED=${n##*_s}
  EXTRA=()
  if [ $KIND = distill ]; then
    EXTRA=(--config.model.semi_amortized.steps=20 --config.model.semi_amortized.fitted_elbo=False
           --config.model.semi_amortized.distill=0.0025 --config.model.semi_amortized.distill_space=masks)
  fi
  date; echo "train $W ($KIND, seed $SEED)"
  python -m experiments.train --config=experiments/configs/sprites.py --workdir="$W" \
    --config.seed=$SEED --config.model.sigma_x=1.0 --config.model.beta=0.005 "${EXTRA[@]}" \
    --config.train.num_steps=65506 > "$OUT/$n.log" 2>&1 || { echo train failed; exit 1; }
  date; echo "eval $W"
  python -m experiments.evaluate --workdir="$W" > "$OUT/$n.eval.log" 2>&1
  cp "$W/eval/metrics.json" "$OUT/pairs/${n}_step65506.json"
  python -m experiments.evaluate --workdir="$W" --step=65000 --output="$OUT/pairs/${n}_step65000.json" > /dev/null 2>&1
  python -m experiments.evaluate --workdir="$W" --step=65500 --config.eval.average_checkpoints=2 \
    --output="$OUT/pairs/${n}_avg65000_65500.json" > /dev/null 2>&1
done
date; echo all done
