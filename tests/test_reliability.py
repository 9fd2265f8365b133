"""Reliability of training: kill and resume, atomic checkpoints, NaN/Inf, bad configs, bad data.

The runs are `python -m experiments.train` subprocesses of a tiny sprites config (helpers and
test hooks in tests/test_train.py); config and data errors are checked in-process.
"""
import glob
import json
import os
import re
import signal
import struct
import time

import jax
import ml_collections
import numpy as np
import pytest

from datasets import base, cache, npz_episodes, pipeline, registry
from experiments import checkpointing, setup_lib, train
from experiments.configs import ablations, sprites
from parts_jax.config import ConfigError
from test_train import (NUM_STEPS, RUN, assert_same_arrays, checkpoint_steps, console, env,
                        finish, flat, load_checkpoint, metrics_lines, params_of, reference_run, run,
                        start, start_reference, train_args)


def _logged_step(workdir) -> int:
  try:
    return max((l["step"] for l in metrics_lines(workdir)), default=0)
  except (OSError, ValueError):  # Not there yet, or a line half written.
    return 0


def _wait_for_step(workdir, proc, step: int, timeout_s: float = 600) -> None:
  """Waits until the run has logged `step`; fails loudly if it exits first or takes too long."""
  deadline = time.time() + timeout_s
  while _logged_step(workdir) < step:
    assert proc.poll() is None, f"the run exited (rc {proc.returncode}) before logging step {step}"
    assert time.time() < deadline, f"the run did not log step {step} within {timeout_s} s"
    time.sleep(0.05)


@pytest.mark.slow
def test_sigterm_sigkill_and_restart_end_bit_identical(tmp_path_factory, tmp_path):
  """SIGTERM (preemption) mid-run, restart, SIGKILL at an arbitrary later step, restart: the
  final train state equals that of the uninterrupted reference run, bit for bit."""
  workdir = str(tmp_path / "run")
  args = train_args(tmp_path_factory, workdir, NUM_STEPS, **RUN)
  environ = env(sleep=0.2)  # ~0.2 s a step: the signals land mid-run.
  start_reference(tmp_path_factory)  # Runs alongside.
  logs = [str(tmp_path / f"log{i}.txt") for i in range(3)]

  proc = start(args, environ, logs[0], driver=True)
  _wait_for_step(workdir, proc, 3)
  proc.send_signal(signal.SIGTERM)
  text = finish(proc, logs[0])
  assert proc.returncode == 0, console(text)[-3000:]
  term_step = int(re.search(r"Received signal 15: saved checkpoint at step (\d+), exiting\.",
                            text).group(1))
  assert 3 <= term_step < NUM_STEPS - 4 and max(checkpoint_steps(workdir)) == term_step

  proc = start(args, environ, logs[1], driver=True)
  _wait_for_step(workdir, proc, term_step + 3)
  proc.kill()  # SIGKILL
  text = finish(proc, logs[1])
  assert proc.returncode == -9, console(text)[-3000:]
  assert f"Resuming from checkpoint at step {term_step}\n" in text
  killed_at = _logged_step(workdir)
  assert term_step + 3 <= killed_at < NUM_STEPS and max(checkpoint_steps(workdir)) < NUM_STEPS

  code, text = run(args, environ, logs[2], driver=True)
  assert code == 0, console(text)[-3000:]
  resumed = int(re.search(r"Resuming from checkpoint at step (\d+)\n", text).group(1))
  assert term_step < resumed <= killed_at and resumed % 2 == 0, (term_step, resumed, killed_at)
  # The whole train state (params, optimizer state, RNG, counters) equals the reference's.
  final = load_checkpoint(workdir)
  assert final["['step']"] == NUM_STEPS
  assert_same_arrays(final, load_checkpoint(reference_run(tmp_path_factory)))
  # Every step is logged once: the lines the killed run wrote after its last checkpoint were
  # dropped at the restart, which logged those steps again; TensorBoard purges them too.
  assert ("lines logged after step" in text) == (killed_at > resumed)
  lines = metrics_lines(workdir)
  assert [l["step"] for l in lines] == list(range(1, NUM_STEPS + 1))
  reference = metrics_lines(reference_run(tmp_path_factory))
  assert [l["train/loss"] for l in lines] == [l["train/loss"] for l in reference]
  # The last restart told TensorBoard to purge the steps after its checkpoint (the killed run's
  # own events may not have reached the disk at all).
  assert resumed + 1 in _purge_steps(workdir)


