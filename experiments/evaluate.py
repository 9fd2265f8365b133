r"""Evaluates a trained PARTS run on the eval split: FG-ARI, ARI and MSE per step, roll-outs.

  python -m experiments.evaluate --config=experiments/configs/sprites.py --workdir=DIR \
      [--config.eval.num_slots=K] [--config.eval.burn_in=4 --config.eval.rollout_steps=15]

The run's own config, DIR/config.json, is used (the model must match the checkpoint); the
--config.x=y flags given on the command line are applied on top of it, so --config (default
experiments/configs/sprites.py) only gives the field names, and is used as the config only when
DIR has no config.json. Restores the latest checkpoint of DIR and writes DIR/eval/metrics.json
(or --output):

  step                        checkpoint step
  fg_ari                      mean over sequences of the last frame's FG-ARI (the paper's ARI-F);
                              frames without foreground pixels are left out
  ari                         ARI of all pixels (background included), last frame
  mse                         reconstruction MSE, last frame
  fg_ari_per_step, ari_per_step, mse_per_step    the same for every step t = 0..T-1
  diagnostics                 FG-ARI (last frame, and per step) of other per-pixel argmaxes, to
                              tell where a segmentation is lost (not the paper's number):
                              masks_refined (decoder masks of the refined posterior lambda_t^N),
                              responsibilities (p(k | x_i)), attention (slot attention)
  num_sequences, num_sequences_requested, num_sequences_scored, num_frames_without_foreground
  num_slots, num_slots_trained, preset, seed, data, dataset_label, workdir
  rollout_*                   with eval.burn_in > 0: observe burn_in frames, then predict
                              rollout_steps frames from actions alone (section 4.2);
                              rollout_{mse,fg_ari}_per_step cover the predicted steps that have
                              ground truth (t = burn_in .. T-1); later steps have none.
  static_*                    with eval.static_steps = S > 0 (Fig 7): the first frame of each
                              sequence repeated S times with zero actions, refined at every step;
                              static_{fg_ari,ari,mse,kl}_per_step (S values) and their last
                              values static_fg_ari, static_ari, static_mse, static_kl (KL: against
                              the prior the model uses, fixed or predictive, nats per frame).

The first config.eval.num_sequences episodes of the eval split are used, in order; when the split
has fewer, all of them are used and a warning is printed (num_sequences < num_sequences_requested
in the JSON). The batch is sharded over all devices like in training; every batch uses the noise
key fold_in(PRNGKey(eval.seed), batch_index). Datasets without ground-truth masks (e.g. Robotics
Arm) get null FG-ARI/ARI fields and an "fg_ari_note" saying why.
"""
import json
import math
import os
import time
from typing import Any, Dict, Optional

from absl import app, flags
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from ml_collections import config_flags

from datasets import base, registry
from experiments import setup_lib
from parts_jax import metrics
from parts_jax.config import ConfigError

FLAGS = flags.FLAGS
DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs",
                              "sprites.py")


def make_eval_step(model, num_true: int, burn_in: int, rollout_steps: int):
  """(params, rng, batch) -> per-sequence metrics; all arrays [B, ...].

  mse [B, T]; with segmentations: fg_ari, has_fg, ari [B, T]; with burn_in > 0: rollout_mse and
  (with segmentations) rollout_fg_ari, rollout_has_fg [B, G], G = steps burn_in..T-1 that were
  predicted (no refinement) and have ground truth.
  """

  def eval_step(params, rng, batch):
    out = model.apply(params, rng, batch)
    result = dict(mse=out["mse"])
    segs = batch.get("segmentations")
    if segs is not None:
      result.update(_segmentation_metrics(segs, out["masks"], num_true))
      result.update(diagnostic_fg_ari(model, params, batch, out, num_true))
    if burn_in > 0:
      t = batch["video"].shape[1]
      ro = model.rollout(params, jax.random.fold_in(rng, 1), batch, burn_in, rollout_steps)
      end = max(min(burn_in + rollout_steps, t), burn_in)
      result["rollout_mse"] = metrics.mse(batch["video"][:, burn_in:end],
                                          ro["recon"][:, burn_in:end])
      if segs is not None and end > burn_in:
        seg = _segmentation_metrics(segs[:, burn_in:end], ro["masks"][:, burn_in:end], num_true)
        result["rollout_fg_ari"], result["rollout_has_fg"] = seg["fg_ari"], seg["has_fg"]
    return result

  return eval_step


