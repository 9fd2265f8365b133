#!/usr/bin/env bash
# The supervised decoder check (experiments/decoder_capacity.py) on a GPU: every decoder VARIANT x
# SEED in its own process, side by side, each stopped after TIMEOUT_S seconds. Run from anywhere,
# with the wheels of scripts/fetch_wheels.sh in .whl/ and an output folder in $OUT:
#
#   [STEPS=40000] [CURVE_EVERY=2500] [TIMEOUT_S=420] [SEEDS="0 1"] [VARIANTS="default wide"] \
#     [EXTRA_FLAGS="--train_sequences=512"] bash scripts/gpu_decoder_check.sh
#
# Writes OUT/decoder/VARIANT_seedS.log (one JSON line per curve point, so a run stopped by the
# timeout keeps its curve so far) and OUT/decoder/VARIANT_seedS.json (the whole result, for
# runs that finish), and packs them into OUT/decoder.tar.gz (the device tool returns only a few
# files per call). EXTRA_FLAGS go to every process. Variants (the flags they add to
# experiments.decoder_capacity):
#   default  32 x 32 x 32 hidden channels, 3 x 3 kernels, D = 16, linear basis (the model's)
#   wide     64 x 64 x 64 x 64                  (the study preset wide_decoder's)
#   k5       32 x 32 x 32, 5 x 5 kernels
#   wide_k5  64 x 64 x 64 x 64, 5 x 5 kernels
#   d32      32 x 32 x 32, D = 32 (model.slot_dim)
#   relative 32 x 32 x 32, slot-centric basis (model.decoder.basis=relative)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/kit_out}"
mkdir -p "$OUT/decoder"
source scripts/gpu_env.sh || exit 1
STEPS="${STEPS:-40000}"
CURVE_EVERY="${CURVE_EVERY:-2500}"
TIMEOUT_S="${TIMEOUT_S:-420}"
SEEDS="${SEEDS:-0 1}"
VARIANTS="${VARIANTS:-default wide wide_k5}"
EXTRA_FLAGS="${EXTRA_FLAGS:-}"
flags_of() {
  case "$1" in
    default)  echo "--channels=32x32x32" ;;
    wide)     echo "--channels=64x64x64x64" ;;
    k5)       echo "--channels=32x32x32 --config.model.decoder.kernel_size=5" ;;
    wide_k5)  echo "--channels=64x64x64x64 --config.model.decoder.kernel_size=5" ;;
    d32)      echo "--channels=32x32x32 --config.model.slot_dim=32" ;;
    relative) echo "--channels=32x32x32 --bases=relative" ;;
    *) echo "unknown variant $1" >&2; return 1 ;;
  esac
}
for variant in $VARIANTS; do
  flags="$(flags_of "$variant")" || exit 1
  for seed in $SEEDS; do
    name="${variant}_seed${seed}"
    # data.cache=False: the processes side by side must not write one data cache together.
    timeout "$TIMEOUT_S" "$PY" -m experiments.decoder_capacity $flags --seed="$seed" \
      --steps="$STEPS" --curve_every="$CURVE_EVERY" --config.data.cache=False \
      --output="$OUT/decoder/$name.json" $EXTRA_FLAGS >"$OUT/decoder/$name.log" 2>&1 &
  done
done
wait
tar czf "$OUT/decoder.tar.gz" -C "$OUT" decoder
echo "decoder check done: $(ls "$OUT"/decoder/*.json 2>/dev/null | wc -l) runs finished"
