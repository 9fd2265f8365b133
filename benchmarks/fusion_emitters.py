r"""XLA:CPU's fusion emitters on and off: compile time and step time of the train step, each in a
fresh process (benchmarks.measure_once). One JSON object.

  python -m benchmarks.fusion_emitters                  # the default sprites step and a tiny one

Rows: "sprites" (the training command's default config and step, one XLA:CPU device) and
"tiny" (a model of the test suite's size: 8 x 8 frames, K = 3, D = 4, 8-channel CNNs; under the
CPU's "windows" lowering and under "scan", as most of tests/test_model.py runs it), with XLA's
backend optimisations at level 0 as the test suite compiles them ("_opt0", tests/conftest.py)
and, for "sprites", also at the default level, as training compiles it.
`--xla_cpu_use_fusion_emitters=false` selects XLA:CPU's older elemental IR emitters for the loop
fusions instead of the MLIR ones.
"""
import json
import os

from benchmarks import common
from benchmarks.subprocess_runner import measure

FLAG = "--xla_cpu_use_fusion_emitters"
TINY = ["--config.data.image_size=8", "--config.model.num_slots=3", "--config.model.slot_dim=4",
        "--config.model.decoder.channels=(8,)", "--config.model.encoder.channels=(8,)",
        "--config.model.attention.qk_dim=8", "--config.model.attention.value_dim=8",
        "--config.model.refine.mlp_hidden=(16,)", "--config.model.predictor.model_size=16",
        "--config.model.predictor.mlp_size=16", "--config.model.predictor.lstm_size=16"]
ROWS = {  # name: (measure_once flags, JAX_DISABLE_MOST_OPTIMIZATIONS)
    "sprites": ([], "0"),
    "sprites_opt0": ([], "1"),
    "tiny_opt0": (TINY + ["--batch_size=2", "--num_frames=3"], "1"),
    "tiny_scan_opt0": (TINY + ["--batch_size=2", "--num_frames=3",
                               "--config.model.time_loop=scan"], "1"),
}


def main():
  base = os.environ.get("XLA_FLAGS", "")
  if FLAG in base:
    raise SystemExit(f"XLA_FLAGS already sets {FLAG}: unset it to compare both settings")
  rows = {}
  for name, (flags_, opt0) in ROWS.items():
    for emitters in ("true", "false"):
      env = {"XLA_FLAGS": f"{base} {FLAG}={emitters}".strip(),
             "JAX_DISABLE_MOST_OPTIMIZATIONS": opt0}
      r = measure(["--steps=5", *flags_], env=env)
      rows[f"{name}/fusion_emitters={emitters}"] = {
          k: r[k] for k in ("compile_s", "step_s", "steps_per_s", "time_loop", "devices")}
  print(json.dumps(dict(processor=common.processor_name(), rows=rows)))


if __name__ == "__main__":
  main()
