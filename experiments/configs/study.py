r"""The segmentation study: candidate recipe changes as presets of the default sprites config.

Each preset changes one thing against `baseline` (the sprites config with `BASELINE`: the default
when the study ran), except `combined`; every change is a config value (paper default or earlier
default noted). The study:

  python -m experiments.sweep --config=experiments/configs/study.py \
      --sweep="presets=baseline,eps_1e-10,lr_1e-3,lambda_input,query_layernorm,action_scale,refine_2,decode_refined,sigma_x_0.05,slow_motion,still,combined;seeds=0,1" \
      --workdir_root=workdirs/study --jobs=2 --config.train.num_steps=1500

That is 24 runs: about 13 h on the project's 2-core CPU (0.5 steps/s per run, N = 2 half that),
so on a CPU run a few presets at a time, as docs/study.md's runs 1-4 do (each with its own
command there); on a GPU: --jobs=8 and `XLA_PYTHON_CLIENT_PREALLOCATE=false`. results.md gets
the headline FG-ARI, the four diagnostic FG-ARIs, MSE and the training speed per row, mean +-
std over seeds. `wide_decoder` and `relative_decoder` are measured against `refine_2` (the sprites
default since docs/study.md run 5): `--sweep="presets=refine_2,relative_decoder;seeds=0,1"`;
so are `beta_0.1`, `slot_dim_32` and `sigma_x_0.05_refine_2` (run 7: what the slots hold) and
`lambda_input_refine_2` (run 8: how the inference reads the frame), `sigma_x_0.2_refine_2` and
`refine_3` (run 9), `sa_encoder_refine_2` (run 9's next lever: what the attention reads from),
`sigma_x_0.3_refine_2` (run 10, the shipped run's recipe since step 54,415), its stronger doses
`sigma_x_0.5_refine_2`, `sigma_x_0.7_refine_2` and `sigma_x_1.0_refine_2` (run 19) and
`sigma_x_1.4_refine_2` and `sigma_x_2.0_refine_2` (run 20), and
`distill_0.05` and `distill_masks_0.0025` against `sigma_x_1.0_refine_2` (runs 21 and 23: the
refinement trained towards fitted posteriors, in lambda and in the masks),
`attention_bias_refine_2` (run 11: the responsibilities steer the attention) and
`blend_refine_2` (run 13: Slot Attention's blended-image likelihood instead of Eq 2's mixture).
  --config=experiments/configs/study.py:combined     one preset as a training config
"""
from experiments.configs import common, sprites
from parts_jax.config import ConfigError


def _mask_dose(sigma_x: float, beta: float) -> dict:
  """`refine_2` with the mask term weighted (sigma_x / 0.1)^2 against the colour term of Eq 2;
  beta, about 0.5 x (0.1 / sigma_x)^2, keeps the KL's price against colour (the value as run)."""
  return {"model.num_refine_steps": 2, "model.sigma_x": sigma_x, "model.beta": beta}


def _distill(weight: float, space: str = "lambda") -> dict:
  """`sigma_x_1.0_refine_2` with the refinement distilled towards 20-step fitted posteriors,
  the distance taken in `space` (model.semi_amortized.distill_space)."""
  return {**_mask_dose(1.0, 0.005), "model.semi_amortized.steps": 20,
          "model.semi_amortized.fitted_elbo": False, "model.semi_amortized.distill": weight,
          **({} if space == "lambda" else {"model.semi_amortized.distill_space": space})}


