#!/usr/bin/env bash
# Run HERE (a machine with PyPI access), before a GPU session: downloads the wheels that the GPU
# image lacks into .whl/ (git-ignored), pinned to the versions in requirements.txt, for the
# GPU machine's Python (3.12, manylinux x86_64). scripts/gpu_kit.sh installs them there.
#
#   bash scripts/fetch_wheels.sh            # then carry .whl with the device command
#
# The GPU image already has jax (CUDA), optax, chex, orbax-checkpoint, absl-py, numpy, pillow,
# matplotlib, imageio, tqdm, pytest and scikit-learn; it lacks dm-haiku (and its jmp),
# ml-collections and tensorboardX. orbax-checkpoint comes along at our pin so that checkpoints
# written there restore here with the same version (its dependencies are on the image). The kit
# generates sprites in memory (data.cache=False), so
# neither tensorflow-datasets nor array_record is needed there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY_VERSION="${PY_VERSION:-3.12}"
pin() { grep -i "^$1==" requirements.txt | head -1; }
WANTED=("$(pin dm-haiku)" "$(pin ml-collections)" "$(pin tensorboardX)" "jmp==0.0.4"
        "$(pin orbax-checkpoint)")
for w in "${WANTED[@]}"; do
  [[ -n "$w" ]] || { echo "error: a pin is missing from requirements.txt" >&2; exit 1; }
done
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl "${WANTED[@]}"
ls -la .whl
