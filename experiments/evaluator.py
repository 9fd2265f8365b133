"""The evaluator: per-sequence metrics on device, and the results schema they are summarised into.

Used by `experiments.evaluate` (the eval split, metrics.json), the held-out evaluation of
`experiments.train` (TensorBoard scalars) and the figures of `experiments.visualize` (Fig 7's
static unroll); `experiments.sweep` reads metrics.json back through `Results`.

Shapes: B batch, T time, K slots, H x W image; S static steps (Fig 7).
"""
import dataclasses
import json
from typing import Any, Dict, List, Optional

import jax
import jax.numpy as jnp
import numpy as np

from parts_jax import lowering, metrics

DIAGNOSTICS = ("masks_mean", "masks_refined", "responsibilities", "attention")
HEADLINE = ("fg_ari", "ari", "mse")
BACKGROUND_SLOT = "fg_in_background_slot"   # metrics.foreground_in_background_slot, headline masks
OBJECT_MASK_CONTRAST = "object_mask_contrast"   # metrics.object_mask_contrast, headline masks
BACKGROUND_SPILL = "bg_in_object_slots"   # metrics.background_in_object_slots, headline masks
DIAGNOSTIC_COLUMNS = tuple(f"fg_ari_{name}" for name in DIAGNOSTICS) + (
    BACKGROUND_SLOT, OBJECT_MASK_CONTRAST, BACKGROUND_SPILL)
DIAGNOSTIC_HEADERS = ("FG-ARI masks at the mean (diag.)", "FG-ARI refined masks (diag.)",
                      "FG-ARI responsibilities (diag.)", "FG-ARI attention (diag.)",
                      "FG pixels in background slot (diag.)", "object mask contrast (diag.)",
                      "BG pixels in object slots (diag.)")
STATIC_COLUMNS = ("static_fg_ari_at_t", "static_mse_at_t", "static_kl_at_t", "static_fg_ari",
                  "static_mse", "static_kl")
DIAGNOSTICS_NOTE = ("diagnostics, not the paper's number: FG-ARI of other per-pixel argmaxes "
                    "(masks_mean: the headline's posterior decoded at its mean instead of a "
                    "sample; masks_refined: decoder masks of the refined posterior lambda_t^N at "
                    "its mean; responsibilities: p(k | x_i); attention: slot-attention weights); "
                    "fg_in_background_slot: the fraction of foreground pixels whose headline "
                    "mask argmax is the background slot (the slot winning most background "
                    "pixels): 0 = objects apart from the background, 1 = all swallowed; "
                    "object_mask_contrast: per ground-truth object, the largest difference over "
                    "slots between a headline mask's mean on the object and on the other pixels, "
                    "averaged over objects: 0 = spatially uniform masks, 1 = a slot's mask is 1 "
                    "on the object and 0 elsewhere; bg_in_object_slots: the fraction of "
                    "background pixels whose headline mask argmax is not the background slot "
                    "(masks spilling past their objects, or the background cut into regions; "
                    "FG-ARI does not score it)")


