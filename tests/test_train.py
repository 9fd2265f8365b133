"""Training end to end: a run stopped and restarted with a larger num_steps resumes at the right
step and logs to TensorBoard and metrics.jsonl; every experiment config builds a model whose
parameters initialise with the shapes its config implies.

Also the helpers of tests/test_reliability.py and tests/test_multiprocess.py: the tiny config,
`python -m experiments.train` in a subprocess (optionally with test hooks, see DRIVER), the
uninterrupted reference run they compare with, and a persistent XLA compilation cache shared by
all subprocesses of the test session (on a 2-core CPU the first run takes ~11 s, later runs of
the same config ~5 s).
"""
import atexit
import glob
import importlib
import json
import os
import shutil
import struct
import subprocess
import sys
from typing import Dict, List, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from experiments import setup_lib
from experiments.configs import ablations
from helpers import compile_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_FLAGS = (
    "--config=experiments/configs/sprites.py",
    "--config.data.image_size=16", "--config.data.num_frames=4",
    "--config.model.decoder.channels=(8,)", "--config.model.encoder.channels=(8,)",
    "--config.model.num_slots=3", "--config.model.slot_dim=4",
    "--config.model.predictor.model_size=16", "--config.model.predictor.mlp_size=16",
    "--config.model.predictor.lstm_size=16", "--config.model.refine.mlp_hidden=(16,)",
    "--config.model.attention.qk_dim=8", "--config.model.attention.value_dim=8",
    "--config.train.batch_size=2", "--config.data.num_train=16", "--config.data.num_eval=4",
    "--config.eval.batch_size=2")

# `python -c DRIVER <flags>` runs experiments.train's main with hooks set by environment
# variables (see `env`): SLEEP (seconds after each step, so that a kill lands mid-run), NAN
# ("3:grads,5:loss": NaN in the gradients / loss of those steps, counting from 1 as the log
# does), KILL_IN_SAVE (SIGKILL while orbax commits checkpoint N: its files are written, the
# rename that completes it is not done), DUMP (write this process's copy of the final params
# to an .npz, keyed like `flat`).
DRIVER = r'''
import os, signal, time
import jax, jax.numpy as jnp, numpy as np
from absl import app
from experiments import train

hook = lambda name: os.environ.get("PARTS_TEST_" + name)
if hook("SLEEP"):
  call = train.TrainStep.__call__
  def slow_call(self, state, batch):
    out = call(self, state, batch)
    time.sleep(float(hook("SLEEP")))
    return out
  train.TrainStep.__call__ = slow_call
if hook("NAN"):
  nan_at = dict(item.split(":") for item in hook("NAN").split(","))
  grads = train.TrainStep.grads
  def nan_grads(self, state, batch):
    g, sums = grads(self, state, batch)
    what = nan_at.get(str(int(state["step"]) + 1))
    if what == "grads":
      g = jax.tree.map(lambda x: x * jnp.nan, g)
    elif what == "loss":
      sums = dict(sums, elbo=sums["elbo"] * jnp.nan)
    return g, sums
  train.TrainStep.grads = nan_grads
if hook("KILL_IN_SAVE"):
  from orbax.checkpoint._src.path import atomicity
  finalize = atomicity.AtomicRenameTemporaryPath.finalize
  async def killing_finalize(self):
    if self._final_path.name == hook("KILL_IN_SAVE"):
      os.kill(os.getpid(), signal.SIGKILL)
    return await finalize(self)
  atomicity.AtomicRenameTemporaryPath.finalize = killing_finalize
if hook("DUMP"):
  run = train.train_and_evaluate
  def run_and_dump(config, workdir):
    state = run(config, workdir)
    leaves = jax.tree_util.tree_flatten_with_path(dict(params=state["params"]))[0]
    np.savez(hook("DUMP"), **{jax.tree_util.keystr(p): np.asarray(x.addressable_data(0))
                              for p, x in leaves})
    return state
  train.train_and_evaluate = run_and_dump
app.run(train.main)
'''


def session_dir(tmp_path_factory, name: str) -> str:
  """A directory shared by all tests of the session (compilation cache, sprites data)."""
  path = tmp_path_factory.getbasetemp() / name
  path.mkdir(exist_ok=True)
  return str(path)