# preset -> {config field: value}. Defaults they replace: train.rmsprop_eps 1e-6 and
# train.learning_rate 3e-4 (chosen; the paper gives RMSProp and clip 5.0 only), action_scale 1,
# refine_lambda_input False, query_layernorm False and decode_refined False (this implementation),
# num_refine_steps 1 (paper default), sigma_x 0.1 (chosen), sprites camera step <= 3 px and
# speed <= 1.6 px/frame.
# The recipe every row was measured against: the sprites default as it was when the study ran
# (N = 1), pinned so that `baseline` keeps meaning that row if the sprites default changes.
BASELINE = {"model.num_refine_steps": 1}
# The shipped run's recipe over runs 10-18 (`sigma_x_0.3_refine_2`), which run 17's rows are
# measured against; since run 19 the shipped run trains at `sigma_x_1.0_refine_2`.
SHIPPED = _mask_dose(0.3, 0.0556)
PRESETS = {
    "baseline": {},
    "eps_1e-10": {"train.rmsprop_eps": 1e-10},
    "lr_1e-3": {"train.learning_rate": 1e-3},
    "lambda_input": {"model.refine_lambda_input": True},
    "query_layernorm": {"model.query_layernorm": True},
    "action_scale": {"model.action_scale": 1.0 / 3.0},
    "refine_2": {"model.num_refine_steps": 2},
    "decode_refined": {"model.decode_refined": True},
    "sigma_x_0.05": {"model.sigma_x": 0.05},
    "slow_motion": {"data.max_camera_step": 1, "data.max_speed": 0.5},
    "still": {"data.max_camera_step": 0, "data.max_speed": 0.0},
    # Against `refine_2` (the sprites default since run 5), not `baseline`: a decoder twice as
    # wide and one layer deeper (default channels (32, 32, 32); docs/study.md run 5: the default
    # decoder draws round masks).
    "wide_decoder": {"model.num_refine_steps": 2, "model.decoder.channels": (64, 64, 64, 64)},
    # Against `refine_2` too: the slot-centric spatial basis (model.decoder.basis, paper default
    # "linear"; parts_jax/decoder.py): each slot draws in its own frame, moved by p_k.
    "relative_decoder": {"model.num_refine_steps": 2, "model.decoder.basis": "relative"},
    # Against `refine_2` too: what the inference writes into the slots (docs/study.md run 7: the
    # slots hold where each sprite is, not its outline; read out with experiments.mask_probe).
    # Defaults: model.beta 0.5, model.slot_dim 16, model.sigma_x 0.1 (chosen; the paper gives none).
    "beta_0.1": {"model.num_refine_steps": 2, "model.beta": 0.1},
    "slot_dim_32": {"model.num_refine_steps": 2, "model.slot_dim": 32},
    "sigma_x_0.05_refine_2": {"model.num_refine_steps": 2, "model.sigma_x": 0.05},
    # Against `refine_2` too: how the inference reads the frame (docs/study.md run 8: a 5x lower
    # beta adds ~10 nats per object slot but not the outline). lambda_k into the refinement MLP
    # (Eq 3 lists lambda^{n-1} as an input of E); default refine_lambda_input False.
    "lambda_input_refine_2": {"model.num_refine_steps": 2, "model.refine_lambda_input": True},
    # Against `refine_2` too (docs/study.md run 9, CPU continuations of checkpoints/sprites):
    # the mask term's weight against the colour term. sigma_x 0.1 -> 0.2 divides the colour
    # term of Eq 2 by 4; beta 0.5 -> 0.125 keeps the KL's price against it as before, so
    # relative to both the mask's log m_k counts 4x. And N = 3 refinement steps in training.
    "sigma_x_0.2_refine_2": _mask_dose(0.2, 0.125),
    # Run 10: the masks counted 9x (beta = 0.5 x (0.1 / 0.3)^2 keeps the KL's price against
    # colour); on the plateau it beat sigma_x 0.2 and the control (2 seeds each).
    "sigma_x_0.3_refine_2": _mask_dose(0.3, 0.0556),
    # Run 19: stronger doses on the plateau, beta = 0.5 x (0.1 / sigma_x)^2 as above (25x, 49x,
    # 100x): FG-ARI rises with the dose and ARI falls (docs/study.md).
    "sigma_x_0.5_refine_2": _mask_dose(0.5, 0.02),
    "sigma_x_0.7_refine_2": _mask_dose(0.7, 0.0102),
    "sigma_x_1.0_refine_2": _mask_dose(1.0, 0.005),
    # Run 20: 196x and 400x; the dose saturates (+0.02 FG-ARI over 100x, ARI -0.02).
    "sigma_x_1.4_refine_2": _mask_dose(1.4, 0.00255),
    "sigma_x_2.0_refine_2": _mask_dose(2.0, 0.00125),
    "refine_3": {"model.num_refine_steps": 3},
    # Against `refine_2` too: what the attention reads from (run 9's next lever). Slot
    # Attention's CNN (4 layers of 64 channels, 5 x 5) instead of the default (32, 32) of 3 x 3
    # (a 5 x 5 receptive field; the paper gives no sizes for the CIFAR-like bottom-up encoder).
    "sa_encoder_refine_2": {"model.num_refine_steps": 2,
                            "model.encoder.channels": (64, 64, 64, 64),
                            "model.encoder.kernel_size": 5},
    # Against `refine_2` (run 11; on the plateau it ran with `sigma_x_0.3_refine_2`'s fields
    # too): where the attention reads. The mixture's log responsibilities added to the attention logits of Eq 5 (not in the paper;
    # default model.attention.logit_bias "none"), so a slot reads the pixels the decode at
    # lambda^{n-1} gives it, outline included (the trained attention wins 35-40 % of a sprite's
    # border). No new parameters: it also continues a trained run.
    "attention_bias_refine_2": {"model.num_refine_steps": 2,
                                "model.attention.logit_bias": "log_responsibilities"},
    # Against `refine_2` too (run 13): the pixel likelihood. The Gaussian on the blended image
    # sum_k m_k C_k (Slot Attention's and SAVi's MSE) instead of Eq 2's mixture (default
    # model.likelihood "mixture", the paper's): a soft mask that mixes two colours is wrong at
    # that pixel, where under the mixture it costs only log m_k (issue cause 4).
    "blend_refine_2": {"model.num_refine_steps": 2, "model.likelihood": "blend"},
    # Against SHIPPED (run 17, continuations of checkpoints/sprites): semi-amortised training
    # (not in the paper; default model.semi_amortized.steps 0): 5 Adam steps on lambda_t^N
    # (learning rate 0.03), decoder fixed, and the ELBO there trains the decoder (run 16:
    # fitted posteriors hold shapes the refinement's do not).
    "semi_amortized_5": {**SHIPPED, "model.semi_amortized.steps": 5},
    "semi_amortized_20": {**SHIPPED, "model.semi_amortized.steps": 20},   # run 18: it hurts
    # Against `sigma_x_1.0_refine_2` (the shipped run's recipe since run 19; run 21): the
    # refinement distilled towards the fitted posterior (20 Adam steps from lambda_t^N at 0.03),
    # no fitted ELBO; weight 0.05 puts the term's gradient just under the ELBO's on the shipped
    # checkpoint (docs/study/run21/distill_scale.py).
    "distill_0.05": _distill(0.05),
    # Run 23: the same towards the fit's decoder masks (the KL between the masks of the two
    # posterior means, distill_space "masks"); weight 0.0025 puts its gradient where run 21's
    # was (docs/study/run21/distill_scale.py ... masks).
    "distill_masks_0.0025": _distill(0.0025, "masks"),
    "combined": {"train.rmsprop_eps": 1e-10, "train.learning_rate": 1e-3,
                 "model.refine_lambda_input": True, "model.query_layernorm": True,
                 "model.action_scale": 1.0 / 3.0},
}


def get_config(arg: str = "baseline"):
  preset, _, dataset = arg.partition(",")
  if preset not in PRESETS:
    raise ConfigError(f"unknown study preset {preset!r}; valid: {', '.join(PRESETS)}")
  if dataset not in ("", "sprites"):
    raise ConfigError(f"the study runs on sprites only, got {dataset!r}")
  c = common.set_fields(common.set_fields(sprites.get_config(), BASELINE), PRESETS[preset])
  c.preset = preset
  return c
