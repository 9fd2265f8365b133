#!/bin/bash
# FG-ARI on 256 eval sequences: single kept checkpoints and averaged windows of the sigma_x 2.0 run.
# usage: REPO=/path/to/parts-jax W=WORKDIR O=OUTDIR bash curve.sh   (run 22: W was the sigma_x 2.0
# run's workdir at 71,000, which is checkpoints/sprites before its older checkpoints were pruned)
set -u
cd "${REPO:?}"; . .venv/bin/activate
mkdir -p "${O:?}"; : "${W:?}"
ev() { # step N
  python -m experiments.evaluate --workdir=$W --step=$1 --config.eval.average_checkpoints=$2 \
    --output=$O/step$1_avg$2.json > $O/step$1_avg$2.log 2>&1
  echo "$1 avg$2 $(grep 'FG-ARI (last' $O/step$1_avg$2.log)"; }
LAST=71000
ev $LAST 1; ev $LAST 4; ev $LAST 8; ev $LAST 2
for s in 70000 68000 66000 64000; do ev $s 1; ev $s 4; done
for s in 69000 67000 65000; do ev $s 1; done
ev $LAST 16
echo done
