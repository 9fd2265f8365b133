"""Shared set-up for the entry points: config checks, model building, devices (mesh, global
batches, host fetches), workdir files."""
import json
import logging as std_logging
import os
from typing import Any, Dict, Optional, Tuple

from absl import flags
from absl import logging as absl_logging
import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from datasets import base
from experiments import checkpointing
from parts_jax import PARTS, build_model
from parts_jax.config import (ConfigError, check_positive_int, get_model_config,
                              validate_model_config)

DATA_AXIS = "data"


def model_config(config: ml_collections.ConfigDict, num_slots: int = -1):
  """config.model with image_size taken from config.data (and K overridden if num_slots > 0)."""
  m = ml_collections.ConfigDict(config.model.to_dict())
  m.image_size = (config.data.image_size, config.data.image_size)
  if num_slots > 0:
    m.num_slots = num_slots
  return m


def check_config(config: ml_collections.ConfigDict) -> None:
  """One-line ConfigError for any bad value, before anything is built or compiled."""
  check_positive_int("train.num_steps", config.train.num_steps)
  check_positive_int("train.batch_size", config.train.batch_size)
  check_positive_int("train.checkpoint_every", config.train.checkpoint_every)
  check_positive_int("train.log_every", config.train.log_every)
  check_positive_int("train.eval_every", config.train.eval_every)
  check_positive_int("data.image_size", config.data.image_size)
  check_positive_int("data.num_frames", config.data.num_frames)
  check_positive_int("eval.num_sequences", config.eval.num_sequences)
  check_positive_int("eval.batch_size", config.eval.batch_size)
  if config.eval.num_slots != -1:
    check_positive_int("eval.num_slots", config.eval.num_slots)
  static_steps = config.eval.get("static_steps", 0)
  if not isinstance(static_steps, int) or isinstance(static_steps, bool) or static_steps < 0:
    raise ConfigError(f"config.eval.static_steps must be an integer >= 0 (0 = off), got "
                      f"{static_steps!r}")
  split = config.eval.get("split", "eval")
  if split not in base.SPLITS:
    raise ConfigError(f"config.eval.split must be one of {base.SPLITS}, got {split!r}")
  average = config.eval.get("average_checkpoints", 1)
  check_positive_int("eval.average_checkpoints", average)
  if average > config.train.max_checkpoints:
    raise ConfigError(f"config.eval.average_checkpoints={average} averages more checkpoints than "
                      f"config.train.max_checkpoints={config.train.max_checkpoints} keeps; raise "
                      "train.max_checkpoints")
  if not config.train.learning_rate > 0:
    raise ConfigError(f"config.train.learning_rate must be > 0, got {config.train.learning_rate}")
  start = config.train.get("decay_start", -1)
  if not isinstance(start, int) or isinstance(start, bool) or start < -1:
    raise ConfigError(f"config.train.decay_start must be an integer >= 0, or -1 (no decay), "
                      f"got {start!r}")
  if start >= 0:
    check_positive_int("train.decay_steps", config.train.decay_steps)
    final = config.train.decay_final_fraction
    if not 0.0 <= final <= 1.0:
      raise ConfigError(f"config.train.decay_final_fraction must be in [0, 1], got {final}")
  validate_model_config(model_config(config))
  n = jax.device_count()
  for path in ("train.batch_size", "eval.batch_size"):
    group, field = path.split(".")
    if config[group][field] % n:
      raise ConfigError(f"config.{path}={config[group][field]} is not divisible by the "
                        f"{n} devices; use a multiple of {n}")


def check_actions(config: ml_collections.ConfigDict, action_dim: int, origin: str) -> None:
  if config.model.use_actions and action_dim == 0:
    raise ConfigError(f"config.model.use_actions=True but dataset {config.data.name!r} "
                      f"({origin}) has no actions; set --config.model.use_actions=False")


def make_model(config: ml_collections.ConfigDict, num_slots: int = -1) -> PARTS:
  return build_model(model_config(config, num_slots))


def mesh_shardings() -> Tuple[Mesh, NamedSharding, NamedSharding]:
  """A 1-D mesh over all devices; (mesh, replicated, batch-sharded)."""
  mesh = Mesh(jax.devices(), (DATA_AXIS,))
  return (mesh, NamedSharding(mesh, PartitionSpec()),
          NamedSharding(mesh, PartitionSpec(DATA_AXIS)))


