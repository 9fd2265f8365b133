"""Run 21's choice of the distillation weight: on a checkpoint, the size of the distillation term
and its parameter gradient against the ELBO loss's (docs/study.md run 21).

  python docs/study/run21/distill_scale.py [WORKDIR] [FIT_STEPS] [EPS] [SPACE]
      (defaults checkpoints/sprites, 20, 1e-8: Adam's epsilon of the fit, lambda:
      semi_amortized.distill_space; run 23 used masks)

One batch (the first 8 eval sequences), the run's own config: the gradient of the loss (3.3)
with semi_amortized off, and with semi_amortized.steps = FIT_STEPS, fitted_elbo False and
distill = 1 (Adam, learning rate 0.03, epsilon EPS); their difference is the distillation term's gradient at weight 1. Prints JSON: the
per-frame terms of both and the gradient norms, all parameters and per module.
"""
import json
import sys

import jax
import optax

from experiments import checkpointing, position_probe, setup_lib
from parts_jax import lowering


def main(workdir: str = "checkpoints/sprites", fit_steps: int = 20, eps: float = 1e-8,
         space: str = "lambda"):
  config, batch = position_probe.run_and_sequences(workdir, "eval", 8, "distill_scale")
  batch = {k: batch[k] for k in ("video", "actions")}
  frames = batch["video"].shape[0] * batch["video"].shape[1]
  result, grads = dict(workdir=workdir, fit_steps=fit_steps, eps=eps, space=space), {}
  for name, (steps, distill) in {"elbo": (0, 0.0), "distill": (fit_steps, 1.0)}.items():
    c = setup_lib.config_for_workdir(workdir)
    c.model.semi_amortized.update(steps=steps, fitted_elbo=False, distill=distill, eps=eps,
                                  learning_rate=0.03, optimizer="adam", distill_space=space)
    model = setup_lib.make_model(c)
    params = jax.eval_shape(model.init, jax.random.PRNGKey(0), batch)
    params, result["step"] = checkpointing.restore_params(workdir, params)
    grads[name], sums = lowering.Gradients(model)(params, jax.random.PRNGKey(5), batch)
    result[f"per_frame_{name}_run"] = {k: float(v) / frames for k, v in sums.items()}
  term = jax.tree.map(lambda a, b: a - b, grads["distill"], grads["elbo"])
  modules = sorted({k.split("/")[0] for k in term})
  norm = lambda g, prefix: float(optax.tree.norm({k: v for k, v in g.items()
                                                  if k.startswith(prefix)}))
  result["grad_norm_elbo_loss"] = {m or "all": norm(grads["elbo"], m) for m in [""] + modules}
  result["grad_norm_distill_w1"] = {m or "all": norm(term, m) for m in [""] + modules}
  print(json.dumps(result, indent=1))


if __name__ == "__main__":
  main(*sys.argv[1:2], *map(int, sys.argv[2:3]), *map(float, sys.argv[3:4]), *sys.argv[4:5])
