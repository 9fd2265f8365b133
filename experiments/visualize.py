r"""Figures of a trained PARTS run (paper Figs 5-9), written under WORKDIR/figures/.

  python -m experiments.visualize --workdir=DIR --what=segmentation|attention|traversal|rollout|
      prior|curves|all [--other_workdir=DIR2] [--sequence=0] [--config=... --config.x=y]

Like experiments.evaluate, the run's DIR/config.json is used with the --config.x=y overrides on
top (--config, default experiments/configs/sprites.py, gives their field names, and is the
config only for a workdir without config.json); the same overrides apply to --other_workdir. The figures show eval sequence --sequence (episode
index in the eval split); the model noise key is PRNGKey(config.eval.seed).

  segmentation  segmentation_seq<i>.png: input, reconstruction, predicted and true segmentation,
                and per-slot mask * component over time (Fig 5); .gif: input | recon | pred seg
                (| true seg) per frame.
  attention     attention_seq<i>.png: per-slot attention of the last refinement step on each
                frame (Fig 8; IODINE-style refiners show their pixel responsibilities).
  traversal     traversal_seq<i>.png: the last frame's posterior means, with one latent of one
                slot (--slot; default the slot with the largest KL from N(0, I)) and, below, the
                same latent in all slots, offset by --num_values values in [-2, 2] and decoded
                (Fig 9). --dims (default: the --num_dims dims with the largest KL of that slot,
                resp. summed over slots).
  rollout       rollout_seq<i>.png/.gif: ground truth, prediction and predicted segmentation;
                --burn_in observed frames (default config.eval.burn_in, else min(4, T - 1)),
                then --rollout_steps predicted from actions alone (default config.eval.
                rollout_steps, else up to T). Steps beyond the data's T have no ground truth and
                show white (Fig 6).
  prior         needs --other_workdir (e.g. a fixed- and a predictive-prior run): frame
                --prior_frame of the sequence repeated for --prior_steps steps with zero actions
                and refinement at every step, through both models. prior_curves_seq<i>.png (KL
                and MSE per step, Fig 7), prior_curves_seq<i>.json (the values) and
                prior_segmentation_seq<i>_{this,other}.png at steps PRIOR_SHOWN_STEPS (the
                figure's columns t=0,1,... are these steps, in order).
  curves        fg_ari_curves.png/.json: the held-out FG-ARI logged during training
                (DIR/metrics.jsonl: eval/fg_ari, the headline) and the diagnostics logged with
                it (eval_diagnostics/<c> for c in evaluator.DIAGNOSTIC_COLUMNS) against
                training step. Needs no checkpoint.
  all           every figure above that applies (prior only with --other_workdir, curves only
                once the run has logged a held-out FG-ARI).
"""
import dataclasses
import json
import os
from typing import Any, Dict, List, Optional, Sequence

from absl import app, flags
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from ml_collections import config_flags

from datasets import base, registry
from experiments import evaluator, metrics_log, setup_lib
from parts_jax import distributions, lowering
from parts_jax import visualize as vis

FLAGS = flags.FLAGS
DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs",
                              "sprites.py")
FIGURES = ("segmentation", "attention", "traversal", "rollout", "prior", "curves")
PRIOR_SHOWN_STEPS = (0, 1, 3, 7, 15, 31)


@dataclasses.dataclass
class LoadedRun:
  """A restored run and one eval sequence (batch of 1)."""
  workdir: str
  config: ml_collections.ConfigDict
  model: Any
  params: Any
  step: int
  batch: Dict[str, np.ndarray]   # {"video": [1,T,H,W,3], "actions": [1,T,A], "segmentations"?}
  sequence: int
  rng: jax.Array
  _outputs: Optional[Dict[str, np.ndarray]] = None

  def __post_init__(self):
    # Compiled as the lowering runs a sequence (jit, or one jitted window at a time).
    self.apply = lowering.compile_forward(self.model, self.model.apply)

  @property
  def outputs(self) -> Dict[str, np.ndarray]:
    """model.apply on the sequence (computed once); arrays without the batch axis."""
    if self._outputs is None:
      out = self.apply(self.params, self.rng, self.batch)
      self._outputs = {k: np.asarray(v)[0] for k, v in out.items() if np.ndim(v)}
    return self._outputs

  @property
  def video(self) -> np.ndarray:
    return self.batch["video"][0]

  @property
  def num_slots(self) -> int:
    return self.model.config.num_slots


