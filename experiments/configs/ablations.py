"""Table 2 rows and section 5 ablations as named presets of the one PARTS model.

  --config=experiments/configs/ablations.py:op3            (on sprites)
  --config=experiments/configs/ablations.py:op3,room3d     (on another dataset config)

Preset     SA  fixed prior  actions  transformer   (Table 2)
s_iodine   x   v            x        x
op3        x   x            v        x
sa_fixed   v   v            x        x
sa_pred    v   x            v        x
sa_pred_trx v  x            v        v
parts_no_transformer v v    v        x
parts      v   v            v        v
Section 5: no_top_down (5.2), predictive_prior (5.1, Fig 7), no_slot_attention, no_actions,
rollout (4.2: 4 burn-in steps, then prediction from actions only).
"""
import importlib

from parts_jax.config import ConfigError

PRESETS = {
    "s_iodine": dict(slot_attention=False, predictive_prior=False, use_actions=False,
                     predictor="lstm"),
    "op3": dict(slot_attention=False, predictive_prior=True, use_actions=True,
                predictor="lstm"),
    "sa_fixed": dict(slot_attention=True, predictive_prior=False, use_actions=False,
                     predictor="lstm"),
    "sa_pred": dict(slot_attention=True, predictive_prior=True, use_actions=True,
                    predictor="lstm"),
    "sa_pred_trx": dict(slot_attention=True, predictive_prior=True, use_actions=True,
                        predictor="transformer_lstm"),
    "parts_no_transformer": dict(slot_attention=True, predictive_prior=False, use_actions=True,
                                 predictor="lstm"),
    "parts": dict(),
    "no_top_down": dict(top_down=False),
    "predictive_prior": dict(predictive_prior=True),
    "no_slot_attention": dict(slot_attention=False),
    "no_actions": dict(use_actions=False),
    "rollout": dict(burn_in=4),
}
DATASETS = ("sprites", "room3d", "playroom", "clevrer", "robotics_arm", "movi")


def get_config(arg: str = "parts"):
  preset, _, dataset = arg.partition(",")
  dataset = dataset or "sprites"
  if preset not in PRESETS:
    raise ConfigError(f"unknown ablation preset {preset!r}; valid: {', '.join(PRESETS)}")
  if dataset not in DATASETS:
    raise ConfigError(f"unknown dataset config {dataset!r}; valid: {', '.join(DATASETS)}")
  c = importlib.import_module(f"experiments.configs.{dataset}").get_config()
  for key, value in PRESETS[preset].items():
    if key == "predictor":
      c.model.predictor.kind = value
    else:
      c.model[key] = value
  if preset == "rollout":
    c.data.num_frames = max(c.data.num_frames, 16)
    c.eval.burn_in, c.eval.rollout_steps = 4, 12
  c.preset = preset
  return c
