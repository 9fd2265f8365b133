r"""Can the refinement's read of the frame carry a sprite's shape? The read, trained supervised.

  python -m experiments.read_capacity [--config=experiments/configs/sprites.py]
      [--weights=mask,interior] [--encoders=config] [--steps=5000] [--curve_every=0]
      [--output=FILE]

The mask probe (docs/study.md runs 7-10) finds where each sprite is and its colour in its owner
slot's posterior, not its outline, while the decoder draws the outlines from a code that holds
them (experiments.decoder_capacity: FG-ARI 0.91). Between the frame and lambda stands the
refinement's read of the frame (parts_jax/refinement.py, SlotAttentionRefiner): the bottom-up
encoder's features O (3.2.2), the values W_v LN(O) and the attention-weighted mean s_k^out of
Eq 6, then the refinement MLP. This module trains that read supervised with the attention
replaced by a given weight map w per object:

  s^out = sum_i w_i v_i / sum_i w_i       (Eq 6 with attn_ik := w_i)
  z = MLP(s^out)                          (the refinement MLP's hidden sizes, output D)
  mask logits = decoder(z)                (the model's decoder, as configured)

and w one of (--weights):
  mask:      the object's ground-truth mask (an attention that reads all of the sprite);
  interior:  its pixels whose 4 neighbours are all in it (the sprite less its border: the
             trained model's attention wins 35-40 % of a sprite's border pixels and 53-63 % of
             its interior, `experiments.slot_information`); objects with no interior keep w =
             mask.
The encoder sees the frame and a zero log-likelihood image (the model's second input, here
uninformative). Loss, optimiser, data (every object of every frame of --train_sequences train
sequences) and scoring (last frame of the first --eval_sequences eval sequences: per pixel the
argmax over a background logit 0 and each object's decoded logit) are decoder_capacity's.

Read against decoder_capacity (a code learned from the mask itself) at the same steps: near it,
the read can carry the outline when its weights cover the sprite, and what the model's attention
covers is the limit; far below it, the encoder's features are (try a wider encoder with
--encoders). Prints one JSON object (and writes it to --output).
"""
import itertools
import json
import time
from typing import Any, Dict, Sequence, Tuple

from absl import app, flags
import haiku as hk
import jax.numpy as jnp
from ml_collections import config_flags
import numpy as np

from datasets import registry
from experiments import decoder_capacity, setup_lib
from parts_jax import decoder as decoder_lib
from parts_jax.encoder import BottomUpEncoder

FLAGS = flags.FLAGS
WEIGHTS = ("mask", "interior")


def interior(masks: np.ndarray) -> np.ndarray:
  """Binary masks [N, H, W] -> the pixels whose 4 neighbours are all in the mask (off-image
  neighbours count as outside); a mask with no such pixel is returned whole."""
  m = np.pad(masks > 0, ((0, 0), (1, 1), (1, 1)))
  inner = (m[:, 1:-1, 1:-1] & m[:, :-2, 1:-1] & m[:, 2:, 1:-1] & m[:, 1:-1, :-2]
           & m[:, 1:-1, 2:])
  empty = ~inner.any(axis=(1, 2))
  inner[empty] = masks[empty] > 0
  return inner.astype(np.float32)


def weight_maps(masks: np.ndarray, weights: str) -> np.ndarray:
  """Binary masks [M, H, W] -> the weight maps standing in for the attention (`WEIGHTS`)."""
  return interior(masks) if weights == "interior" else masks.astype(np.float32)


