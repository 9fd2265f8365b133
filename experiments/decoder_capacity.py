r"""Can the decoder draw the sprites' shapes? Mask capacity of the spatial-broadcast decoder.

  python -m experiments.decoder_capacity [--config=experiments/configs/sprites.py]
      [--channels=32x32x32,64x64x64x64] [--bases=linear] [--steps=3000] [--curve_every=0]
      [--output=FILE]

The masks of the trained sprites model are round blobs whatever the sprite's shape (README,
Results). This asks whether the decoder (`parts_jax.decoder`, as configured) can draw the shapes
at all when it is told exactly what to draw: a supervised autoencoder of single-object masks.
An MLP encoder maps an object's binary mask [H, W] to z [D] (D = model.slot_dim); the decoder
maps z to mask logits; the loss is the per-pixel sigmoid cross-entropy against the mask. Trained
on every object of every frame of --train_sequences train sequences; scored on the last frame
of the first --eval_sequences eval sequences, where each frame is segmented the way the model's
masks are (per pixel, the argmax over a background logit 0 and each object's decoded logit):

  fg_ari:  FG-ARI of that segmentation (parts_jax.metrics, as the headline);
  iou:     mean IoU of (logit > 0) with the object's mask;
  train_fg_ari, train_iou: the same on the last frame of the first train sequences (frames it
           was trained on): the gap to fg_ari, iou is generalisation from --train_sequences,
           not what the decoder can draw.

Three references on the same frames, needing no model: `disc_oracle_fg_ari` (each object drawn
as a disc of its own area at its exact centroid; overlaps go to the nearer centre relative to
the radius), `nearest_centroid_fg_ari` (every foreground pixel to the nearest centroid) and
`fixed_regions_fg_ari` (the frame cut into K = model.num_slots fixed regions by k-means of the
pixel coordinates, the same cut for every frame: what FG-ARI gives a segmentation that never
looks at the image). With --channels= (empty) only the references are computed.
An upper bound of the decoder's capacity, not what the ELBO makes it learn: if a decoder cannot
reach a high fg_ari here, training the whole model longer will not make its masks draw shapes.
Prints one JSON object (and writes it to --output).
"""
import itertools
import json
import time
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from absl import app, flags
import haiku as hk
import jax
import jax.numpy as jnp
from ml_collections import config_flags
import numpy as np
import optax
from sklearn.cluster import KMeans

from benchmarks import common
from datasets import registry
from experiments import setup_lib
from parts_jax import config as config_lib
from parts_jax import decoder as decoder_lib
from parts_jax import metrics

FLAGS = flags.FLAGS


def object_masks(seg: np.ndarray) -> np.ndarray:
  """Every object (id > 0) of every frame of seg [..., H, W] -> binary masks [N, H, W] float32."""
  frames = seg.reshape((-1,) + seg.shape[-2:])
  return np.stack([f == i for f in frames for i in np.unique(f) if i > 0]).astype(np.float32)


def disc_segmentation(seg: np.ndarray, area_scale: float = 1.0) -> np.ndarray:
  """seg [H, W] -> ids [H, W]: each object (id > 0) replaced by a disc of area_scale times its
  area at its centroid; a pixel inside several discs goes to the one whose centre is nearest
  relative to its radius; pixels in no disc are 0. area_scale = inf: nearest centroid."""
  h, w = seg.shape
  yy, xx = np.mgrid[:h, :w]
  ids = [i for i in np.unique(seg) if i > 0]
  score = np.full((len(ids) + 1, h, w), -np.inf)
  score[0] = 0.0
  for j, i in enumerate(ids):
    ys, xs = np.nonzero(seg == i)
    d2 = (yy - ys.mean()) ** 2 + (xx - xs.mean()) ** 2
    if np.isinf(area_scale):
      score[j + 1] = 1.0 - d2 / (h * h + w * w)
    else:
      r2 = area_scale * len(ys) / np.pi
      score[j + 1] = np.where(d2 <= r2, 2.0 - d2 / r2, -np.inf)
  return np.asarray(ids + [0])[np.argmax(score, axis=0) - 1] if ids else np.zeros_like(seg)