def load_run(workdir: str, config: Optional[ml_collections.ConfigDict] = None,
             overrides: Optional[Dict[str, Any]] = None, sequence: int = 0) -> LoadedRun:
  """Restores the latest checkpoint of `workdir` and loads eval episode `sequence`."""
  config = setup_lib.config_for_workdir(workdir, config, overrides)
  it = registry.get_iterator(config.data, "eval", 1, seed=config.eval.seed, shuffle=False,
                             start_step=sequence, prefetch=0)
  if not 0 <= sequence < len(it.source):
    raise base.DataError(f"--sequence={sequence} but the eval split ({it.source.origin}) has "
                         f"{len(it.source)} episodes; pass 0..{len(it.source) - 1}")
  batch = next(it)
  model, params, step = setup_lib.restore_model(config, workdir, batch, config.eval.num_slots)
  return LoadedRun(workdir, config, model, params, step, batch, sequence,
             jax.random.PRNGKey(config.eval.seed))


def _path(out_dir: str, run: LoadedRun, name: str, ext: str = "png") -> str:
  return os.path.join(out_dir, f"{name}_seq{run.sequence}.{ext}")


def _side_by_side(*frames) -> np.ndarray:
  """[T, H, W, 3] arrays (float or uint8) -> uint8 [T, H, n * W, 3]."""
  return np.concatenate([vis.to_uint8(f) for f in frames], axis=2)


def segmentation(run: LoadedRun, out_dir: str) -> List[str]:
  out = run.outputs
  seg = run.batch.get("segmentations")
  seg = None if seg is None else seg[0]
  png, gif = _path(out_dir, run, "segmentation"), _path(out_dir, run, "segmentation", "gif")
  num_true = None if seg is None else max(int(seg.max()) + 1, 2)
  vis.segmentation_figure(run.video, out["recon"], out["masks"], out["components"], seg, png,
                          num_true=num_true)
  frames = [run.video, out["recon"], vis.colorize_ids(out["masks"].argmax(1), run.num_slots)]
  if seg is not None:
    frames.append(vis.colorize_ids(seg, num_true))
  vis.save_gif(_side_by_side(*frames), gif)
  return [png, gif]


def attention(run: LoadedRun, out_dir: str) -> List[str]:
  path = _path(out_dir, run, "attention")
  vis.attention_figure(run.video, run.outputs["attention"], path)
  return [path]


def latent_kl(lam: np.ndarray) -> np.ndarray:
  """KL(N(mu, sigma) || N(0, 1)) per slot and dimension: lam [K, 2D] -> [K, D]."""
  return np.asarray(distributions.kl_per_dim(jnp.asarray(lam)))


def traversal_latents(mu: np.ndarray, slot: int, dims: Sequence[int],
                      all_slot_dims: Sequence[int], values: Sequence[float]) -> np.ndarray:
  """Posterior means mu [K, D] offset by each value: rows for `dims` in `slot`, then rows for
  `all_slot_dims` in every slot. Returns [R, S, K, D], R = len(dims) + len(all_slot_dims)."""
  rows = []
  for d, slots in [(d, [slot]) for d in dims] + [(d, slice(None)) for d in all_slot_dims]:
    z = np.repeat(np.asarray(mu, np.float32)[None], len(values), axis=0)   # [S, K, D]
    z[:, slots, d] += np.asarray(values, np.float32)[:, None]
    rows.append(z)
  return np.stack(rows)


def traversal(run: LoadedRun, out_dir: str, slot: int = -1, dims: Sequence[int] = (),
              num_dims: int = 3, num_values: int = 9) -> List[str]:
  lam = run.outputs["posterior"][-1]                    # [K, 2D], last frame
  kl = latent_kl(lam)                                   # [K, D]
  k, d = kl.shape
  slot = int(np.argmax(kl.sum(1))) if slot < 0 else slot
  if not 0 <= slot < k or any(not 0 <= i < d for i in dims):
    raise ValueError(f"--slot={slot} / --dims={list(dims)} out of range: the model has {k} "
                     f"slots of {d} dims")
  slot_dims = list(dims) or list(np.argsort(-kl[slot])[:num_dims])
  all_dims = list(dims) or list(np.argsort(-kl.sum(0))[:num_dims])
  values = np.linspace(-2.0, 2.0, num_values)
  z = traversal_latents(lam[:, :d], slot, slot_dims, all_dims, values)
  recon = jax.jit(run.model.decode)(run.params, jnp.asarray(z.reshape((-1,) + z.shape[2:])))
  images = np.asarray(recon["recon"]).reshape(z.shape[:2] + run.video.shape[1:])
  labels = ([f"slot {slot} dim {i}" for i in slot_dims] + [f"all dim {i}" for i in all_dims])
  path = _path(out_dir, run, "traversal")
  vis.traversal_figure(images, labels, path, values=values)
  return [path]