def global_batch(local_batch, data_sharding: NamedSharding):
  """Assembles this process's slice of the global batch into a global, sharded jax.Array."""
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(data_sharding, x), local_batch)


def host(tree):
  """The values of a tree of (possibly sharded, multi-process) jax.Arrays as NumPy arrays, the
  same on every process (all processes must call it): global arrays are gathered."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    return multihost_utils.process_allgather(tree, tiled=True)
  return jax.tree.map(lambda x: np.asarray(jax.device_get(x)), tree)


def library_logs_to_file(path: str) -> None:
  """Library INFO logs (orbax writes ~90 lines per checkpoint) go to `path`, not the console,
  which keeps our progress lines and every warning; unless --verbosity is given on the command
  line (then absl's console logging is left as asked)."""
  if "verbosity" in flags.FLAGS and flags.FLAGS["verbosity"].present:
    return
  absl_logging.get_absl_handler().setLevel(std_logging.WARNING)
  handler = _LogFile(path)
  handler.setLevel(std_logging.INFO)
  handler.setFormatter(std_logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
  std_logging.getLogger().addHandler(handler)


class _LogFile(std_logging.Handler):
  """Appends to `path` once its folder exists (the workdir is created only after the config
  checks pass); the records before that are kept in memory and written first."""

  def __init__(self, path: str, max_pending: int = 10_000):
    super().__init__()
    self.path, self.max_pending = path, max_pending
    self.pending, self.file = [], None

  def emit(self, record: std_logging.LogRecord) -> None:
    try:
      line = self.format(record) + "\n"
      if self.file is None and os.path.isdir(os.path.dirname(os.path.abspath(self.path))):
        self.file = open(self.path, "a")
        self.file.writelines(self.pending)
        self.pending = []
      if self.file is None:
        if len(self.pending) < self.max_pending:
          self.pending.append(line)
      else:
        self.file.write(line)
        self.file.flush()
    except Exception:  # pylint: disable=broad-except
      self.handleError(record)

  def close(self) -> None:
    if self.file is not None:
      self.file.close()
    super().close()


CONFIG_HISTORY = "config_history.jsonl"


def save_config(config: ml_collections.ConfigDict, workdir: str,
                step: int = 0) -> Dict[str, Tuple[Any, Any]]:
  """Writes WORKDIR/config.json; returns {dotted field: (saved value, new value)}.

  Resuming at `step` > 0 with a config that differs from the saved one (a longer
  --config.train.num_steps, or a recipe changed mid-run) first appends {"step": step, "changed":
  {field: [saved, new]}} to WORKDIR/config_history.jsonl, so that what the earlier steps were
  trained with is not lost when config.json is overwritten (None: the field was absent).
  """
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, "config.json")
  changed = {}
  if step > 0 and os.path.exists(path):
    with open(path) as f:
      saved = _flat(json.load(f))
    new = _flat(json.loads(config.to_json()))
    changed = {k: (saved.get(k), new.get(k)) for k in sorted(set(saved) | set(new))
               if saved.get(k) != new.get(k)}
  if jax.process_index() == 0:
    if changed:
      with open(os.path.join(workdir, CONFIG_HISTORY), "a") as f:
        f.write(json.dumps(dict(step=step, changed=changed)) + "\n")
    with open(path, "w") as f:
      f.write(config.to_json(indent=2))
  return changed


def describe_changes(changed: Dict[str, Tuple[Any, Any]],
                     defaults: Optional[Dict[str, Any]] = None) -> str:
  """`save_config`'s {field: (saved, new)} as one line: "a.b 1 -> 2; ..." for changed values, then
  the fields the saved config lacks (added to the code after it was written, so the earlier steps
  ran at the code's default) and those it has that the config no longer does. `defaults`
  ({dotted field: default}, e.g. `model_defaults()`) tells the new fields this run leaves at their
  default (no change of recipe) from those it sets otherwise (a change, said with the default)."""
  defaults = defaults or {}
  parts = [f"{k} {old} -> {new}" for k, (old, new) in changed.items()
           if old is not None and new is not None]
  added = {k: new for k, (old, new) in changed.items() if old is None}
  at_default = [f"{k}={v}" for k, v in added.items() if k in defaults and defaults[k] == v]
  set_away = [f"{k}={v} (default {defaults[k]})" for k, v in added.items()
              if k in defaults and defaults[k] != v]
  unknown = [f"{k}={v}" for k, v in added.items() if k not in defaults]
  removed = [k for k, (old, new) in changed.items() if new is None]
  if set_away:
    parts.append("fields new since it was saved, set away from their defaults (the earlier steps "
                 "ran at the default): " + ", ".join(set_away))
  if at_default:
    parts.append("fields new since it was saved, at their defaults: " + ", ".join(at_default))
  if unknown:
    parts.append("fields new since it was saved: " + ", ".join(unknown))
  if removed:
    parts.append("fields no longer in the config: " + ", ".join(removed))
  return "; ".join(parts)


def model_defaults() -> Dict[str, Any]:
  """The model config's defaults (parts_jax.config) as {"model.x": value}, JSON-typed as
  `save_config` compares them."""
  return _flat({"model": json.loads(get_model_config().to_json())})


def _flat(tree: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
  """{"a": {"b": 1}} -> {"a.b": 1}."""
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(_flat(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def load_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: is {workdir} a training workdir? Pass --config")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def config_for_workdir(workdir: str, config: Optional[ml_collections.ConfigDict] = None,
                       overrides: Optional[Dict[str, Any]] = None) -> ml_collections.ConfigDict:
  """The config of a trained run, for evaluation and figures.

  WORKDIR/config.json (what the run was trained with) if it exists, with the fields it lacks
  (added to the code after it was trained) taken from `config`, and model fields still missing
  from the model's defaults (parts_jax.config: new model options default to the behaviour
  older runs were trained with); else `config`. Then the flat `overrides`
  ({"eval.num_slots": 3, ...}, e.g. the --config.x=y flags) are applied.
  """
  if os.path.exists(os.path.join(workdir, "config.json")):
    loaded = load_config(workdir)
    if config is not None:          # Fields added to the code after the run was trained.
      _fill_missing(loaded, config)
    if isinstance(loaded.get("model"), ml_collections.ConfigDict):
      _fill_missing(loaded.model, get_model_config())
    config = loaded
  elif config is None:
    raise FileNotFoundError(f"{workdir}/config.json not found and no --config given: pass the "
                            "training workdir, or --config=... for a run without config.json")
  else:
    config = ml_collections.ConfigDict(config.to_dict())
  for path, value in (overrides or {}).items():
    *parents, field = path.split(".")
    node = config
    for key in parents:
      node = node.get(key) if isinstance(node, ml_collections.ConfigDict) else None
    if not isinstance(node, ml_collections.ConfigDict) or field not in node:
      raise ConfigError(f"unknown config field {path!r} in the overrides")
    node[field] = value
  return config


def _fill_missing(config: ml_collections.ConfigDict, schema: ml_collections.ConfigDict) -> None:
  """Adds to `config` (in place) the fields of `schema` it lacks, with the schema's values."""
  for key, value in schema.items():
    if key not in config:
      config[key] = value
    elif isinstance(value, ml_collections.ConfigDict) and isinstance(
        config[key], ml_collections.ConfigDict):
      _fill_missing(config[key], value)


def restore_model(config: ml_collections.ConfigDict, workdir: str, example_batch,
                  num_slots: int = -1, sharding=None, step: Optional[int] = None):
  """Builds the model as evaluated (`PARTS.for_evaluation`; with K = num_slots if > 0) and
  restores the parameters of `workdir` at `step` (default: the latest) into it, averaged over
  the last config.eval.average_checkpoints kept checkpoints up to `step`
  (`checkpointing.restore_params`): (model, params, step). `example_batch` (one batch) sets the
  shapes."""
  model = make_model(config, num_slots).for_evaluation()
  params = jax.eval_shape(model.init, jax.random.PRNGKey(0), example_batch)
  params, step = checkpointing.restore_params(
      workdir, params, step=step, sharding=sharding,
      average=config.eval.get("average_checkpoints", 1))
  return model, params, step