def _purge_steps(workdir):
  """Steps of the SessionLog START events (TensorBoard's purge_step) in workdir/tb."""
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  steps = []
  for path in glob.glob(os.path.join(workdir, "tb", "events.out.tfevents.*")):
    with open(path, "rb") as f:
      data = f.read()
    i = 0
    while i < len(data):
      (length,) = struct.unpack("<Q", data[i:i + 8])
      event = event_pb2.Event.FromString(data[i + 12:i + 12 + length])
      i += 12 + length + 4
      if event.HasField("session_log") and event.session_log.status == event.session_log.START:
        steps.append(event.step)
  return sorted(steps)


@pytest.mark.slow
def test_kill_during_checkpoint_save_keeps_previous(tmp_path_factory, tmp_path):
  reference = reference_run(tmp_path_factory)
  workdir, log = str(tmp_path / "run"), str(tmp_path / "log.txt")
  args = train_args(tmp_path_factory, workdir, NUM_STEPS, **RUN)
  # SIGKILL once orbax has written checkpoint 4 into its temporary directory, before the
  # rename that commits it.
  code, text = run(args, env(kill_in_save=4), log, driver=True)
  assert code == -9, console(text)[-3000:]
  names = sorted(os.listdir(os.path.join(workdir, "checkpoints")))
  assert names[0] == "2" and names[1].startswith("4.orbax-checkpoint-tmp"), names
  assert os.listdir(os.path.join(workdir, "checkpoints", names[1]))  # Partly written.
  assert checkpointing.manager(workdir).latest_step() == 2
  config = tiny_config(str(tmp_path))  # The run's model, for the parameter shapes.
  shapes = jax.eval_shape(setup_lib.make_model(config).init, jax.random.PRNGKey(0),
                          dict(video=np.zeros((2, 4, 16, 16, 3), np.float32),
                               actions=np.zeros((2, 4, 2), np.float32)))
  params, step = checkpointing.restore_params(workdir, shapes)
  assert step == 2
  assert_same_arrays(flat(dict(params=params)), params_of(load_checkpoint(reference, 2)))

  code, text = run(args, env(), log, driver=True)
  assert code == 0, console(text)[-3000:]
  assert "Resuming from checkpoint at step 2\n" in text
  assert checkpoint_steps(workdir) == list(range(2, NUM_STEPS + 1, 2))
  assert not [n for n in os.listdir(os.path.join(workdir, "checkpoints")) if "tmp" in n]
  for step in (4, NUM_STEPS):
    assert_same_arrays(load_checkpoint(workdir, step), load_checkpoint(reference, step))


# ---------------------------------------------------------------------------------------------
# Numerical faults. The runs start together (they are independent) and are checked one by one.

NAN_RUNS = {
    "grads": dict(hooks=dict(nan="3:grads"), flags={}),
    "lr": dict(hooks={}, flags=dict(train__learning_rate=1e30, train__warmup_steps=1)),
    "skip": dict(hooks=dict(nan="3:grads,5:loss"), flags=dict(train__skip_nonfinite=True)),
}


@pytest.fixture(scope="module", name="nan_runs")
def _nan_runs(tmp_path_factory):
  root = tmp_path_factory.mktemp("nan")
  procs = {}
  for name, spec in NAN_RUNS.items():
    workdir = str(root / name)
    args = train_args(tmp_path_factory, workdir, 6, train__checkpoint_every=1,
                      train__max_checkpoints=20, train__log_every=1, **spec["flags"])
    procs[name] = (workdir, start(args, env(**spec["hooks"]),
                                  workdir + ".log", driver=True))
  return {name: (workdir, proc, console(finish(proc, workdir + ".log")))
          for name, (workdir, proc) in procs.items()}