# --- On device: per-sequence metrics -----------------------------------------------------------
def make_eval_step(model, num_true: int, burn_in: int = 0, rollout_steps: int = 0,
                   keep_outputs: bool = False, **jit_kwargs):
  """(params, rng, batch) -> per-sequence metrics; all arrays [B, ...].

  mse [B, T]; with segmentations: fg_ari, has_fg, ari [B, T] and fg_ari_<name> [B, T] for name
  in DIAGNOSTICS; with burn_in > 0: rollout_mse and (with segmentations) rollout_fg_ari,
  rollout_has_fg [B, G], G = steps burn_in..T-1 that were predicted (no refinement) and have
  ground truth. keep_outputs: also "recon", "masks", "components" [B, T, ...] and the scalar
  "loss" (3.3). Two parts: the model's forward (`PARTS.apply`, and `rollout` with burn_in > 0),
  compiled as the model's lowering runs a sequence (`lowering.compile_forward`: under "windows"
  one jitted window at a time, so compile time does not grow with T; jit_kwargs, e.g.
  in_shardings, go to its jax.jit), then one jitted program of the metrics. The model runs as
  evaluated (`PARTS.for_evaluation`: without training-only terms).
  """
  model = model.for_evaluation()

  def forward(params, rng, batch):
    out = model.apply(params, rng, batch)
    ro = (model.rollout(params, jax.random.fold_in(rng, 1), batch, burn_in, rollout_steps)
          if burn_in > 0 else None)
    return out, ro

  def measure(params, batch, out, ro):
    result = dict(mse=out["mse"])
    if keep_outputs:
      result.update({k: out[k] for k in ("recon", "masks", "components", "loss")})
    segs = batch.get("segmentations")
    if segs is not None:
      result.update(segmentation_metrics(segs, out["masks"], num_true))
      result.update(diagnostic_fg_ari(model, params, batch, out, num_true))
    if ro is not None:
      t = batch["video"].shape[1]
      end = max(min(burn_in + rollout_steps, t), burn_in)
      result["rollout_mse"] = metrics.mse(batch["video"][:, burn_in:end],
                                          ro["recon"][:, burn_in:end])
      if segs is not None and end > burn_in:
        seg = segmentation_metrics(segs[:, burn_in:end], ro["masks"][:, burn_in:end], num_true)
        result["rollout_fg_ari"], result["rollout_has_fg"] = seg["fg_ari"], seg["has_fg"]
    return result

  forward = lowering.compile_forward(model, forward, **jit_kwargs)
  measure = jax.jit(measure)
  return lambda params, rng, batch: measure(params, batch, *forward(params, rng, batch))


def segmentation_metrics(segs, masks, num_true: int) -> Dict[str, jnp.ndarray]:
  """segs [B, T, H, W], masks [B, T, K, H, W] -> fg_ari, has_fg, ari: [B, T]."""
  b, t, k = masks.shape[:3]
  fg_ari, has_fg = metrics.fg_ari_per_frame(segs, masks, num_true=num_true)
  ari = metrics.adjusted_rand_index(segs.reshape(b * t, -1),
                                    jnp.argmax(masks, axis=2).reshape(b * t, -1),
                                    num_true=num_true, num_pred=k)
  return dict(fg_ari=fg_ari, has_fg=has_fg, ari=ari.reshape(b, t))


def diagnostic_fg_ari(model, params, batch, out, num_true: int) -> Dict[str, jnp.ndarray]:
  """Per-frame diagnostics [B, T]: the FG-ARI of the diagnostic segmentations
  (`PARTS.segmentation_maps`), fg_ari_<name> for name in DIAGNOSTICS, and BACKGROUND_SLOT,
  OBJECT_MASK_CONTRAST and BACKGROUND_SPILL of the headline masks. The frames without
  foreground are those of `has_fg`."""
  maps = model.segmentation_maps(params, batch["video"], out)
  result = {f"fg_ari_{name}": metrics.fg_ari_per_frame(batch["segmentations"], maps[name],
                                                       num_true=num_true)[0]
            for name in DIAGNOSTICS}
  result[BACKGROUND_SLOT] = metrics.foreground_in_background_slot(batch["segmentations"],
                                                                  out["masks"])
  result[OBJECT_MASK_CONTRAST] = metrics.object_mask_contrast(batch["segmentations"],
                                                              out["masks"], num_true)
  result[BACKGROUND_SPILL] = metrics.background_in_object_slots(batch["segmentations"],
                                                                out["masks"])
  return result


# --- Fig 7: the static unroll ------------------------------------------------------------------
def static_batch(batch, steps: int) -> Dict[str, jnp.ndarray]:
  """Fig 7's input: frame 0 of every sequence of `batch` repeated `steps` times, with zero actions
  (when the batch has actions). {"video": [B, S, H, W, 3], "actions": [B, S, A]}."""
  static = dict(video=jnp.repeat(batch["video"][:, :1], steps, axis=1))
  if batch.get("actions") is not None:
    a = batch["actions"]
    static["actions"] = jnp.zeros((a.shape[0], steps, a.shape[-1]), a.dtype)
  return static