def fixed_regions(h: int, w: int, k: int, seed: int = 0) -> np.ndarray:
  """[H, W] ids 0..k-1: the H x W grid cut into k regions by k-means of the pixel coordinates
  (deterministic for a seed); a segmentation that does not depend on the image."""
  yx = np.stack(np.mgrid[:h, :w], -1).reshape(-1, 2).astype(np.float64)
  return KMeans(k, n_init=10, random_state=seed).fit_predict(yx).reshape(h, w)


def mean_fg_ari(seg: np.ndarray, pred: np.ndarray, num_true: int) -> float:
  """Mean FG-ARI over frames with foreground; seg [N, H, W] integer ids < num_true, pred
  [N, H, W] integer ids >= 0."""
  ari, has_fg = metrics.fg_ari_per_frame(seg[:, None], pred[:, None], num_true=num_true,
                                         num_pred=max(num_true, int(pred.max()) + 1))
  ari, has_fg = np.asarray(ari)[:, 0], np.asarray(has_fg)[:, 0]
  return float(ari[has_fg].mean())


def make_autoencoder(image_size: Tuple[int, int], slot_dim: int, channels: Sequence[int],
                     kernel_size: int, basis: str = "linear", encode: bool = True):
  """masks [N, H, W] -> mask logits [N, H, W] (MLP encoder, the model's decoder with the
  spatial basis `basis`); encode=False: no encoder, the inputs are z [N, slot_dim]."""
  def forward(inputs):
    z = (hk.nets.MLP((256, 256, slot_dim), name="encoder")(inputs.reshape(inputs.shape[0], -1))
         if encode else inputs)
    _, logits = decoder_lib.SoftSpatialBroadcastDecoder(image_size, channels, kernel_size,
                                                        basis=basis)(z[:, None])
    return logits[:, 0]
  return hk.without_apply_rng(hk.transform(forward))


def fit(train: np.ndarray, image_size, slot_dim: int, channels: Sequence[int],
        kernel_size: int, steps: int, batch_size: int, learning_rate: float, seed: int,
        basis: str = "linear", every: int = 0,
        on_every: Optional[Callable[[int, Any, Any, float], None]] = None,
        targets: Optional[np.ndarray] = None, net: Optional[hk.Transformed] = None):
  """Trains the autoencoder on masks train [N, H, W]; returns (net, params, final loss).
  every > 0: calls on_every(step, net, params, mean training loss since the last call) after
  every `every` steps but the last. targets [N, H, W] given: no encoder, train holds z
  [N, slot_dim] and the decoder learns z -> targets (experiments.mask_probe); with `net` too,
  train holds that net's inputs [N, ...] (experiments.read_capacity)."""
  if net is None:
    net = make_autoencoder(image_size, slot_dim, channels, kernel_size, basis,
                           encode=targets is None)
  elif targets is None:
    raise ValueError("fit(net=...) needs the target masks")
  targets = train if targets is None else targets
  if len(targets) != len(train):
    raise ValueError(f"{len(train)} inputs but {len(targets)} target masks")
  params = net.init(jax.random.PRNGKey(seed), jnp.asarray(train[:2]))
  opt = optax.adam(learning_rate)
  opt_state = opt.init(params)

  @jax.jit
  def update(params, opt_state, inputs, masks):
    def loss_fn(p):
      return jnp.mean(optax.sigmoid_binary_cross_entropy(net.apply(p, inputs), masks))
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = opt.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss

  rng = np.random.default_rng(seed)
  loss, losses = np.nan, []
  for step in range(1, steps + 1):
    idx = rng.integers(0, len(train), batch_size)
    params, opt_state, loss = update(params, opt_state, jnp.asarray(train[idx]),
                                     jnp.asarray(targets[idx]))
    if every > 0 and on_every is not None:
      losses.append(loss)
      if step % every == 0 and step < steps:
        on_every(step, net, params, float(np.mean(losses)))
        losses = []
  return net, params, float(loss)