@pytest.mark.parametrize("name,what,step", [("grads", "gradients", 3), ("lr", "loss", None)])
def test_nonfinite_stops_with_step_and_quantity(nan_runs, name, what, step):
  workdir, proc, text = nan_runs[name]
  assert proc.returncode not in (0, None)
  last = text.strip().splitlines()[-1]
  assert last.startswith("experiments.trainer.NonFiniteError: non-finite ") or last.startswith(
      "experiments.train.NonFiniteError: non-finite "), last
  said = last.split("non-finite ")[1].split()
  assert said[:3] == [what, "at", "step"], last
  if step:  # Injected: the message names exactly the step.
    assert int(said[3]) == step, last
  else:  # learning_rate=1e30: the weights overflow, the loss is NaN after a few steps.
    step = int(said[3])
    assert step > 1
  assert "skip_nonfinite=True" in last
  # No checkpoint for the bad step; the last one (the step before) is finite.
  assert checkpoint_steps(workdir) == list(range(1, step))
  assert not [n for n in os.listdir(os.path.join(workdir, "checkpoints")) if "tmp" in n]
  state = load_checkpoint(workdir)
  assert all(np.isfinite(v).all() for v in state.values())
  assert [l["step"] for l in metrics_lines(workdir)] == list(range(1, step))


def test_skip_nonfinite_keeps_parameters_and_counts(nan_runs):
  workdir, proc, text = nan_runs["skip"]
  assert proc.returncode == 0, text[-3000:]
  lines = metrics_lines(workdir)
  assert [l["step"] for l in lines] == [1, 2, 3, 4, 5, 6]
  assert [l["train/skipped_steps"] for l in lines] == [0, 0, 1, 1, 2, 2]
  assert np.isfinite(lines[2]["train/loss"]) and np.isnan(lines[2]["train/grad_norm"])
  assert np.isnan(lines[4]["train/loss"])
  states = {s: load_checkpoint(workdir, s) for s in range(1, 7)}
  without_counters = lambda s: {k: v for k, v in s.items() if k not in ("['step']",
                                                                        "['skipped']")}
  for bad in (3, 5):  # Skipped: params and optimizer state as after the step before.
    assert_same_arrays(without_counters(states[bad]), without_counters(states[bad - 1]))
  for good in (2, 4, 6):  # Normal steps change the parameters.
    before, after = params_of(states[good - 1]), params_of(states[good])
    assert any(not np.array_equal(before[k], after[k]) for k in before)
  assert [int(states[s]["['skipped']"]) for s in range(1, 7)] == [0, 0, 1, 1, 2, 2]
  assert all(np.isfinite(v).all() for v in states[6].values())


# ---------------------------------------------------------------------------------------------
# Bad configuration: one-line ConfigError naming the field, before anything compiles.


def tiny_config(data_dir: str) -> ml_collections.ConfigDict:
  """The config of test_train.TINY_FLAGS, in-process."""
  c = sprites.get_config()
  c.data.update(image_size=16, num_frames=4, num_train=16, num_eval=4, data_dir=data_dir)
  c.model.update(num_slots=3, slot_dim=4)
  c.model.decoder.channels = (8,)
  c.model.encoder.channels = (8,)
  c.model.predictor.update(model_size=16, mlp_size=16, lstm_size=16)
  c.model.refine.mlp_hidden = (16,)
  c.model.attention.update(qk_dim=8, value_dim=8)
  c.train.batch_size = 2
  c.eval.batch_size = 2
  return c


@pytest.fixture(name="no_compile")
def _no_compile():
  """Fails the test if XLA compiles anything while it runs."""
  compiles = []
  listener = lambda event, duration, **kw: compiles.append(event) if (
      event == "/jax/core/compile/backend_compile_duration") else None
  jax.monitoring.register_event_duration_secs_listener(listener)
  yield
  jax.monitoring.unregister_event_duration_listener(listener)
  assert not compiles, f"{len(compiles)} XLA compilations before the error"


def assert_one_line(error, *names):
  message = str(error.value)
  assert "\n" not in message, message
  for name in names:
    assert name in message, (name, message)


