#!/usr/bin/env bash
# Continuations of a trained sprites run on a GPU: every recipe ARM x data SEED in its own
# process, side by side, all from the same checkpoint, each stopped (SIGTERM: a checkpoint is
# saved) after TRAIN_S seconds. Then every run is cut back to the last checkpoint step that all
# of them reached (so the rows compare equal steps), evaluated there (experiments.evaluate, 256
# eval sequences) and packed into OUT/continuation.tar.gz (each run's checkpoint at that step,
# config, metrics.jsonl with its held-out curve, eval/metrics.json and logs; not tb/) with a summary in
# OUT/continuation.json and the machine in OUT/device.txt. Run from anywhere, with the wheels of scripts/fetch_wheels.sh in .whl/:
#
#   [INIT=checkpoints/sprites] [ARMS="control sigma_x_0.2"] [SEEDS="1 2"] [TRAIN_S=430] \
#     [EVAL_S=90] [CKPT_EVERY=500] [EXTRA_FLAGS=...] [EVAL_FLAGS=...] bash scripts/gpu_continuation.sh
#
# The data seed (config.seed) orders the training batches; the sampling noise continues from
# the checkpoint's rng, the same in every run. Arms (the flags they add to experiments.train on
# experiments/configs/sprites.py):
#   control      the sprites default (N = 2, sigma_x 0.1, beta 0.5)
#   sigma_x_0.2  sigma_x 0.2, beta 0.125: colour term / 4, KL price against it kept, so the
#                masks' log m_k counts 4x (preset sigma_x_0.2_refine_2; docs/study.md run 9)
#   sigma_x_0.3  sigma_x 0.3, beta 0.0556 (= 0.5 x (0.1 / 0.3)^2): the masks count 9x
#   sigma_x_1.0  sigma_x 1.0, beta 0.005: the masks count 100x (docs/study.md run 19)
#   sigma_x_2.0  sigma_x 2.0, beta 0.00125: the masks count 400x (docs/study.md runs 20, 22)
#   attention_bias  sigma_x_0.3 with the log responsibilities added to the attention logits
#                (presets sigma_x_0.3_refine_2 + attention_bias_refine_2; docs/study.md run 11)
# checkpoints/sprites is data seed 2 of the sigma_x_0.3 arm (run 10) since step 58,000 and of the
# sigma_x_1.0 arm (run 19) since step 61,006 and of the sigma_x_2.0 arm (run 22) since 63,506
# (README Results): its own recipe goes on with ARMS=sigma_x_2.0 SEEDS=2 (`control` then
# switches it back to the default). The arms evaluate their latest checkpoint alone
# (eval.average_checkpoints is the sprites default, 1, unless EXTRA_FLAGS pass it).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/kit_out}"
ROOT="${ROOT:-/tmp/parts_continuation}"
INIT="${INIT:-checkpoints/sprites}"
ARMS="${ARMS:-control sigma_x_0.2}"
SEEDS="${SEEDS:-1 2}"
TRAIN_S="${TRAIN_S:-430}"
EVAL_S="${EVAL_S:-90}"
CKPT_EVERY="${CKPT_EVERY:-500}"
EXTRA_FLAGS="${EXTRA_FLAGS:-}"
EVAL_FLAGS="${EVAL_FLAGS:-}"
mkdir -p "$OUT"
source scripts/gpu_env.sh || exit 1
{ date -u; "$PY" -c "import jax; print('jax', jax.__version__, jax.devices())";
  nvidia-smi -L 2>/dev/null; lscpu | grep -E '^Model name|^CPU\(s\)'; } >"$OUT/device.txt" 2>&1
# An arm's flags are its preset's fields in experiments/configs/study.py (their one home).
flags_of() {
  local presets
  case "$1" in
    control)     presets=refine_2 ;;
    sigma_x_0.2) presets=sigma_x_0.2_refine_2 ;;
    sigma_x_0.3) presets=sigma_x_0.3_refine_2 ;;
    sigma_x_1.0) presets=sigma_x_1.0_refine_2 ;;
    sigma_x_2.0) presets=sigma_x_2.0_refine_2 ;;
    attention_bias) presets=sigma_x_0.3_refine_2,attention_bias_refine_2 ;;
    *) echo "unknown arm $1" >&2; return 1 ;;
  esac
  "$PY" -c "from experiments import sweep; from experiments.configs import study