def segment_by_logits(frame: np.ndarray, ids: Sequence[int], logits: np.ndarray
                      ) -> Tuple[np.ndarray, np.ndarray]:
  """One frame [H, W], its object ids [J] and a mask logit image per object [J, H, W] ->
  (ids [H, W]: per pixel the argmax over a background logit 0 and each object's logit (ties:
  the first), IoU [J] of (logit > 0) with each object's pixels)."""
  scores = np.concatenate([np.zeros((1,) + frame.shape), logits])
  pred = np.asarray([0] + list(ids))[np.argmax(scores, axis=0)]
  drawn, masks = logits > 0, np.stack([frame == i for i in ids])
  inter = np.sum(drawn & masks, axis=(1, 2))
  return pred, inter / np.maximum(np.sum(drawn | masks, axis=(1, 2)), 1)


def decoded_segmentation(net, params, seg: np.ndarray,
                         inputs_of: Optional[Callable[[int, np.ndarray], np.ndarray]] = None
                         ) -> Tuple[np.ndarray, float]:
  """Frames seg [N, H, W] -> (ids [N, H, W]: argmax over background logit 0 and each object's
  decoded logit, mean IoU of the decoded masks). The net's inputs for frame n's objects, given
  their binary masks [J, H, W]: inputs_of(n, masks), by default the masks themselves."""
  apply = jax.jit(net.apply)         # one compile per number of objects in a frame
  pred, ious = np.zeros_like(seg), []
  for n, frame in enumerate(seg):
    ids = [i for i in np.unique(frame) if i > 0]
    if not ids:
      continue
    masks = np.stack([frame == i for i in ids]).astype(np.float32)
    inputs = masks if inputs_of is None else inputs_of(n, masks)
    logits = np.asarray(apply(params, jnp.asarray(inputs)))                  # [J, H, W]
    pred[n], frame_ious = segment_by_logits(frame, ids, logits)
    ious.extend(frame_ious)
  return pred, float(np.mean(ious))


def run(config, channels_list: Sequence[Tuple[int, ...]], steps: int, train_sequences: int,
        eval_sequences: int, batch_size: int = 64, learning_rate: float = 1e-3,
        seed: int = 0, bases: Sequence[str] = ("linear",), curve_every: int = 0
        ) -> Dict[str, Any]:
  """The experiment of the module docstring for each decoder width in channels_list and each
  spatial basis in bases; curve_every > 0 also scores every curve_every steps (`curve`)."""
  def segmentations(split, n):
    return np.asarray(registry.first_sequences(
        config.data, split, n, seed=seed, require_segmentations=True,
        what="decoder_capacity")["segmentations"])
  seg = segmentations("eval", eval_sequences)[:, -1]                          # [N, H, W]
  model = setup_lib.model_config(config)       # image_size from the data, as in training
  result = dict(num_eval_frames=len(seg))
  num_true = int(seg.max()) + 1
  if channels_list:                            # (references only: no train data, no training)
    train_seg = segmentations("train", train_sequences)
    train = object_masks(train_seg)
    # The same score on frames it was trained on (last frame of the first train sequences, as
    # many as eval frames): the gap to `fg_ari` is what the data, not the decoder, costs.
    seen = train_seg[:len(seg), -1]
    result.update(num_train_masks=len(train), steps=steps, batch_size=batch_size,
                  slot_dim=model.slot_dim, kernel_size=model.decoder.kernel_size)
    num_true = max(num_true, int(seen.max()) + 1)
  result.update(
      disc_oracle_fg_ari=mean_fg_ari(seg, np.stack([disc_segmentation(s) for s in seg]),
                                     num_true),
      nearest_centroid_fg_ari=mean_fg_ari(
          seg, np.stack([disc_segmentation(s, np.inf) for s in seg]), num_true),
      fixed_regions_fg_ari=mean_fg_ari(
          seg, np.broadcast_to(fixed_regions(*seg.shape[1:], model.num_slots), seg.shape),
          num_true),
      decoders=[])
  for channels, basis in itertools.product(channels_list, bases):
    t0, curve = time.time(), []

    def score(step, net, params, mean_loss):
      pred, iou = decoded_segmentation(net, params, seg)
      seen_pred, seen_iou = decoded_segmentation(net, params, seen)
      curve.append(dict(step=step, train_loss=mean_loss, fg_ari=mean_fg_ari(seg, pred, num_true),
                        iou=iou, train_fg_ari=mean_fg_ari(seen, seen_pred, num_true),
                        train_iou=seen_iou, seconds=round(time.time() - t0, 1)))
      print(json.dumps(dict(channels=list(channels), basis=basis, **curve[-1])), flush=True)
    net, params, loss = fit(train, tuple(model.image_size), model.slot_dim, channels,
                            model.decoder.kernel_size, steps, batch_size, learning_rate, seed,
                            basis, curve_every, score)
    pred, iou = decoded_segmentation(net, params, seg)
    seen_pred, seen_iou = decoded_segmentation(net, params, seen)
    result["decoders"].append(dict(
        channels=list(channels), basis=basis, final_train_loss=loss,
        fg_ari=mean_fg_ari(seg, pred, num_true), iou=iou,
        train_fg_ari=mean_fg_ari(seen, seen_pred, num_true), train_iou=seen_iou,
        seconds=round(time.time() - t0, 1)))
    if curve:
      result["decoders"][-1]["curve"] = curve
    print(json.dumps(result["decoders"][-1]), flush=True)
  return result