BAD_CONFIGS = [
    ("model.num_slots", 0), ("model.slot_dim", -2), ("data.num_frames", 0),
    ("train.batch_size", 0), ("train.num_steps", 0), ("train.num_steps", -3),
    ("model.beta", -0.1), ("model.sigma_x", 0.0), ("model.sigma_x", -1.0),
    ("model.predictor.kind", "gru"), ("eval.batch_size", 0), ("train.learning_rate", 0.0),
    ("eval.static_steps", -1), ("train.decay_start", -2),
]


@pytest.mark.parametrize("field,value", BAD_CONFIGS)
def test_bad_config_value(tmp_path, no_compile, field, value):
  del no_compile
  config = tiny_config(str(tmp_path / "data"))
  *groups, last = field.split(".")
  node = config
  for g in groups:
    node = node[g]
  node[last] = value
  with pytest.raises(ConfigError) as error:
    train.train_and_evaluate(config, str(tmp_path / "run"))
  assert_one_line(error, f"config.{field}", f"got {value!r}")
  assert not os.path.exists(tmp_path / "run") and not os.path.exists(tmp_path / "data")


def test_unknown_preset_or_dataset(no_compile):
  del no_compile
  with pytest.raises(ConfigError) as error:
    ablations.get_config("nonexistent")
  assert_one_line(error, "'nonexistent'", "op3")
  with pytest.raises(ConfigError) as error:
    ablations.get_config("op3,nowhere")
  assert_one_line(error, "'nowhere'", "room3d")


def test_cli_errors_batch_per_device_and_preset(tmp_path_factory, tmp_path):
  """Through the command line: 2 CPU devices with batch 3, an unknown preset."""
  two_devices = env(xla_flags="--xla_force_host_platform_device_count=2")
  workdir = str(tmp_path / "run")
  procs = [start(train_args(tmp_path_factory, workdir, 5, train__batch_size=3),
                 two_devices, str(tmp_path / "a.log")),
           start(["--config=experiments/configs/ablations.py:nonexistent",
                  f"--workdir={workdir}"], env(), str(tmp_path / "b.log"))]
  texts = [finish(p, str(tmp_path / n), timeout=120) for p, n in zip(procs, ("a.log", "b.log"))]
  assert procs[0].returncode != 0
  last = console(texts[0]).strip().splitlines()[-1]
  assert last.endswith(": config.train.batch_size=3 is not divisible by the 2 devices; use a "
                       "multiple of 2"), last
  assert procs[1].returncode != 0
  assert ("parts_jax.config.ConfigError: unknown ablation preset 'nonexistent'; valid: "
          "s_iodine, op3") in texts[1]
  assert not os.path.exists(workdir)  # Stopped before writing anything.


def write_npz_split(root, split, num=3, t=4, size=16, **arrays):
  folder = os.path.join(root, split)
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(0)
  paths = []
  for i in range(num):
    episode = dict(video=rng.integers(0, 256, (t, size, size, 3), dtype=np.uint8), **arrays)
    paths.append(os.path.join(folder, f"ep{i}.npz"))
    np.savez(paths[-1], **episode)
  return paths


def npz_config(root, **data):
  c = tiny_config(root)
  c.data.update(name="npz", num_train=0, num_eval=0, **data)
  return c


def test_actions_required_but_missing(tmp_path, no_compile):
  del no_compile
  root = str(tmp_path / "npz")
  for split in ("train", "eval"):
    write_npz_split(root, split)  # No actions.
  config = npz_config(root)
  assert config.model.use_actions
  with pytest.raises(ConfigError) as error:
    train.train_and_evaluate(config, str(tmp_path / "run"))
  assert_one_line(error, "config.model.use_actions", os.path.join(root, "train"))


# ---------------------------------------------------------------------------------------------
# Bad data: a DataError naming the file, through registry.get_iterator (what the trainer calls)
# and the training entry point.


def first_batch(config, split="train"):
  it = registry.get_iterator(config.data, split, 2, seed=0, prefetch=0, shuffle=False)
  try:
    return next(it)
  finally:
    it.close()