fields = {k: v for p in '$presets'.split(',') for k, v in study.PRESETS[p].items()}
print(' '.join(f'--config.{k}={sweep.format_value(v)}' for k, v in fields.items()))"
}
[ -d "$INIT/checkpoints" ] || { echo "error: $INIT has no checkpoints/" >&2; exit 1; }
rm -rf "$ROOT" && mkdir -p "$ROOT"
start="$(ls "$INIT/checkpoints" | grep -E '^[0-9]+$' | sort -n | tail -1)"
names=()
for arm in $ARMS; do
  flags="$(flags_of "$arm")" || exit 1
  for seed in $SEEDS; do
    name="${arm}_seed${seed}"
    names+=("$name")
    w="$ROOT/$name"
    mkdir -p "$w"
    cp -r "$INIT/checkpoints" "$w/"
    for f in config.json config_history.jsonl metrics.jsonl; do
      [ -e "$INIT/$f" ] && cp "$INIT/$f" "$w/"
    done
    # data.cache=False: the processes side by side must not write one data cache together;
    # max_checkpoints keeps every checkpoint until the common step is known.
    timeout -k 60 -s TERM "$TRAIN_S" "$PY" -m experiments.train \
      --config=experiments/configs/sprites.py --workdir="$w" --config.seed="$seed" \
      --config.data.cache=False --config.train.num_steps=10000000 \
      --config.train.checkpoint_every="$CKPT_EVERY" --config.train.max_checkpoints=1000 \
      $flags $EXTRA_FLAGS >"$w/train.log" 2>&1 &
  done
done
wait
echo "training stopped after ${TRAIN_S} s"
# The common step: the largest checkpoint step that every run holds.
common=""
for name in "${names[@]}"; do
  steps="$(ls "$ROOT/$name/checkpoints" 2>/dev/null | grep -E '^[0-9]+$' | sort -n)"
  echo "$name: checkpoints $(echo $steps | tr ' ' ',') ; $(grep -c 'steps/s' "$ROOT/$name/train.log") progress lines"
  if [ -z "$common" ]; then common="$steps"; else
    common="$(comm -12 <(echo "$common" | sort) <(echo "$steps" | sort))"; fi
done
common="$(echo "$common" | sort -n | tail -1)"
[ -n "$common" ] || { echo "error: no checkpoint step common to all runs" >&2; exit 1; }
echo "common step: $common"
for name in "${names[@]}"; do
  for s in $(ls "$ROOT/$name/checkpoints" | grep -E '^[0-9]+$'); do
    [ "$s" = "$common" ] || rm -rf "$ROOT/$name/checkpoints/$s"
  done
  # The run's config.json holds the arm's recipe.
  timeout -k 30 "$EVAL_S" "$PY" -m experiments.evaluate --config=experiments/configs/sprites.py \
    --workdir="$ROOT/$name" --config.data.cache=False $EVAL_FLAGS \
    >"$ROOT/$name/eval.log" 2>&1 &
done
wait
"$PY" - "$ROOT" "$start" "$common" "$OUT/continuation.json" "${names[@]}" <<'EOF'
import json, os, sys
from experiments import metrics_log
root, start, common, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
names = sys.argv[5:]
summary = dict(start_step=start, common_step=common, runs={})
for name in names:
  w = os.path.join(root, name)
  run = {}
  path = os.path.join(w, "eval", "metrics.json")
  if os.path.exists(path):
    m = json.load(open(path))
    run = {k: v for k, v in m.items() if not isinstance(v, (list, dict))}
    run["diagnostics"] = m.get("diagnostics")
  run["steps_per_s_median"] = metrics_log.median_steps_per_s(w, after_step=start)
  steps, values = metrics_log.curves(w, ["eval/fg_ari"]).get("eval/fg_ari", ([], []))
  run["held_out_fg_ari"] = [(s, round(v, 4)) for s, v in zip(steps, values) if s > start]
  summary["runs"][name] = run
json.dump(summary, open(out, "w"), indent=1)
print(json.dumps({n: (r.get("fg_ari"), r.get("steps_per_s_median"))
                  for n, r in summary["runs"].items()}))
EOF
tar czf "$OUT/continuation.tar.gz" --exclude=tb -C "$ROOT" "${names[@]}"
ls -la "$OUT"
