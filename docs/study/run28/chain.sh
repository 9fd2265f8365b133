#!/bin/bash
# Run 28: gradients through all 8 frames (model.tbptt=0; the shipped recipe and the paper stop the
# state's gradients every 4 frames) on the plateau: docs/study/continue.sh (500 steps from the
# shipped 71,000 with run 25's K = 5 control flags, whose readings are the control) per NAME.
# usage: REPO=/path/to/parts-jax OUT=DIR ARM_FLAGS="--config.model.tbptt=0" \
#          bash docs/study/run28/chain.sh tbptt0_s2 tbptt0_s3
set -u
for n in "$@"; do
  bash "$(dirname "$0")/../continue.sh" "$n" || exit 1
done
date; echo all done
