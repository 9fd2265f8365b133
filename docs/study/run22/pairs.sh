#!/bin/bash
# Run 22's check of runs 20-21: each 64,506 continuation read at 64,000, at 64,506, and with
# 64,000 and 64,500 averaged (eval.average_checkpoints=2).
# usage: REPO=/path/to/parts-jax OUT=DIR bash pairs.sh WORKDIR...   (run 22: run 20's
# sigma{14,20,10}_s{2,3} and run 21's distill0.05_s{2,3}); writes DIR/NAME_*.json
set -u
cd "${REPO:?}"; . .venv/bin/activate
mkdir -p "${OUT:?}"
for W in "$@"; do
  n=$(basename "$W")
  [ -e "$OUT/${n}_step64000.json" ] || python -m experiments.evaluate --workdir="$W" --step=64000 --output="$OUT/${n}_step64000.json" > /dev/null 2>&1
  python -m experiments.evaluate --workdir="$W" --step=64500 --config.eval.average_checkpoints=2 --output="$OUT/${n}_avg64000_64500.json" > /dev/null 2>&1
  cp "$W/eval/metrics.json" "$OUT/${n}_step64506.json"
  echo "$n done"
done