DIAGNOSTICS = ("masks_refined", "responsibilities", "attention")


def diagnostic_fg_ari(model, params, batch, out, num_true: int) -> Dict[str, jnp.ndarray]:
  """Per-frame FG-ARI [B, T] of the diagnostic segmentations (`PARTS.segmentation_maps`):
  fg_ari_<name> for name in DIAGNOSTICS. The frames without foreground are those of `has_fg`."""
  maps = model.segmentation_maps(params, batch["video"], out)
  return {f"fg_ari_{name}": metrics.fg_ari_per_frame(batch["segmentations"], maps[name],
                                                     num_true=num_true)[0]
          for name in DIAGNOSTICS}


def diagnostic_summary(outs: Dict[str, np.ndarray]) -> Dict[str, Any]:
  """{"diagnostics": {...}}: last-frame and per-step means of the diagnostic FG-ARIs (the frames
  left out of the headline are left out here too)."""
  diag = dict(note="diagnostics, not the paper's number: FG-ARI of other per-pixel argmaxes "
                   "(masks_refined: decoder masks of the refined posterior lambda_t^N at its "
                   "mean; responsibilities: p(k | x_i); attention: slot-attention weights)")
  for name in DIAGNOSTICS:
    summary = metrics.summarize_fg_ari(outs[f"fg_ari_{name}"], outs["has_fg"])
    diag[f"fg_ari_{name}"] = summary["fg_ari"]
    diag[f"fg_ari_{name}_per_step"] = summary["fg_ari_per_step"]
  return dict(diagnostics=diag)


def make_static_step(model, num_true: int):
  """(params, carry, xs [1, ...], segs [B, H, W]) -> (carry, metrics [B]): one step of the static
  unroll. Run from the host one step at a time, so compile time does not grow with S."""

  def static_step(params, carry, xs, segs):
    carry, out = model.run(params, carry, xs, scan=False)
    out = jax.tree.map(lambda a: a[0], out)                   # [1, B, ...] -> [B, ...]
    result = dict(mse=out["mse"], kl=out["kl"])
    if segs is not None:
      seg = _segmentation_metrics(segs[:, None], out["masks"][:, None], num_true)
      result.update({k: v[:, 0] for k, v in seg.items()})
    return carry, result

  return static_step


def static_batch(batch, steps: int) -> Dict[str, jnp.ndarray]:
  """Fig 7's input: frame 0 of every sequence of `batch` repeated `steps` times, with zero actions
  (when the batch has actions). {"video": [B, steps, H, W, 3], "actions": [B, steps, A]}."""
  static = dict(video=jnp.repeat(batch["video"][:, :1], steps, axis=1))
  if batch.get("actions") is not None:
    a = batch["actions"]
    static["actions"] = jnp.zeros((a.shape[0], steps, a.shape[-1]), a.dtype)
  return static


def static_unroll(model, static_step, params, rng, batch, steps: int) -> Dict[str, jnp.ndarray]:
  """Fig 7: `static_batch(batch, steps)` refined at every step. Returns metrics [B, steps] (mse,
  kl; fg_ari, has_fg, ari with segmentations). The same as `model.apply(params, rng, static
  batch, refine_all=True)` step for step (tests/test_evaluate.py)."""
  static = static_batch(batch, steps)
  segs = batch.get("segmentations")
  segs = None if segs is None else segs[:, 0]
  carry, xs = model.step_inputs(rng, static, refine_all=True)
  per_step = []
  for s in range(steps):
    carry, m = static_step(params, carry, jax.tree.map(lambda a: a[s:s + 1], xs), segs)
    per_step.append(m)
  return jax.tree.map(lambda *a: jnp.stack(a, axis=1), *per_step)


def _segmentation_metrics(segs, masks, num_true: int) -> Dict[str, jnp.ndarray]:
  """segs [B, T, H, W], masks [B, T, K, H, W] -> fg_ari, has_fg, ari: [B, T]."""
  b, t, k = masks.shape[:3]
  fg_ari, has_fg = metrics.fg_ari_per_frame(segs, masks, num_true=num_true)
  ari = metrics.adjusted_rand_index(segs.reshape(b * t, -1),
                                    jnp.argmax(masks, axis=2).reshape(b * t, -1),
                                    num_true=num_true, num_pred=k)
  return dict(fg_ari=fg_ari, has_fg=has_fg, ari=ari.reshape(b, t))