def parse_channels(spec: str) -> Tuple[int, ...]:
  """'64x64x64' -> (64, 64, 64)."""
  try:
    channels = tuple(int(c) for c in spec.split("x"))
  except ValueError:
    channels = ()
  if not channels or min(channels) <= 0:
    raise app.UsageError(f"--channels entries are widths joined by 'x' (e.g. 32x32x32), "
                         f"got {spec!r}")
  return channels


def print_result(result: Dict[str, Any], output: Optional[str]) -> None:
  """Adds the processor, prints the result as JSON and writes it to `output` if given."""
  result["processor"] = common.processor_name()
  text = json.dumps(result, indent=1)
  print(text)
  if output:
    with open(output, "w") as f:
      f.write(text + "\n")


def main(argv):
  del argv
  bad = set(FLAGS.bases) - set(config_lib.DECODER_BASES)
  if bad:
    raise app.UsageError(f"--bases must be among {config_lib.DECODER_BASES}, got {sorted(bad)}")
  result = run(FLAGS.config, [parse_channels(s) for s in FLAGS.channels], FLAGS.steps,
               FLAGS.train_sequences, FLAGS.eval_sequences, seed=FLAGS.seed, bases=FLAGS.bases,
               curve_every=FLAGS.curve_every)
  print_result(result, FLAGS.output)


if __name__ == "__main__":
  config_flags.DEFINE_config_file("config", "experiments/configs/sprites.py", "Data + model config.")
  flags.DEFINE_list("channels", ["32x32x32", "64x64x64x64"],
                    "Decoder hidden widths to compare ('x'-joined; the config's is 32x32x32).")
  flags.DEFINE_list("bases", ["linear"], "Decoder spatial bases to compare (model.decoder.basis; "
                    "the config's is linear); every width is run with every basis.")
  flags.DEFINE_integer("steps", 3000, "Training steps per decoder.")
  flags.DEFINE_integer("curve_every", 0, "> 0: also score every this many steps (a learning "
                       "curve per decoder, `curve` in the JSON).")
  flags.DEFINE_integer("train_sequences", 4096, "Train sequences whose objects are the data (512 "
                       "overfits: docs/study.md run 7).")
  flags.DEFINE_integer("eval_sequences", 256, "Eval sequences (last frame) scored.")
  flags.DEFINE_integer("seed", 0, "Seed of the encoder/decoder init and the batches.")
  flags.DEFINE_string("output", None, "Also write the JSON here.")
  app.run(main)