def static_metrics_step(model, num_true: int):
  """The jitted step of `static_unroll` that keeps metrics only: (params, carry, inputs,
  segs [B, H, W] or None) -> (carry, mse, kl [B]; fg_ari, has_fg, ari [B] with segs)."""

  def reduce(out, segs):
    result = dict(mse=out["mse"], kl=out["kl"])
    if segs is not None:
      seg = segmentation_metrics(segs[:, None], out["masks"][:, None], num_true)
      result.update({k: v[:, 0] for k, v in seg.items()})
    return result

  return lowering.jit_step(model, reduce)


def static_unroll(model, params, rng, batch, steps: int, step=None) -> Dict[str, jnp.ndarray]:
  """Fig 7: `static_batch(batch, steps)` refined at every step (also past config.burn_in), one
  jitted step at a time (compile time does not grow with S). Returns the per-step results
  [B, S, ...] of `step`: `static_metrics_step` (given frame 0's segmentations), or by default
  (step=None) the model's outputs. The same as `model.apply(params, rng, static batch,
  refine_all=True)` step for step (tests/test_evaluate.py)."""
  carry, xs = model.step_inputs(rng, static_batch(batch, steps), refine_all=True)
  if step is None:
    return lowering.host_unroll(lowering.jit_step(model), params, carry, xs)
  segs = batch.get("segmentations")
  return lowering.host_unroll(step, params, carry, xs, None if segs is None else segs[:, 0])


# --- On host: the results schema ---------------------------------------------------------------
def mean_per_step(values) -> List[float]:
  """[B, T] -> the T means over B (float64)."""
  return [float(v) for v in np.mean(np.asarray(values, np.float64), axis=0)]


def segmentation_summary(outs: Dict[str, np.ndarray]) -> Dict[str, Any]:
  """fg_ari, fg_ari_sem, fg_ari_per_sequence, fg_ari_per_step, num_frames_without_foreground,
  num_sequences_scored, ari_per_step, ari and diagnostics of per-sequence metrics with
  segmentations (see `Results`)."""
  result = metrics.summarize_fg_ari(outs["fg_ari"], outs["has_fg"])
  del result["num_sequences"]
  result["ari_per_step"] = mean_per_step(outs["ari"])
  result["ari"] = result["ari_per_step"][-1]
  diag = dict(note=DIAGNOSTICS_NOTE)
  for key in DIAGNOSTIC_COLUMNS:   # Each: the mean over sequences whose frame has foreground.
    summary = metrics.summarize_fg_ari(outs[key], outs["has_fg"])
    diag[key] = summary["fg_ari"]
    diag[f"{key}_per_step"] = summary["fg_ari_per_step"]
  result["diagnostics"] = diag
  return result