def _to_host(tree) -> Dict[str, np.ndarray]:
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    return multihost_utils.process_allgather(tree, tiled=True)
  return jax.tree.map(lambda x: np.asarray(jax.device_get(x)), tree)


def _mean_per_step(values: np.ndarray):
  return [float(v) for v in np.mean(np.asarray(values, np.float64), axis=0)]


def _check_ids(batch, num_true: int, origin: str) -> None:
  segs = batch.get("segmentations")
  if segs is not None and segs.size and int(segs.max()) >= num_true:
    raise base.DataError(f"{origin}: segmentation id {int(segs.max())} >= config.eval.max_ids="
                         f"{num_true}; pass --config.eval.max_ids={int(segs.max()) + 1} or more")


def evaluate(config: ml_collections.ConfigDict, workdir: str, output: Optional[str] = None,
             verbose: bool = True) -> Dict[str, Any]:
  """Evaluates the latest checkpoint of `workdir` (see the module docstring); returns the dict
  written to `output` (default WORKDIR/eval/metrics.json)."""
  setup_lib.check_config(config)
  ec = config.eval
  say = print if verbose and jax.process_index() == 0 else (lambda *a, **k: None)
  _, replicated, data_sharding = setup_lib.mesh_shardings()
  it = registry.get_iterator(config.data, "eval", ec.batch_size, seed=ec.seed, shuffle=False,
                             process_index=jax.process_index(),
                             process_count=jax.process_count())
  try:
    available = len(it.source)
    num = min(ec.num_sequences, available)
    if num < ec.num_sequences:
      say(f"WARNING: config.eval.num_sequences={ec.num_sequences} but the eval split of "
          f"{config.data.name!r} ({it.source.origin}) has {available} episodes; evaluating "
          f"all {available}", flush=True)
    setup_lib.check_actions(config, it.source.action_dim, it.source.origin)
    batch = next(it)
    model, params, step = setup_lib.restore_model(config, workdir, batch, ec.num_slots,
                                                  sharding=replicated)
    k = model.config.num_slots
    burn_in, rollout_steps = int(ec.burn_in), int(ec.rollout_steps)
    eval_step = jax.jit(make_eval_step(model, ec.max_ids, burn_in, rollout_steps),
                        in_shardings=(replicated, replicated, data_sharding))
    static_steps = int(ec.get("static_steps", 0))
    if static_steps < 0:
      raise ConfigError(f"config.eval.static_steps must be >= 0, got {static_steps}")
    static_step = jax.jit(make_static_step(model, ec.max_ids)) if static_steps else None
    num_batches = math.ceil(num / ec.batch_size)
    say(f"Evaluating {workdir} (step {step}, K={k}) on {num} sequences of "
        f"{config.data.name!r} in {num_batches} batches of {ec.batch_size}", flush=True)
    key = jax.random.PRNGKey(ec.seed)
    parts, start = [], time.time()
    for i in range(num_batches):
      if i:
        batch = next(it)
      _check_ids(batch, ec.max_ids, it.source.origin)
      gbatch = setup_lib.global_batch(batch, data_sharding)
      out = eval_step(params, jax.random.fold_in(key, i), gbatch)
      if static_steps:
        static = static_unroll(model, static_step, params,
                               jax.random.fold_in(jax.random.fold_in(key, i), 2),
                               gbatch, static_steps)
        out.update({f"static_{k}": v for k, v in static.items()})
      out = _to_host(out)
      keep = min(ec.batch_size, num - i * ec.batch_size)   # The last batch may overrun.
      parts.append({name: value[:keep] for name, value in out.items()})
      line = (f"eval batch {i + 1}/{num_batches} | mse(last) "
              f"{np.mean(np.concatenate([p['mse'][:, -1] for p in parts])):.5f}")
      if "fg_ari" in out:
        fg_ari = _summary(parts)["fg_ari"]
        line += " | fg_ari(last) " + ("n/a" if fg_ari is None else f"{fg_ari:.4f}")
      say(line + f" | {time.time() - start:.1f}s", flush=True)
  finally:
    it.close()
  outs = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
  result = dict(
      step=step, workdir=os.path.abspath(workdir), preset=config.get("preset"),
      seed=config.get("seed"), data=config.data.name,
      dataset_label=config.data.get("dataset_label"), num_slots=k,
      num_slots_trained=config.model.num_slots, num_frames=int(outs["mse"].shape[1]),
      num_sequences=num, num_sequences_requested=ec.num_sequences,
      mse_per_step=_mean_per_step(outs["mse"]))
  result["mse"] = result["mse_per_step"][-1]
  if "fg_ari" in outs:
    result.update(_summary([outs]))
    result["ari_per_step"] = _mean_per_step(outs["ari"])
    result["ari"] = result["ari_per_step"][-1]
    result.update(diagnostic_summary(outs))
  else:
    result.update(fg_ari=None, fg_ari_per_step=None, ari=None, ari_per_step=None,
                  num_sequences_scored=0, num_frames_without_foreground=None,
                  fg_ari_note=f"dataset {config.data.name!r} has no ground-truth segmentations")
  if burn_in > 0:
    result.update(_rollout_summary(outs, burn_in, rollout_steps))
  if static_steps:
    result.update(_static_summary(outs, static_steps))
  output = output or os.path.join(workdir, "eval", "metrics.json")
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as f:
      json.dump(result, f, indent=2)
    say(f"FG-ARI (last frame) {result['fg_ari']} | ARI {result['ari']} | MSE {result['mse']:.5f}",
        flush=True)
    if "diagnostics" in result:
      d = result["diagnostics"]
      say("Diagnostics (FG-ARI, last frame; not the paper's number): " + " | ".join(
          f"{name} {d[f'fg_ari_{name}']:.4f}" if d[f"fg_ari_{name}"] is not None else
          f"{name} n/a" for name in DIAGNOSTICS), flush=True)
    say(f"Wrote {output}", flush=True)
  return result