# Halves XLA:CPU compile times (the runs are tiny); every run of the tests uses it.
XLA_FLAGS = "--xla_backend_optimization_level=0"


def env(xla_flags: str = "", **hooks) -> Dict[str, str]:
  """Subprocess environment: CPU, DRIVER hooks; the suite's compilation cache (conftest.py) is
  inherited, so the runs of both xdist workers share their compiled programs."""
  e = {k: v for k, v in os.environ.items() if not k.startswith("PARTS_TEST_")}
  e.update(JAX_PLATFORMS="cpu",
           PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]),
           XLA_FLAGS=f"{XLA_FLAGS} {compile_flags()} {xla_flags}".strip())
  e.update({f"PARTS_TEST_{k.upper()}": str(v) for k, v in hooks.items()})
  return e


def train_args(tmp_path_factory, workdir, num_steps: int, **overrides) -> List[str]:
  """Flags of a tiny sprites run (data shared by the session) plus --config.<k>=<v>."""
  data_dir = session_dir(tmp_path_factory, "sprites_data")
  return [*TINY_FLAGS, f"--workdir={workdir}", f"--config.data.data_dir={data_dir}",
          f"--config.train.num_steps={num_steps}",
          *[f"--config.{k.replace('__', '.')}={v}" for k, v in overrides.items()]]


def start(args: List[str], environ: Dict[str, str], log_file: str,
          driver: bool = False) -> subprocess.Popen:
  """Starts `python -m experiments.train ARGS` (or the hook DRIVER), output to log_file."""
  cmd = [sys.executable, *(["-c", DRIVER] if driver else ["-m", "experiments.train"]), *args]
  with open(log_file, "ab") as log:
    return subprocess.Popen(cmd, cwd=ROOT, env=environ, stdout=log, stderr=subprocess.STDOUT)


def finish(proc: subprocess.Popen, log_file: str, timeout: float = 240) -> str:
  """Waits for proc (killing it after `timeout` s); returns the log."""
  try:
    proc.wait(timeout)
  except subprocess.TimeoutExpired:
    proc.kill()
    proc.wait()
  with open(log_file) as f:
    return f.read()


def run(args, environ, log_file, driver: bool = False, timeout: float = 240):
  """(returncode, log) of a finished run."""
  proc = start(args, environ, log_file, driver)
  text = finish(proc, log_file, timeout)
  return proc.returncode, text


def console(log: str) -> str:
  """The log without absl/orbax INFO and WARNING lines."""
  return "\n".join(l for l in log.splitlines() if not l[:1] in "IW" or not l[1:5].isdigit())


def flat(tree) -> Dict[str, np.ndarray]:
  return {jax.tree_util.keystr(p): np.asarray(x)
          for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def checkpoint_steps(workdir) -> List[int]:
  return list(ocp.CheckpointManager(os.path.join(workdir, "checkpoints")).all_steps())


def load_checkpoint(workdir, step: Optional[int] = None) -> Dict[str, np.ndarray]:
  """The saved train state (latest or `step`) as {key path: array}, read with orbax alone."""
  mngr = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"),
                               item_handlers=ocp.StandardCheckpointHandler())
  step = mngr.latest_step() if step is None else step
  device = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                        mngr.item_metadata(step).tree)  # (Also for multi-process checkpoints.)
  return flat(mngr.restore(step, args=ocp.args.StandardRestore(target)))