def test_npz_frames_are_resized_to_image_size(tmp_path):
  """Documented (datasets/npz_episodes.py): frames of another size are resized, not refused;
  halving averages each 2x2 block."""
  root = str(tmp_path / "npz")
  write_npz_split(root, "train", size=32)
  batch = first_batch(npz_config(root, image_size=16))
  assert batch["video"].shape == (2, 4, 16, 16, 3)
  with np.load(os.path.join(root, "train", "ep0.npz")) as f:
    video = f["video"].astype(np.float64)
  blocks = np.round(video.reshape(4, 16, 2, 16, 2, 3).mean((2, 4)))
  np.testing.assert_allclose(batch["video"][0] * 255, blocks, atol=1e-3)


BAD_NPZ = {
    "video_shape": dict(video=np.zeros((4, 16, 16), np.uint8)),
    "video_dtype": dict(video=np.zeros((4, 16, 16, 3), np.float32)),
    "actions_nan": dict(actions=np.full((4, 2), np.nan, np.float32)),
    "actions_shape": dict(actions=np.zeros((3, 2), np.float32)),
    "segmentations_shape": dict(segmentations=np.zeros((4, 8, 8), np.int32)),
    "too_short": dict(video=np.zeros((2, 16, 16, 3), np.uint8)),
    "truncated": None,
}


