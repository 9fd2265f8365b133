r"""Evaluates a trained PARTS run on the eval split: FG-ARI, ARI and MSE per step, roll-outs.

  python -m experiments.evaluate --config=experiments/configs/sprites.py --workdir=DIR \
      [--step=S] [--config.eval.num_slots=K] \
      [--config.eval.burn_in=4 --config.eval.rollout_steps=15]

The run's own config, DIR/config.json, is used (the model must match the checkpoint); the
--config.x=y flags given on the command line are applied on top of it, so --config (default
experiments/configs/sprites.py) only gives the field names, and is used as the config only when
DIR has no config.json. Restores the latest checkpoint of DIR (or the one of step --step, e.g.
to draw an FG-ARI curve over the kept checkpoints) and writes DIR/eval/metrics.json
(DIR/eval/metrics_step_S.json with --step=S; or --output), whose fields are documented and
built in one place, `experiments.evaluator.Results`: fg_ari (the paper's ARI-F, last frame), ari,
mse, their *_per_step lists, diagnostics, rollout_* (with eval.burn_in > 0) and static_* (with
eval.static_steps > 0, Fig 7). With eval.average_checkpoints = N > 1 the evaluated parameters
are the mean of the last N kept checkpoints up to that step, listed as averaged_steps.

The first config.eval.num_sequences episodes of the eval split are used, in order; when the split
has fewer, all of them are used and a warning is printed (num_sequences < num_sequences_requested
in the JSON). --config.eval.split=train scores the first episodes of the training split instead
(an overfitting check; recorded under "overrides"). The batch is sharded over all devices like
in training; every batch uses the noise key fold_in(PRNGKey(eval.seed), batch_index). Datasets without ground-truth masks (e.g. Robotics
Arm) get null FG-ARI/ARI fields and an "fg_ari_note" saying why.
"""
import math
import os
import time
from typing import Any, Dict, Optional

from absl import app, flags
import jax
import ml_collections
import numpy as np
from ml_collections import config_flags

from datasets import base, registry
from experiments import checkpointing, evaluator, setup_lib
from parts_jax import metrics

FLAGS = flags.FLAGS
DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs",
                              "sprites.py")


def _check_ids(batch, num_true: int, origin: str) -> None:
  segs = batch.get("segmentations")
  if segs is not None and segs.size and int(segs.max()) >= num_true:
    raise base.DataError(f"{origin}: segmentation id {int(segs.max())} >= config.eval.max_ids="
                         f"{num_true}; pass --config.eval.max_ids={int(segs.max()) + 1} or more")


def default_output(workdir: str, step: Optional[int] = None) -> str:
  """WORKDIR/eval/metrics.json for the latest checkpoint, WORKDIR/eval/metrics_step_S.json for
  the checkpoint of a given step S."""
  name = "metrics.json" if step is None else f"metrics_step_{int(step)}.json"
  return os.path.join(workdir, "eval", name)


