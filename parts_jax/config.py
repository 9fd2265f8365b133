"""Model configuration: defaults sized for a 2-core CPU, and validation with one-line errors.

Paper-sized settings live in the dataset configs under experiments/configs/.
"""
from typing import Tuple

import ml_collections

PREDICTOR_KINDS = ("transformer_lstm", "lstm")
TIME_LOOPS = ("auto", "scan", "unroll", "windows")
CONV_IMPLS = ("auto", "xla", "im2col")
DECODER_BASES = ("linear", "mlp", "relative")   # spatial bases of parts_jax/decoder.py
ATTENTION_BIASES = ("none", "log_masks", "log_responsibilities")   # parts_jax/attention.py
PIXEL_LIKELIHOODS = ("mixture", "blend")        # parts_jax/likelihood.py
FIT_OPTIMIZERS = ("adam", "sgd")                # semi_amortized.optimizer (optax's)
DISTILL_SPACES = ("lambda", "masks")            # semi_amortized.distill_space


def get_model_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.image_size = (32, 32)        # (H, W) of the frames the decoder produces
  c.num_slots = 7                # K (parameters do not depend on K)
  c.slot_dim = 16                # D; lambda = (mu, log sigma) in R^{K x 2D}
  c.beta = 0.5                   # Eq 7
  c.sigma_x = 0.1                # fixed pixel std of Eq 2
  c.likelihood = "mixture"       # Eq 2 (paper); "blend": N(x; sum_k m_k C_k, sigma_x^2), the
                                 # MSE of Slot Attention / SAVi (a study candidate)
  c.num_refine_steps = 1         # N (paper default 1)
  c.first_frame_refine_steps = 0  # 0: N at every step (paper); else N_0 >= N refinement steps at
                                 # t = 0 (the first N_0 - N before the N whose decodes enter
                                 # the loss; not in the paper: frame 0 starts from the prior)
  c.tbptt = 4                    # stop state gradients every `tbptt` steps; 0 = off
  c.burn_in = 0                  # > 0: refine only the first `burn_in` steps, then predict (4.2)
  # Variants (Table 2, section 5).
  c.slot_attention = True        # False: IODINE-style refinement (S-IODINE, OP3 baselines)
  c.top_down = True              # False: queries from lambda only (5.2)
  c.predictive_prior = False     # True: OP3-style prior = predictor output (5.1)
  c.use_actions = True           # False: actions are not fed to predictor / refiner
  c.second_order = False         # True: no stop-gradient on the dL/dlambda input
  # Candidates of the segmentation study (experiments/configs/study.py); defaults = as before.
  c.action_scale = 1.0           # actions are multiplied by this before entering P and E
  c.refine_lambda_input = False  # True: lambda_k^{n-1} also enters the refinement MLP (Eq 3
                                 # lists it as an input of E; 3.2.3 names grad and action)
  c.query_layernorm = False      # True: LayerNorm on s_k before the query projection (Eq 4),
                                 # as Slot Attention normalises its slots
  c.decode_refined = False       # True: also decode lambda_t^N and average its ELBO into the
                                 # step's loss; the masks are then lambda_t^N's (paper: N = 1's
                                 # lambda_t^1 "do[es] not get decoded", 3.2.3)
  # Semi-amortised training (not in the paper; SA-VAE, Kim et al. 2018): with steps > 0, after
  # the N learned refinements lambda_t^N is fitted further by `steps` steps of `optimizer` on
  # -ELBO(x_t) (decoder fixed, learning_rate). With fitted_elbo the ELBO at that fitted lambda,
  # held fixed, joins the step's loss ("fitted_elbo"): a decoder term only (docs/study.md runs
  # 17-18). With distill = w > 0 the loss subtracts w ||lambda_t^N - fitted||^2 ("distill"):
  # the refinement is trained towards the fitted posterior, which is held fixed (run 21).
  # distill_space "masks" (run 23) measures that distance where the segmentation is: the KL
  # sum_i KL(m_i(fitted mu) || m_i(lambda_t^N's mu)) between the decoder masks (Eq 1) of the two
  # posterior means, summed over pixels, in place of the squared distance in lambda.
  # lambda_t^N itself goes on to the predictor and the masks measured are the model's own.
  # Evaluation runs without the fit (PARTS.for_evaluation).
  # optimizer: "adam" (runs 17-18) or "sgd"; eps: Adam's epsilon (optax's default 1e-8; an
  # Adam step moves a coordinate ~learning_rate whatever its gradient, unless |grad| << eps).
  c.semi_amortized = ml_collections.ConfigDict(dict(steps=0, learning_rate=0.03,
                                                    optimizer="adam", eps=1e-8,
                                                    fitted_elbo=True, distill=0.0,
                                                    distill_space="lambda"))
  # Lowering.
  c.time_loop = "auto"           # "scan", "unroll", "windows" or "auto"; see resolve_lowering
  c.conv_impl = "auto"           # "xla", "im2col" or "auto"; see resolve_lowering, layers.py
  # Sizes.
  # basis: "linear" (paper, 3.1), "mlp" or "relative" (slot-centric); see parts_jax/decoder.py.
  c.decoder = ml_collections.ConfigDict(dict(channels=(32, 32, 32), kernel_size=3,
                                             basis="linear", basis_hidden=64))
  c.encoder = ml_collections.ConfigDict(
      dict(channels=(32, 32), kernel_size=3, coord_channels=True))
  # logit_bias: "none" (paper), "log_masks" or "log_responsibilities" added to the attention
  # logits of Eq 5 (a study candidate; parts_jax/attention.py).
  c.attention = ml_collections.ConfigDict(dict(qk_dim=32, value_dim=32, logit_bias="none"))
  c.refine = ml_collections.ConfigDict(dict(mlp_hidden=(128,)))
  c.iodine = ml_collections.ConfigDict(
      dict(channels=(32, 32, 32), kernel_size=3, strides=(2, 2, 2)))
  c.predictor = ml_collections.ConfigDict(dict(
      kind="transformer_lstm", model_size=64, num_layers=1, num_heads=2, mlp_size=128,
      lstm_size=64, residual=True))
  return c