def rollout(run: LoadedRun, out_dir: str, burn_in: int = 0, rollout_steps: int = 0) -> List[str]:
  t = run.video.shape[0]
  burn_in = burn_in or run.config.eval.burn_in or min(4, t - 1)
  rollout_steps = rollout_steps or run.config.eval.rollout_steps or max(t - burn_in, 0)
  if burn_in < 1:
    raise ValueError(f"rollout needs burn_in >= 1 observed frames (sequence has T={t})")
  fn = jax.jit(run.model.rollout, static_argnums=(3, 4))
  out = fn(run.params, run.rng, run.batch, burn_in, rollout_steps)
  pred, masks = np.asarray(out["recon"])[0], np.asarray(out["masks"])[0]
  total = burn_in + rollout_steps
  truth = np.ones((total,) + run.video.shape[1:], np.float32)   # White: no ground truth.
  truth[:min(t, total)] = run.video[:total]
  pred_seg = masks.argmax(1)
  png, gif = _path(out_dir, run, "rollout"), _path(out_dir, run, "rollout", "gif")
  vis.rollout_figure(truth, pred, pred_seg, burn_in, png, num_colors=run.num_slots)
  vis.save_gif(_side_by_side(truth, pred, vis.colorize_ids(pred_seg, run.num_slots)), gif)
  return [png, gif]


def static_outputs(run: LoadedRun, frame: np.ndarray, steps: int) -> Dict[str, np.ndarray]:
  """`evaluator.static_unroll` of `frame` [H, W, 3] (repeated `steps` times with zero actions,
  refined at every step): the model's outputs per step, without the batch axis."""
  batch = dict(video=frame[None, None], actions=run.batch.get("actions"))
  out = evaluator.static_unroll(run.model, run.params, run.rng, batch, steps)
  return {k: np.asarray(v)[0] for k, v in out.items()}


def _prior_name(run: LoadedRun) -> str:
  kind = "predictive" if run.config.model.predictive_prior else "fixed"
  return f"{kind} prior ({os.path.basename(os.path.normpath(run.workdir))})"


def prior(run: LoadedRun, other: LoadedRun, out_dir: str, steps: int = 32,
          frame: int = 0) -> List[str]:
  if not 0 <= frame < run.video.shape[0]:
    raise ValueError(f"--prior_frame={frame} outside the sequence's {run.video.shape[0]} frames")
  image = run.video[frame]
  if other.video.shape[1:] != run.video.shape[1:]:
    raise ValueError(f"{other.workdir} models {other.video.shape[1:3]} frames but {run.workdir} "
                     f"{run.video.shape[1:3]}; compare runs on the same data")
  shown = [s for s in PRIOR_SHOWN_STEPS if s < steps]
  curves, paths = {}, []
  for which, r in (("this", run), ("other", other)):
    out = static_outputs(r, image, steps)
    name = _prior_name(r)
    name = name if name not in curves else f"{name} [{which}]"
    curves[name] = dict(kl=out["kl"].tolist(), mse=out["mse"].tolist())
    path = _path(out_dir, run, f"prior_segmentation_{which}")
    vis.segmentation_figure(np.broadcast_to(image, out["recon"][shown].shape), out["recon"][shown],
                            out["masks"][shown], out["components"][shown], path=path,
                            steps=shown)
    paths.append(path)
  png, js = _path(out_dir, run, "prior_curves"), _path(out_dir, run, "prior_curves", "json")
  vis.prior_curves_figure(curves, png)
  with open(js, "w") as f:
    json.dump(dict(curves=curves, frame=frame, steps=steps, shown_steps=shown,
                   segmentation_files=dict(zip(("this", "other"), paths))), f, indent=2)
  return [png, js] + paths


def curves(workdir: str, out_dir: str) -> List[str]:
  """The held-out FG-ARI (and diagnostics) over training, from WORKDIR/metrics.jsonl."""
  logged = metrics_log.curves(workdir, tuple(evaluator.HELD_OUT_LABELS))
  if "eval/fg_ari" not in logged:
    raise ValueError(f"{metrics_log.path(workdir)} has no eval/fg_ari rows: the run has not "
                     "reached its first held-out evaluation (config.train.eval_every), or its "
                     "data has no ground-truth segmentations")
  steps = logged["eval/fg_ari"][0]
  title = f"held-out FG-ARI over training ({os.path.basename(os.path.normpath(workdir))})"
  os.makedirs(out_dir, exist_ok=True)
  png, js = os.path.join(out_dir, "fg_ari_curves.png"), os.path.join(out_dir, "fg_ari_curves.json")
  vis.training_curves_figure({evaluator.HELD_OUT_LABELS[k]: v for k, v in logged.items()},
                             title, png)
  with open(js, "w") as f:
    json.dump(dict(workdir=workdir, last_step=steps[-1],
                   curves={k: dict(steps=v[0], values=v[1]) for k, v in logged.items()}), f,
              indent=2)
  return [png, js]