@pytest.mark.parametrize("problem", sorted(BAD_NPZ))
def test_bad_npz_episode_names_the_file(tmp_path, problem):
  root = str(tmp_path / "npz")
  good = write_npz_split(root, "train", num=3, actions=np.zeros((4, 2), np.float32),
                         segmentations=np.zeros((4, 16, 16), np.int32))
  bad = good[1]
  if problem == "truncated":
    data = open(bad, "rb").read()
    open(bad, "wb").write(data[:len(data) // 2])
  else:
    with np.load(bad) as f:
      episode = dict(f)
    episode.update(BAD_NPZ[problem])
    np.savez(bad, **episode)
  config = npz_config(root)
  with pytest.raises(base.DataError) as error:
    for _ in range(2):  # Episode 1 is in the first two batches.
      first_batch(config)
  assert_one_line(error, bad)


def test_empty_npz_split_and_missing_eval(tmp_path):
  root = str(tmp_path / "npz")
  os.makedirs(os.path.join(root, "train"))
  with pytest.raises(base.DataError) as error:
    first_batch(npz_config(root))
  assert_one_line(error, os.path.join(root, "train"), "no .npz episodes")
  write_npz_split(root, "train", actions=np.zeros((4, 2), np.float32))
  with pytest.raises(base.DataError) as error:
    first_batch(npz_config(root), "eval")
  assert_one_line(error, os.path.join(root, "eval"))


@pytest.mark.parametrize("problem", ["nan", "range"])
def test_float_frames_nan_or_out_of_range_name_the_file(tmp_path, problem):
  """Float frames (only accepted by the converter, which scales them to uint8)."""
  src = tmp_path / "loose"
  os.makedirs(src)
  frames = np.random.default_rng(0).uniform(0, 1, (4, 16, 16, 3)).astype(np.float32)
  np.savez(src / "a.npz", frames=frames)
  frames[1, 2, 3, 0] = np.nan if problem == "nan" else 1.5
  np.savez(src / "b.npz", frames=frames)
  with pytest.raises(base.DataError) as error:
    npz_episodes.convert_folder(str(src), str(tmp_path / "out"), eval_fraction=0.5)
  assert_one_line(error, str(src / "b.npz"))


class _FloatSource(base.EpisodeSource):
  """A custom source (episodes as arrays in memory) with one bad episode."""
  origin = "my_source.h5"
  action_dim = 0
  has_segmentations = False

  def __init__(self, bad):
    self.bad = bad

  def __len__(self):
    return 4

  def __getitem__(self, index):
    video = np.full((4, 16, 16, 3), 0.5, np.float32)
    if index == 2:
      video = self.bad(video)
    return {"video": video, "actions": np.zeros((4, 0), np.float32)}


@pytest.mark.parametrize("bad,expected", [
    (lambda v: np.where(v > 0, np.nan, v).astype(np.float32), "NaN"),
    (lambda v: v * 3, "[0, 1]"),
    (lambda v: v[:, :8, :8], "8x8"),
    (lambda v: v.astype(np.float64)[..., :1], "shape"),
    (lambda v: (v * 10).astype(np.int32), "dtype"),
])
def test_bad_frames_from_a_custom_source(bad, expected):
  it = pipeline.BatchIterator(_FloatSource(bad), 2, seed=0, shuffle=False, prefetch=0,
                              num_frames=4, image_size=16)
  next(it)
  with pytest.raises(base.DataError) as error:
    next(it)  # Batch 1 holds episode 2.
  assert_one_line(error, "my_source.h5 episode 2", expected)


@pytest.fixture(scope="module", name="sprites_cache")
def _sprites_cache(tmp_path_factory):
  """A small sprites cache (4 train episodes) built through the registry."""
  config = tiny_config(str(tmp_path_factory.mktemp("sprites_cache")))
  config.data.update(num_train=4, num_eval=2)
  first_batch(config)
  return config


def _copy_cache(config, tmp_path):
  import shutil  # pylint: disable=g-import-not-at-top
  copy = ml_collections.ConfigDict(config.to_dict())
  copy.data.data_dir = str(tmp_path / "cache")
  shutil.copytree(config.data.data_dir, copy.data.data_dir)
  (path,) = [os.path.join(r, d) for r, ds, _ in os.walk(copy.data.data_dir) for d in ds
             if d.startswith("train_")]
  return copy, path


def _record_file(path):
  (record,) = [os.path.join(r, f) for r, _, fs in os.walk(path) for f in fs
               if ".array_record-" in f]
  return record


@pytest.mark.parametrize("problem", ["truncated", "missing"])
def test_damaged_cache_names_the_file(sprites_cache, tmp_path, problem):
  config, path = _copy_cache(sprites_cache, tmp_path)
  record = _record_file(path)
  if problem == "truncated":
    data = open(record, "rb").read()
    open(record, "wb").write(data[:len(data) // 2])
  else:
    os.remove(record)
  with pytest.raises(base.DataError) as error:
    first_batch(config)
  assert_one_line(error, record, "delete")


def test_damaged_cache_is_caught_by_the_size_check(sprites_cache, tmp_path):
  config, path = _copy_cache(sprites_cache, tmp_path)
  record = _record_file(path)
  size = os.path.getsize(record)
  open(record, "r+b").truncate(size // 2)
  with pytest.raises(base.DataError) as error:
    first_batch(config)
  assert_one_line(error, record, f"expected {size} bytes, found {size // 2}")


def test_corrupt_marker_is_rebuilt(sprites_cache, tmp_path):
  """COMPLETE.json is derived from the shard directories: a garbled one is written again."""
  config, path = _copy_cache(sprites_cache, tmp_path)
  with open(os.path.join(path, cache.MARKER), "w") as f:
    f.write("{not json")
  batch = first_batch(config)
  expected = first_batch(sprites_cache)
  for k in expected:
    np.testing.assert_array_equal(batch[k], expected[k])
  with open(os.path.join(path, cache.MARKER)) as f:
    assert json.load(f)["num_episodes"] == 4


def test_empty_generated_split(tmp_path):
  config = tiny_config(str(tmp_path))
  config.data.num_eval = 0
  with pytest.raises(base.DataError) as error:
    first_batch(config, "eval")
  assert_one_line(error, "data.num_eval")


def test_training_entry_point_reports_bad_file(sprites_cache, tmp_path, no_compile):
  """The trainer stops with the DataError of a damaged cache before compiling anything."""
  del no_compile
  config, path = _copy_cache(sprites_cache, tmp_path)
  record = _record_file(path)
  data = open(record, "rb").read()
  open(record, "wb").write(data[:100])
  with pytest.raises(base.DataError) as error:
    train.train_and_evaluate(config, str(tmp_path / "run"))
  assert_one_line(error, record)
  assert not os.path.exists(os.path.join(tmp_path, "run", "metrics.jsonl"))
  assert json.load(open(os.path.join(tmp_path, "run", "config.json")))["data"]["num_train"] == 4
