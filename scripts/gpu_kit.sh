#!/usr/bin/env bash
# The accelerator kit's device command: run on a GPU machine from the repository root, with the
# wheels of scripts/fetch_wheels.sh in .whl/ and an output folder in $OUT (default ./kit_out).
#
#   bash scripts/gpu_kit.sh [--budget_s=540] [other benchmarks.accelerator_kit flags]
#
# Installs the missing wheels into /tmp/site (no network needed), then runs
# `python -m benchmarks.accelerator_kit`, which prints the device, runs the lowering-equivalence
# test and a correctness check on the device, times the train step (sprites and playroom shapes,
# scan lowering, float32 and bf16 matmuls, MFU against a matmul peak measured in the same run,
# and the host CPU in the same run), then trains the default sprites config (resuming from
# checkpoints/sprites) for the rest of the budget and writes report.json, the logs, the
# checkpoint archive, metrics.jsonl and the evaluation's metrics.json to $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/kit_out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
# Several JAX processes share the GPU (the kit, its pytest, train, evaluate): allocate on demand.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
"$PY" -m benchmarks.accelerator_kit --out="$OUT" "$@" 2>&1 | tee "$OUT/kit.log"