def make_figures(what: str, workdir: str, other_workdir: Optional[str] = None,
                 config: Optional[ml_collections.ConfigDict] = None,
                 overrides: Optional[Dict[str, Any]] = None, sequence: int = 0,
                 out_dir: Optional[str] = None, **options) -> List[str]:
  """Writes the figures `what` (one of FIGURES or "all") and returns their paths.

  options: slot, dims, num_dims, num_values (traversal); burn_in, rollout_steps (rollout);
  prior_steps, prior_frame (prior).
  """
  if what not in FIGURES + ("all",):
    raise ValueError(f"--what={what!r}; valid: {', '.join(FIGURES + ('all',))}")
  if what == "prior" and not other_workdir:
    raise ValueError("--what=prior compares two runs: pass --other_workdir (e.g. the same model "
                     "trained with --config.model.predictive_prior=True)")
  out_dir = out_dir or os.path.join(workdir, "figures")
  applies = dict(prior=bool(other_workdir),
                 curves=bool(metrics_log.curves(workdir, ("eval/fg_ari",))))
  todo = [w for w in FIGURES if applies.get(w, True)] if what == "all" else [what]
  run = load_run(workdir, config, overrides, sequence) if todo != ["curves"] else None
  paths = []
  for name in todo:
    if name == "curves":
      paths += curves(workdir, out_dir)
    elif name == "segmentation":
      paths += segmentation(run, out_dir)
    elif name == "attention":
      paths += attention(run, out_dir)
    elif name == "traversal":
      paths += traversal(run, out_dir, options.get("slot", -1), options.get("dims", ()),
                         options.get("num_dims", 3), options.get("num_values", 9))
    elif name == "rollout":
      paths += rollout(run, out_dir, options.get("burn_in", 0), options.get("rollout_steps", 0))
    else:
      other = load_run(other_workdir, config, overrides, sequence)
      paths += prior(run, other, out_dir, options.get("prior_steps", 32),
                     options.get("prior_frame", 0))
  return paths


def define_flags() -> None:
  config_flags.DEFINE_config_file(
      "config", DEFAULT_CONFIG, "Experiment config file: only the schema of the --config.x=y "
      "overrides when WORKDIR/config.json exists, else the config.")
  flags.DEFINE_string("workdir", None, "Training workdir.")
  flags.DEFINE_enum("what", "all", FIGURES + ("all",), "Which figure(s).")
  flags.DEFINE_string("other_workdir", None, "Second run for --what=prior.")
  flags.DEFINE_string("out_dir", None, "Output folder (default WORKDIR/figures).")
  flags.DEFINE_integer("sequence", 0, "Episode index in the eval split.")
  flags.DEFINE_integer("slot", -1, "Traversal slot (-1: the slot with the largest KL).")
  flags.DEFINE_list("dims", [], "Traversal dims (default: the --num_dims with the largest KL).")
  flags.DEFINE_integer("num_dims", 3, "Number of traversal dims when --dims is not given.")
  flags.DEFINE_integer("num_values", 9, "Traversal values in [-2, 2].")
  flags.DEFINE_integer("burn_in", 0, "Roll-out burn-in (0: config.eval.burn_in or min(4, T-1)).")
  flags.DEFINE_integer("rollout_steps", 0, "Predicted steps (0: config.eval.rollout_steps or "
                       "up to T).")
  flags.DEFINE_integer("prior_steps", 32, "Steps of the static-frame unroll (Fig 7).")
  flags.DEFINE_integer("prior_frame", 0, "Frame of the sequence to repeat for --what=prior.")
  flags.mark_flags_as_required(["workdir"])


def main(argv):
  del argv
  overrides = config_flags.get_override_values(FLAGS["config"])
  paths = make_figures(
      FLAGS.what, FLAGS.workdir, FLAGS.other_workdir, FLAGS.config, overrides, FLAGS.sequence,
      FLAGS.out_dir, slot=FLAGS.slot, dims=[int(d) for d in FLAGS.dims],
      num_dims=FLAGS.num_dims, num_values=FLAGS.num_values, burn_in=FLAGS.burn_in,
      rollout_steps=FLAGS.rollout_steps, prior_steps=FLAGS.prior_steps,
      prior_frame=FLAGS.prior_frame)
  for path in paths:
    print(path)


if __name__ == "__main__":
  define_flags()
  app.run(main)