def evaluate(config: ml_collections.ConfigDict, workdir: str, output: Optional[str] = None,
             verbose: bool = True, step: Optional[int] = None,
             overrides: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
  """Evaluates the checkpoint of `workdir` at `step` (default: the latest; see the module
  docstring); returns the dict written to `output` (default `default_output(workdir, step)`),
  `evaluator.Results.to_json()`. `overrides` ({"model.x": y, ...}: what `config` changed of the
  run's config.json) are recorded in it."""
  setup_lib.check_config(config)
  ec = config.eval
  say = print if verbose and jax.process_index() == 0 else (lambda *a, **k: None)
  _, replicated, data_sharding = setup_lib.mesh_shardings()
  split = ec.get("split", "eval")
  it = registry.get_iterator(config.data, split, ec.batch_size, seed=ec.seed, shuffle=False,
                             process_index=jax.process_index(),
                             process_count=jax.process_count())
  try:
    available = len(it.source)
    num = min(ec.num_sequences, available)
    if num < ec.num_sequences:
      say(f"WARNING: config.eval.num_sequences={ec.num_sequences} but the {split} split of "
          f"{config.data.name!r} ({it.source.origin}) has {available} episodes; evaluating "
          f"all {available}", flush=True)
    setup_lib.check_actions(config, it.source.action_dim, it.source.origin)
    batch = next(it)
    output = output or default_output(workdir, step)
    model, params, step = setup_lib.restore_model(config, workdir, batch, ec.num_slots,
                                                  sharding=replicated, step=step)
    average = ec.get("average_checkpoints", 1)
    averaged = checkpointing.averaged_steps(workdir, step, average) if average > 1 else None
    burn_in, rollout_steps = int(ec.burn_in), int(ec.rollout_steps)
    eval_step = evaluator.make_eval_step(model, ec.max_ids, burn_in, rollout_steps,
                                         in_shardings=(replicated, replicated, data_sharding))
    static_steps = int(ec.get("static_steps", 0))
    static_step = evaluator.static_metrics_step(model, ec.max_ids) if static_steps else None
    num_batches = math.ceil(num / ec.batch_size)
    say(f"Evaluating {workdir} (step {step}"
        + (f", parameters averaged over the checkpoints of steps {averaged}" if averaged else "")
        + f", K={model.config.num_slots}) on {num} sequences of {config.data.name!r}"
        + ("" if split == "eval" else f" (the {split} split)") + " in "
        f"{num_batches} batches of {ec.batch_size}", flush=True)
    key = jax.random.PRNGKey(ec.seed)
    parts, start = [], time.time()
    for i in range(num_batches):
      if i:
        batch = next(it)
      _check_ids(batch, ec.max_ids, it.source.origin)
      gbatch = setup_lib.global_batch(batch, data_sharding)
      out = eval_step(params, jax.random.fold_in(key, i), gbatch)
      if static_steps:
        static = evaluator.static_unroll(model, params,
                                         jax.random.fold_in(jax.random.fold_in(key, i), 2),
                                         gbatch, static_steps, static_step)
        out.update({f"static_{name}": v for name, v in static.items()})
      out = setup_lib.host(out)
      keep = min(ec.batch_size, num - i * ec.batch_size)   # The last batch may overrun.
      parts.append({name: value[:keep] for name, value in out.items()})
      line = (f"eval batch {i + 1}/{num_batches} | mse(last) "
              f"{np.mean(np.concatenate([p['mse'][:, -1] for p in parts])):.5f}")
      if "fg_ari" in out:
        fg_ari = metrics.summarize_fg_ari(np.concatenate([p["fg_ari"] for p in parts]),
                                          np.concatenate([p["has_fg"] for p in parts]))["fg_ari"]
        line += " | fg_ari(last) " + ("n/a" if fg_ari is None else f"{fg_ari:.4f}")
      say(line + f" | {time.time() - start:.1f}s", flush=True)
  finally:
    it.close()
  outs = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
  result = evaluator.summarize(
      outs, burn_in, rollout_steps, static_steps, step=step, averaged_steps=averaged,
      overrides=dict(overrides) if overrides else None, workdir=os.path.abspath(workdir),
      preset=config.get("preset"), seed=config.get("seed"), data=config.data.name,
      dataset_label=config.data.get("dataset_label"), num_slots=model.config.num_slots,
      num_slots_trained=config.model.num_slots, num_sequences_requested=ec.num_sequences)
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    result.save(output)
    sem = ("" if result.fg_ari_sem is None else
           f" (standard error {result.fg_ari_sem:.4f} over {result.num_sequences_scored} "
           "sequences)")
    say(f"FG-ARI (last frame) {result.fg_ari}{sem} | ARI {result.ari} | MSE {result.mse:.5f}",
        flush=True)
    if result.diagnostics is not None:
      d = result.diagnostics
      say("Diagnostics (last frame; not the paper's number): " + " | ".join(
          f"{header} " + ("n/a" if d.get(key) is None else f"{d[key]:.4f}")
          for key, header in zip(evaluator.DIAGNOSTIC_COLUMNS, evaluator.DIAGNOSTIC_HEADERS)),
          flush=True)
    say(f"Wrote {output}", flush=True)
  return result.to_json()


def define_flags() -> None:
  config_flags.DEFINE_config_file(
      "config", DEFAULT_CONFIG, "Experiment config file: only the schema of the --config.x=y "
      "overrides when WORKDIR/config.json exists, else the config.")
  flags.DEFINE_string("workdir", None, "Training workdir to evaluate.")
  flags.DEFINE_string("output", None, "Output JSON (default: WORKDIR/eval/metrics.json, or "
                      "WORKDIR/eval/metrics_step_S.json with --step=S).")
  flags.DEFINE_integer("step", None, "Checkpoint step to evaluate (default: the latest); "
                       "one of the steps kept in WORKDIR/checkpoints.")
  flags.mark_flags_as_required(["workdir"])


def main(argv):
  del argv
  overrides = config_flags.get_override_values(FLAGS["config"])
  config = setup_lib.config_for_workdir(FLAGS.workdir, FLAGS.config, overrides)
  evaluate(config, FLAGS.workdir, FLAGS.output, step=FLAGS.step, overrides=overrides)


if __name__ == "__main__":
  define_flags()
  app.run(main)
