r"""Posterior fit: is the plateau in the inference or in the decoder?

  python -m experiments.posterior_fit --workdir=DIR [--num_sequences=128] [--steps=1000]
      [--learning_rate=0.03] [--optimizer=adam] [--eps=1e-8] [--curve_every=100]
      [--elbo_samples=8] [--output=FILE] [--figures=DIR] [--figure_sequences=8]

The model's masks are discs whatever the sprite's shape, and the slots hold little of the shape
(experiments.shape_probe). Either the trained decoder draws an outline from some z and the
refinement network does not find that z (an amortisation gap), or no z the decoder knows draws
one that the ELBO prefers (the gap is in what the decoder learned). This tells them apart
without training the model: for the last frame x (T-1) of the first --num_sequences eval
sequences it starts from the model's refined posterior lambda^N (`apply`'s "posterior") and fits
lambda to that frame alone by Adam (or --optimizer=sgd) on -ELBO(x; lambda) (Eq 7 with the run's
sigma_x, beta, pixel likelihood and fixed N(0, I) prior; one fresh reparameterised sample per
step, summed over frames, so each frame's lambda follows its own gradient), the decoder and
everything else fixed.

Every --curve_every steps (and at 0, the model's own posterior) it reports, on the same frames:
  elbo, kl:   per frame, the mean over --elbo_samples fixed noise draws (the same at every point);
  fg_ari, ari, fg_in_background_slot, object_mask_contrast:  of the masks decoded at mu (at 0
              the evaluator's "masks_refined" diagnostic on these frames);
and at the start and the end the shape probe (experiments.shape_probe.probe_slots) on mu, owners
from the responsibilities of the decode at mu, and `oracle_masks`: what outlines are worth to
the pixel likelihood there. log p(x | z) (the run's Eq 2, summed over pixels, mean over frames)
of the decode at mu with its own masks, and with the same components under the true
segmentation's masks (each sprite's pixels to its owner slot, the background to the slot whose
responsibilities win most of it; m = (1 - eps) one-hot + eps / K, for each eps of ORACLE_EPS):
the nats per frame that masks with the exact outlines would add at most, with these components.
Reading: masks whose FG-ARI and shape probe climb as the ELBO rises mean the decoder can draw
outlines and the refinement stops short of them; an ELBO that rises with masks that stay discs
means the outline is not where the decoder puts ELBO; what `oracle_masks` still gains after the
fit, the decoder cannot draw from any z it knows (docs/study.md run 16: both). Writes
DIR/eval/posterior_fit.json (or --output), and two segmentation figures of the last frames of
the first --figure_sequences sequences (columns), decoded at mu before and after the fit:
FIGURES/posterior_fit_{model,fitted}.png (default FIGURES: DIR/figures).
"""
import os
import time
from typing import Any, Dict, List, Optional

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np

from experiments import evaluator, position_probe, setup_lib, shape_probe
from parts_jax import distributions, likelihood, lowering, metrics
from parts_jax.config import FIT_OPTIMIZERS
from parts_jax.model import fit_optimizer
from parts_jax import visualize as vis

FLAGS = flags.FLAGS
ORACLE_EPS = (1e-1, 1e-2, 1e-3, 1e-4)


def true_slot_map(resp: np.ndarray, seg: np.ndarray) -> np.ndarray:
  """[B, H, W] the slot each pixel belongs to under the ground truth seg [B, H, W]: a sprite's
  pixels to its owner slot (`position_probe.owned_objects` of resp [B, K, H, W]), background
  pixels to the slot whose responsibilities win most of them (ties: the lowest k)."""
  won = np.argmax(resp, axis=1)
  slots = np.zeros(seg.shape, np.int32)
  for b in range(seg.shape[0]):
    background = seg[b] == 0
    if background.any():
      slots[b][background] = np.argmax(np.bincount(won[b][background], minlength=resp.shape[1]))
  for b, obj, k in position_probe.owned_objects(resp, seg):
    slots[b][seg[b] == obj] = k
  return slots


