r"""One fresh-process measurement of the train step (or, with --program=eval, of the evaluation
step), printed as JSON (used by the other benchmarks, which run it in subprocesses so that
compile caches and peak RSS start clean).

  python -m benchmarks.measure_once --config=experiments/configs/sprites.py --num_frames=16 \
      --batch_size=8 --steps=3 [--program=eval]

compile_s: tracing + XLA compilation time (ahead-of-time `lower().compile()`) of every jitted
program one train step runs (`TrainStep.programs`), measured first in a fresh process.
xla_bytes: the largest argument + output + temporary bytes XLA's memory analysis reports over
those programs. peak_rss: the process's peak RSS. --program=eval: step_s and compile_s (its
first call less a later one) of `experiments.evaluator.make_eval_step` (the model's forward and
every FG-ARI) on the batch with random ground-truth segmentations, and peak_rss.
"""
import json
import time

from absl import app, flags
import jax
import numpy as np
from ml_collections import config_flags

from benchmarks import common
from experiments import evaluator

_CONFIG = config_flags.DEFINE_config_file("config", "experiments/configs/sprites.py", "Config.")
_T = flags.DEFINE_integer("num_frames", 8, "Sequence length T.")
_B = flags.DEFINE_integer("batch_size", 8, "Global batch size.")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed steady-state steps.")
_PROGRAM = flags.DEFINE_enum("program", "train", ["train", "eval"],
                             "Which step: training's, or the evaluator's.")


def _xla_bytes(step, state, batch) -> int:
  """Peak bytes (arguments + outputs + temporaries) over the step's compiled programs."""
  sizes = []
  for p in step.programs(state, batch):
    m = p.fn.lower(*p.args).compile().memory_analysis()
    sizes.append(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes)
  return max(sizes)


def _compile_seconds(step, state, batch) -> float:
  """Trace + compile time of the programs of one train step (distinct shapes only)."""
  t0 = time.perf_counter()
  for p in step.programs(state, batch):
    p.fn.lower(*p.args).compile()
  return time.perf_counter() - t0


def _eval_json(config, batch, run) -> dict:
  """compile_s and step_s of the evaluator's step on `batch` (its programs are compiled on the
  first call: compile_s = first call - median later call)."""
  num_true = config.model.num_slots
  segs = np.random.default_rng(1).integers(0, num_true, batch["video"].shape[:4])
  batch = dict(run.batch, segmentations=segs.astype(np.int32))
  eval_step = evaluator.make_eval_step(run.model, num_true)
  params, rng = run.state["params"], jax.random.PRNGKey(2)
  t0 = time.perf_counter()
  jax.block_until_ready(eval_step(params, rng, batch))
  first_s = time.perf_counter() - t0
  step_s = common.median_time(lambda: eval_step(params, rng, batch), _STEPS.value)
  return dict(program="eval", step_s=step_s, steps_per_s=1.0 / step_s,
              compile_s=first_s - step_s)


def main(argv):
  del argv
  config = _CONFIG.value
  batch = common.synthetic_batch(config, _B.value, _T.value)
  run = common.StepRunner(config, batch)
  if _PROGRAM.value == "eval":
    print(json.dumps(dict(
        num_frames=_T.value, batch_size=_B.value, devices=jax.device_count(),
        time_loop=run.model.time_loop, conv_impl=run.model.conv_impl,
        **_eval_json(config, batch, run), peak_rss=common.peak_rss_bytes())))
    return
  model, step = run.model, run.step
  compile_s = _compile_seconds(step, run.state, batch)
  jax.block_until_ready(run())
  step_s = common.median_time(run, _STEPS.value)
  print(json.dumps(dict(
      num_frames=_T.value, batch_size=_B.value, devices=jax.device_count(), program="train",
      time_loop=model.time_loop, conv_impl=model.conv_impl, step_s=step_s,
      steps_per_s=1.0 / step_s, compile_s=compile_s,
      xla_bytes=_xla_bytes(step, run.state, batch), peak_rss=common.peak_rss_bytes())))


if __name__ == "__main__":
  app.run(main)