def resolve_lowering(c: ml_collections.ConfigDict, backend: str) -> Tuple[str, str]:
  """(time_loop, conv_impl) for a backend ("cpu", "gpu", "tpu").

  time_loop: "scan", "unroll" or "windows" (parts_jax/lowering.py runs them; "windows" keeps
    compile time and memory flat in T, and no convolution gradient runs inside a loop, which is
    slow on XLA:CPU); "auto": "windows" on CPU, "scan" elsewhere.
  conv_impl "auto": "im2col" for a scan on CPU (convolution gradients inside loops are slow
  there), "xla" otherwise.
  """
  loop = c.time_loop
  if loop == "auto":
    loop = "windows" if backend == "cpu" else "scan"
  impl = c.conv_impl
  if impl == "auto":
    impl = "im2col" if (backend == "cpu" and loop == "scan") else "xla"
  return loop, impl


class ConfigError(ValueError):
  """A bad configuration value; the message names the field."""


def check_positive_int(path: str, value) -> None:
  """Raises ConfigError unless `value` (the field config.<path>) is an int > 0."""
  if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
    raise ConfigError(f"config.{path} must be a positive integer, got {value!r}")


def validate_model_config(c: ml_collections.ConfigDict) -> None:
  """Raises ConfigError (one line, naming the field) for any bad value."""
  check_positive_int("model.num_slots", c.num_slots)
  check_positive_int("model.slot_dim", c.slot_dim)
  check_positive_int("model.num_refine_steps", c.num_refine_steps)
  n0 = c.get("first_frame_refine_steps", 0)
  if (not isinstance(n0, int) or isinstance(n0, bool) or n0 < 0
      or 0 < n0 < c.num_refine_steps):
    raise ConfigError(f"config.model.first_frame_refine_steps must be 0 (off) or an integer >= "
                      f"model.num_refine_steps ({c.num_refine_steps}), got {n0!r}")
  if len(tuple(c.image_size)) != 2:
    raise ConfigError(f"config.model.image_size must be (H, W), got {c.image_size!r}")
  for i, s in enumerate(c.image_size):
    check_positive_int(f"model.image_size[{i}]", s)
  if c.decode_refined and c.predictive_prior:
    raise ConfigError("config.model.decode_refined=True has no meaning with predictive_prior=True, "
                      "which already decodes (only) the refined lambda_t^N; set one of them")
  sa = c.semi_amortized
  if not isinstance(sa.steps, int) or isinstance(sa.steps, bool) or sa.steps < 0:
    raise ConfigError(f"config.model.semi_amortized.steps must be an integer >= 0 (0 = off), "
                      f"got {sa.steps!r}")
  if sa.steps and not sa.learning_rate > 0:
    raise ConfigError(f"config.model.semi_amortized.learning_rate must be > 0, "
                      f"got {sa.learning_rate!r}")
  if sa.optimizer not in FIT_OPTIMIZERS:
    raise ConfigError(f"config.model.semi_amortized.optimizer must be one of {FIT_OPTIMIZERS}, "
                      f"got {sa.optimizer!r}")
  if not sa.eps > 0:
    raise ConfigError(f"config.model.semi_amortized.eps must be > 0, got {sa.eps!r}")
  if not sa.distill >= 0:
    raise ConfigError(f"config.model.semi_amortized.distill must be >= 0 (0 = off), "
                      f"got {sa.distill!r}")
  if sa.distill_space not in DISTILL_SPACES:
    raise ConfigError(f"config.model.semi_amortized.distill_space must be one of "
                      f"{DISTILL_SPACES}, got {sa.distill_space!r}")
  if sa.distill and not sa.steps:
    raise ConfigError("config.model.semi_amortized.distill > 0 needs a fit to distil: set "
                      "config.model.semi_amortized.steps > 0")
  if sa.steps and not (sa.fitted_elbo or sa.distill):
    raise ConfigError("config.model.semi_amortized.steps > 0 with fitted_elbo=False and "
                      "distill=0 fits lambda for nothing: set one of them, or steps=0")
  if not c.beta >= 0:
    raise ConfigError(f"config.model.beta must be >= 0, got {c.beta!r}")
  if not c.action_scale > 0:
    raise ConfigError(f"config.model.action_scale must be > 0, got {c.action_scale!r}")
  if not c.sigma_x > 0:
    raise ConfigError(f"config.model.sigma_x must be > 0, got {c.sigma_x!r}")
  if c.likelihood not in PIXEL_LIKELIHOODS:
    raise ConfigError(f"config.model.likelihood must be one of {PIXEL_LIKELIHOODS}, "
                      f"got {c.likelihood!r}")
  if not isinstance(c.tbptt, int) or c.tbptt < 0:
    raise ConfigError(f"config.model.tbptt must be an integer >= 0 (0 = off), got {c.tbptt!r}")
  if not isinstance(c.burn_in, int) or c.burn_in < 0:
    raise ConfigError(f"config.model.burn_in must be an integer >= 0, got {c.burn_in!r}")
  if c.predictor.kind not in PREDICTOR_KINDS:
    raise ConfigError(f"config.model.predictor.kind must be one of {PREDICTOR_KINDS}, "
                      f"got {c.predictor.kind!r}")
  if c.time_loop not in TIME_LOOPS:
    raise ConfigError(f"config.model.time_loop must be one of {TIME_LOOPS}, got {c.time_loop!r}")
  if c.conv_impl not in CONV_IMPLS:
    raise ConfigError(f"config.model.conv_impl must be one of {CONV_IMPLS}, got {c.conv_impl!r}")
  for name in ("decoder.channels", "encoder.channels", "refine.mlp_hidden"):
    group, field = name.split(".")
    values = tuple(c[group][field])
    if not values or any((not isinstance(v, int)) or v <= 0 for v in values):
      raise ConfigError(f"config.model.{name} must be a non-empty tuple of positive ints, "
                        f"got {values!r}")
  if c.decoder.basis not in DECODER_BASES:
    raise ConfigError(f"config.model.decoder.basis must be one of {DECODER_BASES}, "
                      f"got {c.decoder.basis!r}")
  check_positive_int("model.decoder.basis_hidden", c.decoder.basis_hidden)
  if c.attention.logit_bias not in ATTENTION_BIASES:
    raise ConfigError(f"config.model.attention.logit_bias must be one of {ATTENTION_BIASES}, "
                      f"got {c.attention.logit_bias!r}")
  if c.attention.logit_bias != "none" and not c.slot_attention:
    raise ConfigError("config.model.attention.logit_bias biases the slot attention; it has no "
                      "meaning with slot_attention=False")
  if c.predictor.model_size % c.predictor.num_heads:
    raise ConfigError("config.model.predictor.model_size must be divisible by num_heads, got "
                      f"{c.predictor.model_size} and {c.predictor.num_heads}")