def params_of(state: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
  return {k: v for k, v in state.items() if k.startswith("['params']")}


def metrics_lines(workdir) -> List[dict]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def tensorboard_scalars(workdir) -> Dict[str, Dict[int, float]]:
  """{tag: {step: value}} from every event file of workdir/tb (TFRecord framing parsed here)."""
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  out = {}
  for path in sorted(glob.glob(os.path.join(workdir, "tb", "events.out.tfevents.*"))):
    with open(path, "rb") as f:
      data = f.read()
    i = 0
    while i < len(data):  # uint64 length, uint32 crc, payload, uint32 crc
      (length,) = struct.unpack("<Q", data[i:i + 8])
      event = event_pb2.Event.FromString(data[i + 12:i + 12 + length])
      i += 12 + length + 4
      for v in event.summary.value:
        if v.WhichOneof("value") == "simple_value":
          out.setdefault(v.tag, {})[event.step] = v.simple_value
  return out


# The reference run: NUM_STEPS uninterrupted steps, checkpoint every 2 steps (all kept), a log
# line per step. Resumed, killed and multi-process runs use the same flags.
NUM_STEPS = 12
RUN = dict(train__checkpoint_every=2, train__max_checkpoints=20, train__log_every=1)


_REFERENCE = {}  # workdir -> the running reference process


@atexit.register
def _stop_reference():  # (A test failed before waiting for it.)
  for proc in _REFERENCE.values():
    proc.kill()


def start_reference(tmp_path_factory) -> str:
  """Starts the reference run (once per test session) unless it is running or done."""
  workdir = os.path.join(session_dir(tmp_path_factory, "reference"), "run")
  if workdir not in _REFERENCE and not os.path.exists(os.path.join(workdir, "done")):
    shutil.rmtree(workdir, ignore_errors=True)
    _REFERENCE[workdir] = start(train_args(tmp_path_factory, workdir, NUM_STEPS, **RUN),
                                env(), workdir + ".log")
  return workdir


def reference_run(tmp_path_factory) -> str:
  """The workdir of the finished reference run."""
  workdir = start_reference(tmp_path_factory)
  if workdir in _REFERENCE:
    proc = _REFERENCE.pop(workdir)
    log = finish(proc, workdir + ".log")
    assert proc.returncode == 0, console(log)[-3000:]
    assert checkpoint_steps(workdir) == list(range(2, NUM_STEPS + 1, 2))
    open(os.path.join(workdir, "done"), "w").close()
  return workdir


def assert_same_arrays(a: Dict[str, np.ndarray], b: Dict[str, np.ndarray]) -> None:
  assert sorted(a) == sorted(b)
  different = [k for k in a if not np.array_equal(a[k], b[k])]
  assert not different, f"{len(different)} of {len(a)} arrays differ, e.g. {different[:3]}"


@pytest.mark.slow
def test_resume_with_more_steps_and_logs(tmp_path_factory, tmp_path):
  workdir, log = str(tmp_path / "run"), str(tmp_path / "log.txt")
  environ = env()
  start_reference(tmp_path_factory)  # Runs alongside.
  code, text = run(train_args(tmp_path_factory, workdir, 6, **RUN), environ, log)
  assert code == 0, console(text)[-3000:]
  assert "Resuming" not in text
  assert checkpoint_steps(workdir) == [2, 4, 6]

  code, text = run(train_args(tmp_path_factory, workdir, NUM_STEPS, **RUN), environ, log)
  # The longer num_steps is a config change: printed, and kept in config_history.jsonl.
  assert (f"Config changed since the checkpoint at step 6 (recorded in config_history.jsonl): "
          f"train.num_steps 6 -> {NUM_STEPS}") in text, console(text)[-3000:]
  with open(os.path.join(workdir, "config_history.jsonl")) as f:
    assert [json.loads(l) for l in f] == [
        {"step": 6, "changed": {"train.num_steps": [6, NUM_STEPS]}}]
  text = text.split("Resuming", 1)[-1]
  assert code == 0, console(text)[-3000:]
  assert text.startswith(" from checkpoint at step 6\n")
  assert checkpoint_steps(workdir) == list(range(2, NUM_STEPS + 1, 2))
  state = load_checkpoint(workdir)
  assert state["['step']"] == NUM_STEPS
  # The learning-rate schedule's counter (in the optimizer state) went on from the restored 6.
  counts = [v for k, v in state.items() if k.startswith("['opt_state']") and "count" in k]
  assert counts and all(c == NUM_STEPS for c in counts), counts
  # 6 + 6 steps end exactly where 12 uninterrupted steps end (params, optimizer, RNG).
  assert_same_arrays(state, load_checkpoint(reference_run(tmp_path_factory)))

  lines = metrics_lines(workdir)
  steps = list(range(1, NUM_STEPS + 1))
  assert [l["step"] for l in lines] == steps  # Each step once: the rerun did only 7..12.
  scalars = tensorboard_scalars(workdir)
  for tag in ("train/loss", "train/kl", "train/mse", "train/grad_norm", "train/skipped_steps"):
    assert sorted(scalars[tag]) == steps, tag
    for line in lines:
      np.testing.assert_allclose(scalars[tag][line["step"]], line[tag], rtol=1e-6)
  assert sorted(scalars["eval/mse"]) == [6, NUM_STEPS]  # held-out batch, at each run's end
  assert all(np.isfinite(l["train/loss"]) and l["train/skipped_steps"] == 0 for l in lines)
  reference = metrics_lines(reference_run(tmp_path_factory))
  assert [l["train/loss"] for l in lines] == [l["train/loss"] for l in reference]


def test_held_out_eval_on_its_own_schedule(tmp_path_factory, tmp_path):
  """eval_every need not be a multiple of log_every: the held-out evaluation runs at every
  multiple of eval_every (and at the end), whether or not that step is a log step."""
  workdir, log = str(tmp_path / "run"), str(tmp_path / "log.txt")
  code, text = run(train_args(tmp_path_factory, workdir, 5, train__log_every=3,
                              train__eval_every=2, train__checkpoint_every=5),
                   env(), log)
  assert code == 0, console(text)[-3000:]
  lines = metrics_lines(workdir)
  assert [l["step"] for l in lines] == [2, 3, 4, 5]
  assert [l["step"] for l in lines if "eval/mse" in l] == [2, 4, 5]


# Action dimension of each dataset (playroom: user data, any A; robotics_arm: 7, paper).
ACTION_DIMS = {"sprites": 2, "room3d": 3, "npz": 3, "movi": 0, "clevrer": 0}
CONFIGS = (["sprites", "room3d", "playroom", "clevrer", "robotics_arm", "movi"]
           + [f"ablations:{p}" for p in ablations.PRESETS] + ["ablations:op3,room3d"])


def load_config(name: str):
  if name.startswith("ablations:"):
    return ablations.get_config(name.split(":", 1)[1])
  return importlib.import_module(f"experiments.configs.{name}").get_config()


def zero_batch(config, batch_size: int = 2):
  t, s = config.data.num_frames, config.data.image_size
  a = config.data.get("action_dim", ACTION_DIMS[config.data.name])
  return {"video": np.zeros((batch_size, t, s, s, 3), np.float32),
          "actions": np.zeros((batch_size, t, a), np.float32)}


@pytest.mark.parametrize("name", CONFIGS)
def test_config_builds_and_initialises(name):
  config = load_config(name)
  setup_lib.check_config(config)
  m = config.model
  batch = zero_batch(config)
  params = jax.eval_shape(setup_lib.make_model(config).init, jax.random.PRNGKey(0), batch)
  shapes = {k: {n: x.shape for n, x in v.items()} for k, v in params.items()}
  d, a = m.slot_dim, batch["actions"].shape[-1]
  # Shapes the config implies: the decoder maps a D-dim slot to RGB + mask logit (4
  # channels) through len(channels) + 1 convolutions; refinement and predictor output
  # lambda = (mu, log sigma) in R^{2D}; the LSTM has 4 gates.
  decoder = sorted(k for k in shapes if k.startswith("decoder/cnn/conv_"))
  assert len(decoder) == len(m.decoder.channels) + 1
  assert shapes["decoder/cnn/conv_0"]["w"][2:] == (d, m.decoder.channels[0])
  assert shapes[decoder[-1]]["w"][3] == 4
  assert shapes["refiner/refine_mlp/output"]["w"] == (m.refine.mlp_hidden[-1], 2 * d)
  assert shapes["predictor/output"]["w"][1] == 2 * d
  assert shapes["predictor/slot_lstm/linear"]["b"] == (4 * m.predictor.lstm_size,)
  assert shapes["predictor/embed"]["w"][0] == 2 * d + (a if m.use_actions else 0)
  # The variant switches: slot attention or an IODINE-style refiner, transformer blocks.
  assert any("slot_attention" in k for k in shapes) == m.slot_attention
  blocks = {k.split("/")[1] for k in shapes if k.startswith("predictor/block_")}
  expected = m.predictor.num_layers if m.predictor.kind == "transformer_lstm" else 0
  assert len(blocks) == expected
  if name == "sprites":  # The CPU default: a real initialisation, as the trainer does it.
    real = jax.jit(setup_lib.make_model(config).init)(jax.random.PRNGKey(0), batch)
    assert jax.tree.map(lambda x: (x.shape, x.dtype), real) == jax.tree.map(
        lambda x: (x.shape, x.dtype), params)
    leaves = jax.tree.leaves(real)
    assert all(np.isfinite(np.asarray(x)).all() for x in leaves)
    # Random weights, except the output layers of the two residual updates (zero: the first
    # refinement and prediction keep lambda).
    zero = {k for k, v in real.items() if "w" in v and not np.asarray(v["w"]).std() > 0}
    assert zero == {"refiner/refine_mlp/output", "predictor/output"}


def test_parameters_do_not_depend_on_num_slots():
  config = load_config("sprites")
  shapes = []
  for k in (2, 9):
    config.model.num_slots = k
    params = jax.eval_shape(setup_lib.make_model(config).init, jax.random.PRNGKey(0),
                            zero_batch(config))
    shapes.append(jax.tree.map(lambda x: x.shape, params))
  assert shapes[0] == shapes[1]


def test_save_config_records_changes_on_resume(tmp_path):
  """A fresh run (step 0) or an unchanged config writes no history; a changed, added or removed
  field at a resume is appended with its old and new values, and config.json is the new one."""
  import ml_collections
  from experiments import setup_lib
  workdir = str(tmp_path)
  old = ml_collections.ConfigDict(dict(model=dict(num_refine_steps=1, sigma_x=0.1),
                                       train=dict(num_steps=10, gone=True)))
  assert setup_lib.save_config(old, workdir) == {}
  assert setup_lib.save_config(old, workdir, step=10) == {}
  new = ml_collections.ConfigDict(dict(model=dict(num_refine_steps=2, sigma_x=0.1),
                                       train=dict(num_steps=20, added="x")))
  changed = setup_lib.save_config(new, workdir, step=10)
  want = {"model.num_refine_steps": (1, 2), "train.added": (None, "x"),
          "train.gone": (True, None), "train.num_steps": (10, 20)}
  assert changed == want
  with open(os.path.join(workdir, setup_lib.CONFIG_HISTORY)) as f:
    assert [json.loads(l) for l in f] == [
        {"step": 10, "changed": {k: list(v) for k, v in want.items()}}]
  assert setup_lib.load_config(workdir).to_dict() == new.to_dict()
  # The console line: changed values, then fields the saved config lacked (added to the code
  # since) and fields dropped, each said as such.
  assert setup_lib.describe_changes(changed) == (
      "model.num_refine_steps 1 -> 2; train.num_steps 10 -> 20; "
      "fields new since it was saved: train.added=x; "
      "fields no longer in the config: train.gone")
  # Given the code's defaults, a new field this run sets otherwise is a change of recipe and is
  # said so, with its default; one left at its default is not.
  changed = {"model.first_frame_refine_steps": (None, 4), "model.tbptt": (None, 4),
             "train.num_steps": (10, 20)}
  assert setup_lib.describe_changes(changed, setup_lib.model_defaults()) == (
      "train.num_steps 10 -> 20; fields new since it was saved, set away from their defaults "
      "(the earlier steps ran at the default): model.first_frame_refine_steps=4 (default 0); "
      "fields new since it was saved, at their defaults: model.tbptt=4")


def test_progress_line_shows_the_elbo_and_the_fitted_elbo_when_trained_on(tmp_path, capsys):
  """The console line reports the ELBO (the paper's objective), not the loss, which under
  config.model.semi_amortized also holds the fitted posterior's ELBO; that one is shown apart."""
  from experiments import train
  log = train._Logger(str(tmp_path), num_steps=10, enabled=True)
  values = {"train/loss": -300.0, "train/elbo": 120.0, "train/kl": 4.0, "train/mse": 0.01}
  log.progress(5, values, steps_per_s=1.0)
  log.progress(6, dict(values, **{"train/fitted_elbo": 180.0}), steps_per_s=1.0)
  log.progress(7, dict(values, **{"train/distill": 2.5}), steps_per_s=1.0)
  log.close()
  plain, fitted, distill = capsys.readouterr().out.splitlines()
  assert plain.startswith("step 5/10 | elbo 120.00 | kl 4.00 |") and "fitted" not in plain
  assert fitted.startswith("step 6/10 | elbo 120.00 | fitted_elbo 180.00 | kl 4.00 |")
  assert distill.startswith("step 7/10 | elbo 120.00 | distill 2.50 | kl 4.00 |")