def read_inputs(frames: np.ndarray, seg: np.ndarray, weights: str
                ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Frames [N, H, W, 3] with ids seg [N, H, W] -> (inputs [M, H, W, 4]: the object's frame and
  its weight map, masks [M, H, W] float32, frame index [M]) for every object (id > 0)."""
  rows = [(f, i) for f in range(len(seg)) for i in np.unique(seg[f]) if i > 0]
  frame_of = np.asarray([f for f, _ in rows], np.int64)
  masks = np.stack([seg[f] == i for f, i in rows]).astype(np.float32)
  inputs = np.concatenate([frames[frame_of].astype(np.float32),
                           weight_maps(masks, weights)[..., None]], -1)
  return inputs, masks, frame_of


def make_reader(model, encoder_channels: Sequence[int], encoder_kernel: int):
  """inputs [N, H, W, 4] (frame, weights) -> mask logits [N, H, W]: the encoder, values and
  Eq 6 of the refiner with the attention given, the refinement MLP's hidden sizes to z [N, D],
  the model's decoder."""
  def forward(inputs):
    n, h, w, _ = inputs.shape
    x, weights = inputs[..., :3], inputs[..., 3].reshape(n, h * w)
    o = BottomUpEncoder(encoder_channels, encoder_kernel, model.encoder.coord_channels)(
        x, jnp.zeros((n, h, w), x.dtype))
    o = hk.LayerNorm(-1, True, True, name="norm_inputs")(o.reshape(n, h * w, -1))
    values = hk.Linear(model.attention.value_dim, with_bias=False, name="values")(o)
    s_out = jnp.einsum("bn,bnd->bd", weights, values) / (
        jnp.sum(weights, axis=1, keepdims=True) + 1e-8)                         # Eq 6
    z = hk.nets.MLP(tuple(model.refine.mlp_hidden) + (model.slot_dim,), name="refine_mlp")(s_out)
    _, logits = decoder_lib.SoftSpatialBroadcastDecoder(
        tuple(model.image_size), tuple(model.decoder.channels), model.decoder.kernel_size,
        basis=model.decoder.basis, basis_hidden=model.decoder.basis_hidden)(z[:, None])
    return logits[:, 0]
  return hk.without_apply_rng(hk.transform(forward))


def read_segmentation(net, params, frames: np.ndarray, seg: np.ndarray, weights: str
                      ) -> Tuple[np.ndarray, float]:
  """Frames [N, H, W, 3], seg [N, H, W] -> (ids [N, H, W]: argmax over background logit 0 and
  each object's logit read from its weights, mean IoU of (logit > 0) with the object)."""
  def inputs_of(n, masks):
    frame = np.broadcast_to(frames[n].astype(np.float32), masks.shape + (3,))
    return np.concatenate([frame, weight_maps(masks, weights)[..., None]], -1)
  return decoder_capacity.decoded_segmentation(net, params, seg, inputs_of)


def run(config, encoders: Sequence[Tuple[Tuple[int, ...], int]], weights_list: Sequence[str],
        steps: int, train_sequences: int, eval_sequences: int, batch_size: int = 64,
        learning_rate: float = 1e-3, seed: int = 0, curve_every: int = 0) -> Dict[str, Any]:
  """The experiment of the module docstring for each encoder (channels, kernel) x weights."""
  def sequences(split, n):
    batch = registry.first_sequences(config.data, split, n, seed=seed,
                                     require_segmentations=True, what="read_capacity")
    return np.asarray(batch["video"]), np.asarray(batch["segmentations"])
  video_tr, seg_tr = sequences("train", train_sequences)
  video_ev, seg_ev = sequences("eval", eval_sequences)
  frames_tr = video_tr.reshape((-1,) + video_tr.shape[2:])
  flat_tr = seg_tr.reshape((-1,) + seg_tr.shape[2:])
  scored = {"": (video_ev[:, -1], seg_ev[:, -1])}
  seen = min(len(seg_tr), len(seg_ev))
  scored["train_"] = (video_tr[:seen, -1], seg_tr[:seen, -1])   # frames it was trained on
  num_true = int(max(seg_ev.max(), seg_tr.max())) + 1
  model = setup_lib.model_config(config)       # image_size from the data, as in training
  result = dict(train_sequences=len(seg_tr), num_eval_frames=len(seg_ev), steps=steps,
                batch_size=batch_size, slot_dim=model.slot_dim,
                value_dim=model.attention.value_dim, mlp_hidden=list(model.refine.mlp_hidden),
                decoder=dict(channels=list(model.decoder.channels),
                             kernel_size=model.decoder.kernel_size, basis=model.decoder.basis),
                reads=[])
  for (channels, kernel), weights in itertools.product(encoders, weights_list):
    t0, curve = time.time(), []
    inputs, masks, _ = read_inputs(frames_tr, flat_tr, weights)
    tag = dict(encoder_channels=list(channels), encoder_kernel=kernel, weights=weights)

    def score(net, params) -> Dict[str, float]:
      out = {}
      for prefix, (frames, seg) in scored.items():
        pred, iou = read_segmentation(net, params, frames, seg, weights)
        out[prefix + "fg_ari"] = decoder_capacity.mean_fg_ari(seg, pred, num_true)
        out[prefix + "iou"] = iou
      return out

    def on_every(step, net, params, mean_loss):
      curve.append(dict(step=step, train_loss=mean_loss, **score(net, params),
                        seconds=round(time.time() - t0, 1)))
      print(json.dumps(dict(**tag, **curve[-1])), flush=True)

    net, params, loss = decoder_capacity.fit(
        inputs, None, model.slot_dim, (), 0, steps, batch_size, learning_rate, seed,
        every=curve_every, on_every=on_every, targets=masks,
        net=make_reader(model, channels, kernel))
    result["reads"].append(dict(**tag, num_train_objects=len(inputs), final_train_loss=loss,
                                **score(net, params), seconds=round(time.time() - t0, 1)))
    if curve:
      result["reads"][-1]["curve"] = curve
    print(json.dumps(result["reads"][-1]), flush=True)
  return result


def parse_encoder(spec: str, model) -> Tuple[Tuple[int, ...], int]:
  """'config' -> the config's (channels, kernel); '64x64x64x64:5' -> ((64, 64, 64, 64), 5)."""
  if spec == "config":
    return tuple(model.encoder.channels), int(model.encoder.kernel_size)
  channels, _, kernel = spec.partition(":")
  try:
    return decoder_capacity.parse_channels(channels), int(kernel)
  except (ValueError, app.UsageError):
    raise app.UsageError(f"--encoders entries are 'config' or widths joined by 'x' and a kernel "
                         f"size (e.g. 64x64x64x64:5), got {spec!r}") from None


def main(argv):
  del argv
  bad = set(FLAGS.weights) - set(WEIGHTS)
  if bad:
    raise app.UsageError(f"--weights must be among {WEIGHTS}, got {sorted(bad)}")
  model = setup_lib.model_config(FLAGS.config)
  encoders = [parse_encoder(s, model) for s in FLAGS.encoders]
  result = run(FLAGS.config, encoders, FLAGS.weights, FLAGS.steps, FLAGS.train_sequences,
               FLAGS.eval_sequences, seed=FLAGS.seed, curve_every=FLAGS.curve_every)
  decoder_capacity.print_result(result, FLAGS.output)


if __name__ == "__main__":
  config_flags.DEFINE_config_file("config", "experiments/configs/sprites.py", "Data + model config.")
  flags.DEFINE_list("weights", list(WEIGHTS), f"Weight maps standing in for the attention, "
                    f"among {WEIGHTS}.")
  flags.DEFINE_list("encoders", ["config"], "Bottom-up encoders: 'config' (model.encoder) or "
                    "widths joined by 'x' and a kernel size, e.g. 64x64x64x64:5.")
  flags.DEFINE_integer("steps", 5000, "Training steps per read.")
  flags.DEFINE_integer("curve_every", 0, "> 0: also score every this many steps.")
  flags.DEFINE_integer("train_sequences", 4096, "Train sequences whose objects are the data.")
  flags.DEFINE_integer("eval_sequences", 256, "Eval sequences (last frame) scored.")
  flags.DEFINE_integer("seed", 0, "Seed of the init and the batches.")
  flags.DEFINE_string("output", None, "Also write the JSON here.")
  app.run(main)