@dataclasses.dataclass
class Results:
  """One evaluation: the fields of metrics.json (built by `summarize`, read back by `load`).

  fg_ari: mean over sequences of the last frame's FG-ARI (the paper's ARI-F); frames without
  foreground pixels are left out. fg_ari_sem: its standard error over those sequences
  (`metrics.summarize_fg_ari`); fg_ari_per_sequence: each sequence's (None: no foreground), for
  paired comparisons of two evaluations (`metrics.paired_fg_ari_difference`). ari: ARI of all
  pixels (background included), last frame.
  mse: reconstruction MSE, last frame. <x>_per_step: the same for every step t = 0..T-1.
  averaged_steps (only with eval.average_checkpoints > 1): the checkpoints whose parameters were
  averaged into the evaluated model (`checkpointing.averaged_steps`); step is the last of them.
  overrides (only when given): the --config.x=y values the evaluation ran with on top of the
  run's config.json (e.g. a test-time model.num_refine_steps), so that a number says what made it.
  diagnostics: FG-ARI (last frame, and per step) of other per-pixel argmaxes, to tell where a
  segmentation is lost (not the paper's number): masks_mean (the headline's posterior decoded at
  its mean, not at the loss's sample), masks_refined (decoder masks of the refined
  posterior lambda_t^N), responsibilities (p(k | x_i)), attention (slot attention); and
  fg_in_background_slot (last frame, per step): the fraction of foreground pixels the headline
  masks give to the background slot (`metrics.foreground_in_background_slot`),
  object_mask_contrast: how far the masks follow the objects (`metrics.object_mask_contrast`), and
  bg_in_object_slots: the fraction of background pixels they give to other slots
  (`metrics.background_in_object_slots`; FG-ARI does not see it). Data without
  ground-truth masks: null FG-ARI/ARI fields and fg_ari_note. rollout_* (eval.burn_in > 0):
  observe burn_in frames, then predict rollout_steps frames from actions alone (4.2);
  rollout_{mse,fg_ari}_per_step cover the predicted steps that have ground truth
  (t = burn_in .. T-1). static_* (eval.static_steps = S > 0, Fig 7): the first frame of each
  sequence repeated S times with zero actions, refined at every step; S values per step and the
  last values (KL: against the prior the model uses, fixed or predictive, nats per frame).
  Sections that do not apply are left out of metrics.json.
  """
  step: Optional[int] = None
  averaged_steps: Optional[List[int]] = None
  overrides: Optional[Dict[str, Any]] = None
  workdir: Optional[str] = None
  preset: Optional[str] = None
  seed: Optional[int] = None
  data: Optional[str] = None
  dataset_label: Optional[str] = None
  num_slots: Optional[int] = None
  num_slots_trained: Optional[int] = None
  num_frames: Optional[int] = None
  num_sequences: Optional[int] = None
  num_sequences_requested: Optional[int] = None
  mse_per_step: Optional[List[float]] = None
  mse: Optional[float] = None
  fg_ari: Optional[float] = None
  fg_ari_sem: Optional[float] = None
  fg_ari_per_sequence: Optional[List[Optional[float]]] = None
  fg_ari_per_step: Optional[List[Optional[float]]] = None
  num_frames_without_foreground: Optional[int] = None
  num_sequences_scored: Optional[int] = None
  ari_per_step: Optional[List[float]] = None
  ari: Optional[float] = None
  diagnostics: Optional[Dict[str, Any]] = None
  fg_ari_note: Optional[str] = None
  rollout_burn_in: Optional[int] = None
  rollout_steps: Optional[int] = None
  rollout_steps_with_ground_truth: Optional[int] = None
  rollout_first_predicted_step: Optional[int] = None
  rollout_note: Optional[str] = None
  rollout_mse_per_step: Optional[List[float]] = None
  rollout_fg_ari_per_step: Optional[List[Optional[float]]] = None
  static_steps: Optional[int] = None
  static_frame: Optional[int] = None
  static_mse_per_step: Optional[List[float]] = None
  static_mse: Optional[float] = None
  static_kl_per_step: Optional[List[float]] = None
  static_kl: Optional[float] = None
  static_fg_ari_per_step: Optional[List[Optional[float]]] = None
  static_fg_ari: Optional[float] = None
  static_ari_per_step: Optional[List[float]] = None
  static_ari: Optional[float] = None

  _LEFT_OUT_IF_NONE = ("averaged_steps", "overrides", "fg_ari_per_sequence", "diagnostics",
                       "fg_ari_note", "static_fg_ari_per_step", "static_fg_ari",
                       "static_ari_per_step", "static_ari")

  def to_json(self) -> Dict[str, Any]:
    """The metrics.json dict: sections that do not apply (no roll-out, no static unroll, no
    segmentations) are left out."""
    out = {}
    for name, value in dataclasses.asdict(self).items():
      if ((name.startswith("rollout_") and self.rollout_burn_in is None)
          or (name.startswith("static_") and self.static_steps is None)
          or (name in self._LEFT_OUT_IF_NONE and value is None)):
        continue
      out[name] = value
    return out

  def save(self, path: str) -> None:
    with open(path, "w") as f:
      json.dump(self.to_json(), f, indent=2)

  @classmethod
  def load(cls, path: str) -> "Results":
    """Reads a metrics.json (fields it lacks, e.g. from older code, are None; unknown ones are
    ignored)."""
    with open(path) as f:
      fields = json.load(f)
    return cls(**{f.name: fields[f.name] for f in dataclasses.fields(cls) if f.name in fields})

  def columns(self) -> Dict[str, Optional[float]]:
    """The scalar columns of a results table: HEADLINE, DIAGNOSTIC_COLUMNS and STATIC_COLUMNS
    (the static unroll at step T = num_frames, "_at_t", and at its last step S); None where
    absent."""
    diag = self.diagnostics or {}
    out = {k: getattr(self, k) for k in HEADLINE}
    out.update({k: diag.get(k) for k in DIAGNOSTIC_COLUMNS})
    for name in ("fg_ari", "mse", "kl"):
      curve, t = getattr(self, f"static_{name}_per_step"), self.num_frames
      out[f"static_{name}_at_t"] = curve[t - 1] if curve and t and len(curve) >= t else None
      out[f"static_{name}"] = getattr(self, f"static_{name}")
    return out


