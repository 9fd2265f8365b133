#!/bin/bash
# Run 29: four refinement steps at frame 0 during training (model.first_frame_refine_steps=4; the
# shipped recipe and the paper refine every frame N = 2 times) on the plateau:
# docs/study/continue.sh (500 steps from the shipped 71,000 with run 25's K = 5 control flags, whose
# readings are the control) per NAME.
# usage: REPO=/path/to/parts-jax OUT=DIR ARM_FLAGS="--config.model.first_frame_refine_steps=4" \
#          bash docs/study/run29/chain.sh ff4_s2 ff4_s3
set -u
for n in "$@"; do
  bash "$(dirname "$0")/../continue.sh" "$n" || exit 1
done
date; echo all done
