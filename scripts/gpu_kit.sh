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
source scripts/gpu_env.sh || exit 1
"$PY" -m benchmarks.accelerator_kit --out="$OUT" "$@" 2>&1 | tee "$OUT/kit.log"