def summarize(outs: Dict[str, np.ndarray], burn_in: int = 0, rollout_steps: int = 0,
              static_steps: int = 0, **run_fields) -> Results:
  """Results of per-sequence metrics (the outputs of `make_eval_step`, with the static unroll's as
  static_<name>, concatenated over batches on the host); run_fields: step, averaged_steps,
  overrides, workdir, preset, seed, data, dataset_label, num_slots, num_slots_trained,
  num_sequences_requested."""
  r = Results(num_frames=int(outs["mse"].shape[1]), num_sequences=int(outs["mse"].shape[0]),
              mse_per_step=mean_per_step(outs["mse"]), **run_fields)
  r.mse = r.mse_per_step[-1]
  if "fg_ari" in outs:
    r = dataclasses.replace(r, **segmentation_summary(outs))
  else:
    r = dataclasses.replace(r, num_sequences_scored=0, fg_ari_note=(
        f"dataset {r.data!r} has no ground-truth segmentations"))
  if burn_in > 0:
    r = dataclasses.replace(r, **_rollout_summary(outs, burn_in, rollout_steps))
  if static_steps:
    r = dataclasses.replace(r, **_static_summary(outs, static_steps))
  return r


def _static_summary(outs, steps: int) -> Dict[str, Any]:
  result = dict(static_steps=steps, static_frame=0)
  for name in ("mse", "kl"):
    result[f"static_{name}_per_step"] = mean_per_step(outs[f"static_{name}"])
    result[f"static_{name}"] = result[f"static_{name}_per_step"][-1]
  if "static_fg_ari" in outs:
    summary = metrics.summarize_fg_ari(outs["static_fg_ari"], outs["static_has_fg"])
    result["static_fg_ari_per_step"] = summary["fg_ari_per_step"]
    result["static_fg_ari"] = summary["fg_ari"]
    result["static_ari_per_step"] = mean_per_step(outs["static_ari"])
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
      rollout_mse_per_step=mean_per_step(outs["rollout_mse"]) if with_truth else [],
      rollout_fg_ari_per_step=None)
  if "rollout_fg_ari" in outs:
    result["rollout_fg_ari_per_step"] = metrics.summarize_fg_ari(
        outs["rollout_fg_ari"], outs["rollout_has_fg"])["fg_ari_per_step"]
  elif "fg_ari" in outs:
    result["rollout_fg_ari_per_step"] = []
  return result


# The segmentation keys of `held_out_scalars` (as in metrics.jsonl) -> their label in figures.
HELD_OUT_LABELS = dict([("eval/fg_ari", "FG-ARI, masks (headline)")] + [
    (f"eval_diagnostics/{k}", h.replace(" (diag.)", ""))
    for k, h in zip(DIAGNOSTIC_COLUMNS, DIAGNOSTIC_HEADERS)])


def held_out_scalars(outs: Dict[str, np.ndarray]) -> Dict[str, float]:
  """The training loop's held-out scalars, from one batch of `make_eval_step(...,
  keep_outputs=True)` on the host: eval/mse (all frames), eval/loss, and with segmentations
  eval/fg_ari and eval_diagnostics/fg_ari_<name> (last frame; left out where undefined)."""
  values = {"eval/mse": float(np.mean(outs["mse"])), "eval/loss": float(outs["loss"])}
  if "fg_ari" in outs:
    summary = segmentation_summary(outs)
    named = dict({"eval/fg_ari": summary["fg_ari"]}, **{
        f"eval_diagnostics/{k}": summary["diagnostics"][k] for k in DIAGNOSTIC_COLUMNS})
    values.update({k: float(v) for k, v in named.items() if v is not None})
  return values