def _summary(parts) -> Dict[str, Any]:
  return metrics.summarize_fg_ari(np.concatenate([p["fg_ari"] for p in parts]),
                                  np.concatenate([p["has_fg"] for p in parts]))


def _static_summary(outs, steps: int) -> Dict[str, Any]:
  result = dict(static_steps=steps, static_frame=0)
  for name in ("mse", "kl"):
    result[f"static_{name}_per_step"] = _mean_per_step(outs[f"static_{name}"])
    result[f"static_{name}"] = result[f"static_{name}_per_step"][-1]
  if "static_fg_ari" in outs:
    summary = metrics.summarize_fg_ari(outs["static_fg_ari"], outs["static_has_fg"])
    result["static_fg_ari_per_step"] = summary["fg_ari_per_step"]
    result["static_fg_ari"] = summary["fg_ari"]
    result["static_ari_per_step"] = _mean_per_step(outs["static_ari"])
    result["static_ari"] = result["static_ari_per_step"][-1]
  return result


def _rollout_summary(outs, burn_in: int, rollout_steps: int) -> Dict[str, Any]:
  num_frames = outs["mse"].shape[1]
  with_truth = outs["rollout_mse"].shape[1]
  result = dict(
      rollout_burn_in=burn_in, rollout_steps=rollout_steps,
      rollout_steps_with_ground_truth=with_truth,
      rollout_first_predicted_step=burn_in,
      rollout_note=(f"steps {burn_in}..{burn_in + rollout_steps - 1} were predicted from actions "
                    f"alone; the data has T={num_frames} frames, so the *_per_step lists cover "
                    f"the {with_truth} predicted steps t={burn_in}..{burn_in + with_truth - 1} "
                    "and later steps have no ground truth"),
      rollout_mse_per_step=_mean_per_step(outs["rollout_mse"]) if with_truth else [],
      rollout_fg_ari_per_step=None)
  if "rollout_fg_ari" in outs:
    result["rollout_fg_ari_per_step"] = metrics.summarize_fg_ari(
        outs["rollout_fg_ari"], outs["rollout_has_fg"])["fg_ari_per_step"]
  elif "fg_ari" in outs:
    result["rollout_fg_ari_per_step"] = []
  return result


def define_flags() -> None:
  config_flags.DEFINE_config_file(
      "config", DEFAULT_CONFIG, "Experiment config file: only the schema of the --config.x=y "
      "overrides when WORKDIR/config.json exists, else the config.")
  flags.DEFINE_string("workdir", None, "Training workdir to evaluate.")
  flags.DEFINE_string("output", None, "Output JSON (default: WORKDIR/eval/metrics.json).")
  flags.mark_flags_as_required(["workdir"])


def main(argv):
  del argv
  overrides = config_flags.get_override_values(FLAGS["config"])
  config = setup_lib.config_for_workdir(FLAGS.workdir, FLAGS.config, overrides)
  evaluate(config, FLAGS.workdir, FLAGS.output)


if __name__ == "__main__":
  define_flags()
  app.run(main)