def fit_curve(model, params, x: jnp.ndarray, lam0: jnp.ndarray, *, steps: int,
              learning_rate: float, curve_every: int, rng: jax.Array,
              measure, optimizer: str = "adam", eps: float = 1e-8) -> List[Dict[str, Any]]:
  """`model.fit_optimizer(optimizer, learning_rate, eps)` on the sum over frames of
  -ELBO(x; lambda) from lam0 [B, K, 2D], x [B, H, W, 3].

  `measure(lam, step)` -> a dict of numbers, called at step 0, every curve_every steps and at
  the last; returns their list, each with "step" and "seconds" (fitting time so far)."""
  if steps < 0 or curve_every < 1:
    raise ValueError(f"steps must be >= 0 and curve_every >= 1, got {steps}, {curve_every}")
  opt = fit_optimizer(optimizer, learning_rate, eps)

  update = jax.jit(lambda lam, state, key: model.posterior_update(params, x, lam, state, opt,
                                                                 key))

  lam, state, seconds = lam0, opt.init(lam0), 0.0
  curve = [dict(step=0, seconds=0.0, **measure(lam, 0))]
  for step in range(1, steps + 1):
    start = time.time()
    lam, state = jax.block_until_ready(update(lam, state, jax.random.fold_in(rng, step)))
    seconds += time.time() - start
    if step % curve_every == 0 or step == steps:
      row = dict(step=step, seconds=seconds, **measure(lam, step))
      curve.append(row)
      print(" | ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                       for k, v in row.items() if not isinstance(v, (dict, list))), flush=True)
  return curve


def fit(workdir: str, num_sequences: int = 128, steps: int = 1000, learning_rate: float = 0.03,
        curve_every: int = 100, elbo_samples: int = 8, folds: int = 5,
        figures: Optional[str] = None, figure_sequences: int = 8,
        optimizer: str = "adam", eps: float = 1e-8) -> Dict[str, Any]:
  """Runs the fit on the latest checkpoint of `workdir` (module docstring); with `figures`
  (a directory) it also draws the figures there; their paths are in the result's "figures"."""
  if elbo_samples < 1 or figure_sequences < 1:
    raise ValueError(f"elbo_samples and figure_sequences must be >= 1, got {elbo_samples}, "
                     f"{figure_sequences}")
  config, batch = position_probe.run_and_sequences(workdir, "eval", num_sequences,
                                                    "posterior_fit")
  model, params, step = setup_lib.restore_model(config, workdir, batch)
  num_true = config.eval.max_ids
  out = lowering.compile_forward(model, model.apply)(
      params, jax.random.PRNGKey(config.eval.seed), batch)
  x = jnp.asarray(batch["video"][:, -1])                               # [B, H, W, 3]
  seg = jnp.asarray(batch["segmentations"][:, -1])                     # [B, H, W]
  lam0 = jnp.asarray(out["posterior"][:, -1])                          # [B, K, 2D]
  noise = [distributions.standard_normal(jax.random.PRNGKey(1000 + i), lam0)
           for i in range(elbo_samples)]
  sprites = config.data.get("name") == "sprites"

  @jax.jit
  def scores(lam):
    """ELBO and KL (means over frames and noise draws), the decode at mu and per-frame [B]
    segmentation scores of its masks and responsibilities."""
    fes = [model.negative_elbo(params, x, lam, eps)[1][0] for eps in noise]
    mu = distributions.split_lambda(lam)[0]
    decoded = model.decode(params, mu)
    masks = decoded["masks"][:, None]                                   # [B, 1, K, H, W]
    seg_t = seg[:, None]
    found = evaluator.segmentation_metrics(seg_t, masks, num_true)
    resp = likelihood.responsibilities(x, decoded["components"], jnp.log(decoded["masks"]),
                                       config.model.sigma_x)
    per_frame = dict(
        fg_ari=found["fg_ari"],
        fg_ari_responsibilities=metrics.fg_ari_per_frame(seg_t, resp[:, None],
                                                         num_true=num_true)[0],
        fg_in_background_slot=metrics.foreground_in_background_slot(seg_t, masks),
        object_mask_contrast=metrics.object_mask_contrast(seg_t, masks, num_true))
    means = dict(elbo=jnp.mean(jnp.stack([fe.elbo for fe in fes])),
                 kl=jnp.mean(jnp.stack([fe.kl for fe in fes])), ari=jnp.mean(found["ari"]))
    return means, per_frame, found["has_fg"], mu, resp, decoded

  pixel_loglik = likelihood.PIXEL_LIKELIHOODS[config.model.likelihood]

  @jax.jit
  def oracle(decoded, slots):
    """Per frame log p(x | mu) of the decode at mu with its own masks, and with the true masks
    (`true_slot_map` slots [B, H, W]) for each eps of ORACLE_EPS."""
    k = decoded["masks"].shape[1]
    frame = lambda masks: jnp.sum(pixel_loglik(x, decoded["components"], jnp.log(masks),
                                               config.model.sigma_x)[0], axis=(1, 2))
    one_hot = jnp.moveaxis(jax.nn.one_hot(slots, k), -1, 1)             # [B, K, H, W]
    return frame(decoded["masks"]), [frame((1 - e) * one_hot + e / k) for e in ORACLE_EPS]

  probes, drawn, oracles = {}, {}, {}

  def measure(lam, at):
    means, per_frame, has_fg, mu, resp, decoded = scores(lam)
    # As the evaluator's diagnostics: means over the frames with foreground.
    row = {k: float(v) for k, v in means.items()}
    row.update({k: metrics.summarize_fg_ari(v, has_fg)["fg_ari"] for k, v in per_frame.items()})
    if at not in (0, steps):
      return row
    label = "model" if at == 0 else "fitted"
    mu, resp = np.asarray(mu), np.asarray(resp)
    if figures:
      shown = jax.tree.map(lambda a: a[:figure_sequences], decoded)
      n = shown["masks"].shape[0]
      drawn[label] = os.path.join(figures, f"posterior_fit_{label}.png")
      vis.segmentation_figure(batch["video"][:n, -1], shown["recon"], shown["masks"],
                              shown["components"], batch["segmentations"][:n, -1],
                              drawn[label], num_true=num_true,
                              column_labels=[f"seq {i}" for i in range(n)])
    own, true = oracle(decoded, true_slot_map(resp, np.asarray(seg)))
    oracles[label] = dict(
        loglik=float(np.mean(own)),
        true_masks={str(e): float(np.mean(t)) for e, t in zip(ORACLE_EPS, true)},
        gain=float(max(np.mean(t) for t in true) - np.mean(own)))
    if sprites:
      probes[at] = shape_probe.probe_slots(mu, resp, np.asarray(seg), config.data,
                                           batch["video"].shape[1], folds)
    return row

  curve = fit_curve(model, params, x, lam0, steps=steps, learning_rate=learning_rate,
                    curve_every=curve_every, rng=jax.random.PRNGKey(config.eval.seed + 1),
                    measure=measure, optimizer=optimizer, eps=eps)
  return dict(
      workdir=workdir, step=step, num_sequences=int(x.shape[0]), frame="last (T-1)",
      steps=steps, learning_rate=learning_rate, optimizer=optimizer, eps=eps,
      elbo_samples=elbo_samples,
      sigma_x=float(config.model.sigma_x), beta=float(config.model.beta),
      likelihood=config.model.likelihood, curve=curve,
      shape_probe={("model" if at == 0 else "fitted"): {name: probes[at][name]["accuracy"]
                                                        for name in ("slot", "disc", "pixels")}
                   for at in sorted(probes)},
      shape_probe_detail={str(at): p for at, p in probes.items()}, oracle_masks=oracles,
      figures=drawn)


def main(argv: List[str]):
  del argv
  result = fit(FLAGS.workdir, FLAGS.num_sequences, FLAGS.steps, FLAGS.learning_rate,
               FLAGS.curve_every, FLAGS.elbo_samples,
               figures=FLAGS.figures or os.path.join(FLAGS.workdir, "figures"),
               figure_sequences=FLAGS.figure_sequences, optimizer=FLAGS.optimizer,
               eps=FLAGS.eps)
  first, last = result["curve"][0], result["curve"][-1]
  for name in ("elbo", "kl", "fg_ari", "ari", "fg_ari_responsibilities", "fg_in_background_slot",
               "object_mask_contrast"):
    value = lambda v: f"{v:10.4f}" if v is not None else "      none"   # no foreground frame
    print(f"{name:26s} model's posterior {value(first[name])} | fitted ({last['step']} steps) "
          f"{value(last[name])}")
  for at, row in result["oracle_masks"].items():
    print(f"log p(x|mu) per frame ({at}): own masks {row['loglik']:.1f}, true masks "
          + ", ".join(f"{v:.1f} (eps {e})" for e, v in row["true_masks"].items())
          + f": at most +{row['gain']:.1f} nats from the outlines")
  for at, row in result["shape_probe"].items():
    print(f"shape probe ({at}): slot {row['slot']:.3f}, disc {row['disc']:.3f}, "
          f"pixels {row['pixels']:.3f}")
  for path in result["figures"].values():
    print(f"Wrote {path}")
  print(f"Wrote {position_probe.write_result(result, FLAGS.workdir, FLAGS.output, 'posterior_fit.json')}")


if __name__ == "__main__":
  flags.DEFINE_string("workdir", None, "Training workdir.")
  flags.DEFINE_integer("num_sequences", 128, "Eval sequences (the first ones, in order).")
  flags.DEFINE_integer("steps", 1000, "Optimiser steps on lambda.")
  flags.DEFINE_float("learning_rate", 0.03, "Learning rate for lambda.")
  flags.DEFINE_enum("optimizer", "adam", list(FIT_OPTIMIZERS), "Optimiser of the fit (optax's).")
  flags.DEFINE_float("eps", 1e-8, "Adam's epsilon.")
  flags.DEFINE_integer("curve_every", 100, "Measure every this many steps.")
  flags.DEFINE_integer("elbo_samples", 8, "Fixed noise draws for the reported ELBO.")
  flags.DEFINE_string("output", None, "Output JSON (default WORKDIR/eval/posterior_fit.json).")
  flags.DEFINE_string("figures", None, "Figure directory (default WORKDIR/figures).")
  flags.DEFINE_integer("figure_sequences", 8, "Sequences (columns) in the figures.")
  flags.mark_flags_as_required(["workdir"])
  app.run(main)
