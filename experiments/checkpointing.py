"""Orbax checkpoints of the train state: params, optimizer state, step and RNG.

The data position is the step: batches are a pure function of (seed, step) (datasets/pipeline.py),
so restoring the step restores the data stream. Orbax writes each checkpoint to a temporary
directory and renames it when complete, so a kill during a save leaves the previous one intact.
"""
import os
from typing import Any, Dict, List, Optional

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp


def manager(workdir: str, max_to_keep: int = 3) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      os.path.abspath(os.path.join(workdir, "checkpoints")),
      options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))


def save(mngr: ocp.CheckpointManager, state: Dict[str, Any], force: bool = False) -> None:
  step = int(state["step"])
  if mngr.latest_step() == step:
    return
  mngr.save(step, args=ocp.args.StandardSave(state), force=force)
  mngr.wait_until_finished()


def restore(mngr: ocp.CheckpointManager, target: Dict[str, Any],
            step: Optional[int] = None) -> Optional[Dict[str, Any]]:
  """Restores the latest (or given) checkpoint into the structure of `target`; None if none."""
  step = mngr.latest_step() if step is None else step
  if step is None:
    return None
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
  restored = mngr.restore(step, args=ocp.args.StandardRestore(abstract))
  # Keep the exact container types of `target` (optax states are NamedTuples).
  return jax.tree.unflatten(jax.tree.structure(target), jax.tree.leaves(restored))


def step_array(step: int) -> jnp.ndarray:
  return jnp.asarray(step, jnp.int32)


def averaged_steps(workdir: str, step: Optional[int] = None, average: int = 1) -> List[int]:
  """The kept checkpoint steps that `restore_params(..., step, average)` averages: the last
  `average` kept steps up to `step` (default: the latest), fewer when fewer are kept.
  Raises FileNotFoundError when `workdir` has no checkpoint (of `step`)."""
  directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"{directory} not found: train first with python -m "
                            f"experiments.train --workdir={workdir}")
  steps = sorted(manager(workdir).all_steps())
  if not steps:
    raise FileNotFoundError(f"no checkpoint in {directory}: train first with python -m "
                            f"experiments.train --workdir={workdir}")
  step = steps[-1] if step is None else int(step)
  if step not in steps:
    raise FileNotFoundError(f"no checkpoint of step {step} in {directory}; it holds steps "
                            f"{', '.join(map(str, steps))}")
  if int(average) < 1:
    raise ValueError(f"average must be >= 1 checkpoints, got {average}")
  return [s for s in steps if s <= step][-int(average):]


def restore_params(workdir: str, params: Any, step: Optional[int] = None,
                   sharding: Optional[jax.sharding.Sharding] = None, average: int = 1):
  """Restores only the model parameters of a train-state checkpoint: (params, step).

  A partial restore of the "params" entry of the state saved by `save`, so neither the optimizer
  nor its state is needed. `params` (e.g. `model.init(...)`, or its shapes) gives the expected
  structure, shapes and dtypes; `sharding` places the arrays (default: the first device).
  `step` None restores the latest checkpoint. `average` > 1 returns the mean of the parameters
  of the last `average` kept checkpoints up to `step` (`averaged_steps`; checkpoint averaging as
  in stochastic weight averaging, Izmailov et al. 2018; `eval.average_checkpoints`); the step
  returned is `step`. Raises FileNotFoundError when `workdir` has no checkpoint (of `step`),
  ValueError when the checkpoint does not fit `params` (a model built from another config than
  the trained one).
  """
  steps = averaged_steps(workdir, step, average)
  mngr = manager(workdir)
  trees = [_restore_one(mngr, workdir, params, s, sharding) for s in steps]
  return (trees[0] if len(trees) == 1 else mean_params(trees)), steps[-1]


def mean_params(trees: List[Any]) -> Any:
  """The leaf-wise mean of parameter trees of one structure (in float32, cast back to each
  leaf's dtype): the checkpoint average of `restore_params(..., average=N)`."""
  mean = lambda *leaves: (sum(leaf.astype(jnp.float32) for leaf in leaves)
                          / len(leaves)).astype(leaves[0].dtype)
  return jax.tree.map(mean, *trees)


def _restore_one(mngr: ocp.CheckpointManager, workdir: str, params: Any, step: int,
                 sharding: Optional[jax.sharding.Sharding]) -> Any:
  directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
  problems = _shape_mismatches(directory, step, params)
  if problems:
    raise ValueError(f"checkpoint {directory}/{step} does not fit the model built from the "
                     f"config ({len(problems)} parameters differ: {'; '.join(problems[:4])}); "
                     "build the model from the run's own config (WORKDIR/config.json)")
  sharding = sharding or jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                          dict(step=step_array(0), params=params))
  try:
    restored = mngr.restore(step, args=ocp.args.PyTreeRestore(
        item=abstract, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract),
        partial_restore=True))
  except (ValueError, KeyError, TypeError) as e:
    raise ValueError(f"checkpoint {directory}/{step} does not fit the model built from the "
                     f"config ({type(e).__name__}: {str(e)[:500]}); build the model from "
                     "the run's own config (WORKDIR/config.json)") from e
  if int(restored["step"]) != step:
    raise ValueError(f"checkpoint {directory}/{step} holds the state of step "
                     f"{int(restored['step'])}")
  tree = jax.tree.structure(params)
  return jax.tree.unflatten(tree, jax.tree.leaves(restored["params"]))


def _shape_mismatches(directory: str, step: int, params: Any):
  """'name: model shape vs checkpoint shape' for every parameter of `params` that the checkpoint
  lacks or stores with another shape (read from the checkpoint's metadata only)."""
  meta = ocp.CheckpointManager(directory, item_handlers=ocp.StandardCheckpointHandler())
  saved = getattr(meta.item_metadata(step), "tree", None)
  if not isinstance(saved, dict) or "params" not in saved:
    return []   # Unknown layout: let the restore itself check.
  shapes = lambda tree: {jax.tree_util.keystr(path): tuple(leaf.shape) for path, leaf
                         in jax.tree_util.tree_flatten_with_path(tree)[0]}
  want, have = shapes(params), shapes(saved["params"])
  return [f"{name}: model {shape} vs checkpoint {have.get(name, 'missing')}"
          for name, shape in sorted(want.items()) if have.get(name) != shape]
