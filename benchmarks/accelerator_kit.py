r"""The accelerator kit: one command that verifies, measures and trains parts-jax on a GPU.

  bash scripts/gpu_kit.sh --budget_s=540          # on the GPU machine (installs .whl/ first)
  python -m benchmarks.accelerator_kit --out=DIR --dry_run   # CPU rehearsal, tiny sizes, ~1 min

Stages, in order; each is recorded in OUT/report.json as soon as it ends (a stage that fails is
recorded with its error and the next stage still runs):
  device       backend, devices, versions, nvidia-smi
  equivalence  the lowering-equivalence test (scan / unroll / windows: outputs, loss, gradients)
               run by pytest on the default device, with float32 matmuls (--dry_run: collected
               only, since the test suite runs it)
  correctness  scan vs unroll gradients at the sprites config's sizes on the device (float32
               matmuls), and a few training steps of the default config with finite losses
  timings      train-step time under the `scan` lowering for the sprites config and for a
               synthetic batch of the paper-sized playroom config, for each --precisions entry
               (JAX's default_matmul_precision: float32 = true fp32, tensorfloat32, bfloat16),
               true FLOPs per step (the unrolled step's XLA count at T = 1 and 2, extrapolated
               linearly to T) and MFU against a matmul peak measured in the same process at the
               same precision; then the host CPU's step time for the sprites config (default
               CPU lowering) in a subprocess of the same run, for the speed-up
  train        experiments.train on the sprites config (in-memory data, the default recipe
               plus --train_overrides), resuming from --init_workdir (default
               checkpoints/sprites), SIGTERM at the budget (a checkpoint is saved; the report's
               config_changed lists what the resume changed); then experiments.evaluate on it
  archive      OUT/checkpoint.tar.gz (latest checkpoint, or the last eval.average_checkpoints
               of them, config.json, metrics.jsonl, tb/: extract it
               into a workdir and training resumes, on a CPU too), OUT/metrics.jsonl,
               OUT/eval_metrics.json
  study        (only with --stages=...,study) the segmentation study of
               experiments/configs/study.py: --study_presets x --study_seeds runs of
               --study_steps steps, --study_jobs side by side, until the budget; OUT/study.tar.gz
               (each run's metrics and latest checkpoint, for the probes on the host) and
               OUT/study_results.md (a GPU session: --stages=device,study)
The train stage gets what is left of --budget_s after the others, minus --reserve_s for the
evaluation and the archive. --stages picks stages (e.g. --stages=timings for a rerun).

First run: an NVIDIA H200, 2026-11-26, --budget_s=565 --timings_budget_s=170. Playroom was
skipped at that budget and timed by the same time_config() in a second call; the FLOPs of that
run were XLA:GPU's count, which leaves out cuDNN convolutions, and were recounted on the CPU
(extrapolated_flops now always counts there). README, "On a GPU or TPU", has the numbers.
"""
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import traceback
from typing import Any, Callable, Dict, List

from absl import app, flags
import jax
import numpy as np

from benchmarks import common
from experiments import metrics_log, setup_lib, sweep

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The kit's flags (defined only when it runs as a program: its helpers are importable)."""
  flags.DEFINE_string("out", None, "Output folder (report.json, logs, checkpoint archive).")
  flags.DEFINE_float("budget_s", 540.0, "Wall-clock budget of the whole kit, seconds.")
  flags.DEFINE_float("reserve_s", 75.0, "Seconds kept for evaluate + archive.")
  flags.DEFINE_float(
      "timings_budget_s", 330.0, "Seconds from the kit's start after which timing configurations "
      "not yet started are skipped (on an H200: device + equivalence + correctness took 122 s, "
      "sprites 66 s for both precisions, playroom 160 s).")
  flags.DEFINE_list("stages", ["device", "equivalence", "correctness", "timings", "train"],
                    "Stages to run (train includes evaluate and archive); `study` (not in the "
                    "default) runs the segmentation study.")
  flags.DEFINE_list(
      "study_presets", ["baseline", "eps_1e-10", "lr_1e-3", "lambda_input", "query_layernorm",
                        "action_scale", "refine_2", "sigma_x_0.05", "slow_motion", "still",
                        "combined"], "Presets of experiments/configs/study.py for --stages=study.")
  flags.DEFINE_list("study_seeds", ["0", "1"], "Seeds of the study.")
  flags.DEFINE_integer("study_steps", 1500, "Training steps per study run.")
  flags.DEFINE_integer("study_jobs", 8, "Study runs side by side on the device.")
  flags.DEFINE_bool("dry_run", False, "Tiny sizes everywhere (CPU rehearsal, CI test).")
  flags.DEFINE_list("precisions", ["float32", "bfloat16"],
                    "jax.default_matmul_precision values to time.")
  flags.DEFINE_list("configs", ["sprites", "playroom"], "Configs to time.")
  flags.DEFINE_integer("steps", 20, "Timed steps per configuration (median).")
  flags.DEFINE_string("init_workdir", "checkpoints/sprites",
                      "Run to resume training from ('' = start fresh).")
  flags.DEFINE_string("workdir", "", "Training workdir (default: /tmp/parts_kit_run).")
  flags.DEFINE_list("train_overrides", [],
                    "a.b=value config overrides for the train stage, e.g. the recipe of the run "
                    "it resumes when that is not the default (README, Results); tuple values "
                    "keep their commas: model.decoder.channels=(64,64,64).")
  flags.DEFINE_integer("num_steps", 200_000, "config.train.num_steps for the train stage (an "
                       "upper bound; the budget stops it first).")


# Tiny sizes for --dry_run: the same code paths in seconds on a 2-core CPU. N = 1 refinement
# step: with the N = 2 sprites default, the dry run's first `experiments.train` subprocess was
# aborted (SIGABRT, inside the windows lowering's gradient sums) in two CI runs, not when run
# alone; N = 2 itself is covered by tests/test_model.py and tests/test_reference_step.py.
DRY_RUN_OVERRIDES = {
    "data.image_size": 16, "data.num_frames": 4, "data.num_train": 32, "data.num_eval": 8,
    "model.num_slots": 2, "model.slot_dim": 4, "model.tbptt": 2, "model.num_refine_steps": 1,
    "model.decoder.channels": (8,), "model.encoder.channels": (8,),
    "model.attention.qk_dim": 8, "model.attention.value_dim": 8, "model.refine.mlp_hidden": (8,),
    "model.predictor.model_size": 8, "model.predictor.num_layers": 1,
    "model.predictor.num_heads": 1, "model.predictor.mlp_size": 8,
    "model.predictor.lstm_size": 8,
    "train.batch_size": 2, "train.log_every": 2, "train.eval_every": 4,
    "train.checkpoint_every": 4, "eval.num_sequences": 4, "eval.batch_size": 2,
}


def load_config(name: str, overrides: Dict[str, Any]):
  """experiments/configs/NAME.py's get_config() with `overrides` ({"a.b": value})."""
  import importlib  # pylint: disable=g-import-not-at-top
  from experiments.configs import common as configs  # pylint: disable=g-import-not-at-top
  return configs.set_fields(importlib.import_module(f"experiments.configs.{name}").get_config(),
                            overrides)


def override_flags(overrides: Dict[str, Any]) -> List[str]:
  """--config.a.b=value flags for a subprocess."""
  return [f"--config.{k}={sweep.format_value(v)}" for k, v in overrides.items()]


# A run's files beside its checkpoints that travel with it (into the kit's workdir and back in
# checkpoint.tar.gz): the config, the metrics log and the record of config changes on resume;
# and its folders: the TensorBoard logs (the kit's steps add an event file of their own).
RUN_FILES = ("config.json", "metrics.jsonl", setup_lib.CONFIG_HISTORY)
RUN_DIRS = ("tb",)


def join_override_pieces(pieces: List[str]) -> List[str]:
  """--train_overrides is a comma-separated list; a value with commas of its own (a tuple, e.g.
  model.decoder.channels=(64,64,64)) arrives in pieces. A piece without "=" continues the one
  before it."""
  joined: List[str] = []
  for piece in pieces:
    if "=" in piece or not joined:
      joined.append(piece)
    else:
      joined[-1] += "," + piece
  bad = [o for o in joined if "=" not in o]
  if bad:
    raise app.UsageError(f"--train_overrides entries are a.b=value, got {bad[0]!r}")
  return joined


def _checkpoint_steps(workdir: str) -> List[int]:
  """The steps of WORKDIR/checkpoints/<step>, ascending."""
  return sorted(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints")) if s.isdigit())


class Report:
  """OUT/report.json, rewritten after every stage."""

  def __init__(self, out: str):
    self.path = os.path.join(out, "report.json")
    self.data: Dict[str, Any] = dict(started=time.strftime("%Y-%m-%d %H:%M:%S %Z"), stages={})
    self.write()

  def stage(self, name: str, fn: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
    print(f"\n=== {name} ===", flush=True)
    t0 = time.time()
    try:
      result = dict(ok=True, **fn())
    except Exception as e:  # pylint: disable=broad-except
      traceback.print_exc()
      result = dict(ok=False, error=f"{type(e).__name__}: {e}"[:2000])
    result["seconds"] = round(time.time() - t0, 1)
    self.data["stages"][name] = result
    self.write()
    print(json.dumps({name: result}, default=str)[:4000], flush=True)
    return result

  def write(self):
    with open(self.path + ".tmp", "w") as f:
      json.dump(self.data, f, indent=1, default=str)
    os.replace(self.path + ".tmp", self.path)


def stage_device() -> Dict[str, Any]:
  info = dict(backend=jax.default_backend(), devices=[str(d) for d in jax.devices()],
              device_kind=jax.devices()[0].device_kind, jax=jax.__version__,
              python=platform.python_version(), processor=_cpu_name())
  for name in ("jaxlib", "optax", "chex", "orbax.checkpoint", "haiku", "ml_collections", "numpy"):
    try:
      mod = __import__(name, fromlist=["__version__"])
      info[name] = getattr(mod, "__version__", "?")
    except ImportError as e:
      info[name] = f"missing: {e}"
  if shutil.which("nvidia-smi"):
    info["nvidia_smi"] = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.max.sm",
         "--format=csv,noheader"], capture_output=True, text=True, timeout=30).stdout.strip()
  return info


def _cpu_name() -> str:
  return f"{common.processor_name()} ({os.cpu_count()} CPUs)"


def stage_equivalence(out: str) -> Dict[str, Any]:
  env = dict(os.environ, JAX_DEFAULT_MATMUL_PRECISION="float32")
  test = "tests/test_model.py::test_every_lowering_gives_the_same_loss_and_gradients"
  # The dry run only collects it: the test suite that runs the dry run runs the test itself.
  cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test
         ] + (["--collect-only"] if FLAGS.dry_run else [])
  proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
  with open(os.path.join(out, "pytest.log"), "w") as f:
    f.write(proc.stdout + proc.stderr)
  last = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
  if proc.returncode != 0:
    raise RuntimeError(f"pytest exit {proc.returncode}: {last}")
  return dict(summary=last)


def stage_correctness(overrides: Dict[str, Any]) -> Dict[str, Any]:
  """scan vs unroll gradients (float32 matmuls) and a few finite training steps."""
  from experiments import setup_lib, trainer  # pylint: disable=g-import-not-at-top
  result = {}
  with jax.default_matmul_precision("float32"):
    config = load_config("sprites", overrides)
    batch = common.synthetic_batch(config, batch_size=2, num_frames=config.model.tbptt + 2)
    grads = {}
    for loop in ("scan", "unroll"):
      config.model.time_loop = loop
      model = setup_lib.make_model(config)
      params = jax.jit(model.init)(jax.random.PRNGKey(0), batch)
      params = jax.tree.map(  # off the initial values (the update heads start at zero)
          lambda p, k: p + 0.1 * jax.random.normal(k, p.shape),
          params, _leaf_keys(params))
      opt = trainer.make_optimizer(config.train)
      state = dict(step=np.int32(3), params=params, opt_state=opt.init(params),
                   rng=jax.random.PRNGKey(5), skipped=np.int32(0))
      grads[loop] = trainer.TrainStep(model, opt, False).grads(state, batch)
    (g_scan, s_scan), (g_unroll, s_unroll) = grads["scan"], grads["unroll"]
    # Per leaf, relative to the leaf's own largest gradient; leaves whose gradient is zero in
    # exact arithmetic (attention key biases: softmax ignores them) are compared to 1e-4 of the
    # largest gradient of all leaves instead.
    scale = max(float(np.max(np.abs(b))) for b in jax.tree.leaves(g_unroll))
    worst, worst_leaf = 0.0, ""
    for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(g_scan)[0],
                            jax.tree.leaves(g_unroll)):
      a, b = np.asarray(a), np.asarray(b)
      err = float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-4 * scale))
      if err > worst:
        worst, worst_leaf = err, jax.tree_util.keystr(path)
    result.update(grad_max_rel_diff_per_leaf=worst, worst_leaf=worst_leaf,
                  loss_scan=float(-s_scan["elbo"]), loss_unroll=float(-s_unroll["elbo"]))
    if worst > 1e-3:
      raise AssertionError(f"scan vs unroll gradients differ: {worst_leaf} relative {worst}")
  config = load_config("sprites", overrides)
  config.model.time_loop = "scan"
  run = common.StepRunner(config, common.synthetic_batch(config))
  losses = [float(run()["loss"]) for _ in range(5)]
  result["train_losses"] = losses
  if not np.all(np.isfinite(losses)):
    raise AssertionError(f"non-finite training loss: {losses}")
  return result


def _leaf_keys(tree):
  leaves, treedef = jax.tree.flatten(tree)
  return jax.tree.unflatten(treedef, list(jax.random.split(jax.random.PRNGKey(9), len(leaves))))


def time_config(name: str, overrides: Dict[str, Any], precision: str, steps: int,
                peak_cache: Dict[str, float], flops_cache: Dict[str, float]) -> Dict[str, Any]:
  """One (config, precision) timing under the scan lowering."""
  config = load_config(name, dict(overrides, **{"model.time_loop": "scan"}))
  batch = common.synthetic_batch(config)
  with jax.default_matmul_precision(precision):
    t0 = time.perf_counter()
    run = common.StepRunner(config, batch)
    jax.block_until_ready(run())
    first_s = time.perf_counter() - t0
    jax.block_until_ready(run())
    step_s = common.median_time(run, steps)
    if name not in flops_cache:      # FLOPs do not depend on the matmul precision
      flops_cache[name] = common.extrapolated_flops(run, batch)
    flops = flops_cache[name]
    if precision not in peak_cache:
      n = 1024 if FLAGS.dry_run else 8192
      peak_cache[precision] = common.matmul_peak_flops(n=n)
  b, t = batch["video"].shape[:2]
  peak = peak_cache[precision]
  return dict(config=name, precision=precision, time_loop=run.model.time_loop,
              conv_impl=run.model.conv_impl, batch_size=b, num_frames=t,
              image_size=config.data.image_size, num_slots=config.model.num_slots,
              first_step_s=first_s, step_s=step_s, steps_per_s=1.0 / step_s,
              frames_per_s=b * t / step_s, flops_per_step=flops, achieved_flops=flops / step_s,
              peak_flops=peak, mfu=flops / step_s / peak)


def stage_timings(overrides: Dict[str, Any], deadline: float) -> Dict[str, Any]:
  rows, skipped, peaks, flops = [], [], {}, {}
  for name in FLAGS.configs:
    for precision in FLAGS.precisions:
      if time.time() > deadline:
        skipped.append(f"{name}/{precision}")
        continue
      try:
        row = time_config(name, overrides if FLAGS.dry_run or name == "sprites" else {},
                          precision, FLAGS.steps, peaks, flops)
        rows.append(row)
        print(json.dumps(row), flush=True)
      except Exception as e:  # pylint: disable=broad-except
        traceback.print_exc()
        rows.append(dict(config=name, precision=precision, error=f"{type(e).__name__}: {e}"[:500]))
  cpu = _cpu_step(overrides)
  result = dict(rows=rows, skipped=skipped, matmul_peaks=peaks, host_cpu=cpu)
  gpu = [r for r in rows if r.get("config") == "sprites" and "step_s" in r]
  if gpu and "step_s" in cpu:
    result["speedup_vs_host_cpu"] = {r["precision"]: cpu["step_s"] / r["step_s"] for r in gpu}
  return result


def _cpu_step(overrides: Dict[str, Any], attempts: int = 2) -> Dict[str, Any]:
  """The sprites config's step on this machine's CPU (its default CPU lowering), same run.

  A failed measurement is tried once more (in CI its subprocess failed once, cause unseen);
  the first failure stays in the row as `earlier_error`."""
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  cmd = [sys.executable, "-m", "benchmarks.train_step", "--steps=3", "--warmup=1",
         "--config=experiments/configs/sprites.py"] + override_flags(overrides)
  errors = []
  for _ in range(attempts):
    try:
      proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    except subprocess.TimeoutExpired:
      errors.append("timed out after 300 s")
      continue
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode or not lines:
      errors.append(f"exit {proc.returncode}: {proc.stderr[-2000:]}")
      continue
    row = json.loads(lines[-1])
    row.pop("flops_share", None)
    row["processor"] = _cpu_name()
    if errors:
      row["earlier_error"] = errors[0]
    return row
  return dict(error=" | then: ".join(errors))


def _config_changed_at(workdir: str, step: int) -> Dict[str, Any]:
  """What the run's config record says changed when training (re)started at `step`: {field:
  [old, new]} ({} when nothing did), so the report shows the recipe a resumed run went on with."""
  path = os.path.join(workdir, setup_lib.CONFIG_HISTORY)
  changed = {}
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        entry = json.loads(line)
        if entry.get("step") == step:
          changed = entry.get("changed", {})
  return changed


def stage_train(out: str, workdir: str, overrides: Dict[str, Any], seconds: float
                ) -> Dict[str, Any]:
  if os.path.exists(workdir):
    shutil.rmtree(workdir)
  os.makedirs(workdir)
  start_step = 0
  if FLAGS.init_workdir:
    if not os.path.isdir(os.path.join(FLAGS.init_workdir, "checkpoints")):
      raise FileNotFoundError(f"--init_workdir={FLAGS.init_workdir} has no checkpoints/")
    shutil.copytree(os.path.join(FLAGS.init_workdir, "checkpoints"), os.path.join(workdir, "checkpoints"))
    for name in RUN_FILES + RUN_DIRS:
      source = os.path.join(FLAGS.init_workdir, name)
      if os.path.isdir(source):
        shutil.copytree(source, os.path.join(workdir, name))
      elif os.path.exists(source):
        shutil.copy(source, workdir)
    steps = _checkpoint_steps(workdir)
    start_step = steps[-1] if steps else 0
  train_overrides = dict(overrides, **{"data.cache": False,
                                       "train.num_steps": FLAGS.num_steps})
  cmd = [sys.executable, "-m", "experiments.train", "--config=experiments/configs/sprites.py",
         f"--workdir={workdir}"] + override_flags(train_overrides) + [
             f"--config.{o}" for o in join_override_pieces(FLAGS.train_overrides)]
  print(" ".join(cmd), f"  (for {seconds:.0f} s)", flush=True)
  log_path = os.path.join(out, "train.log")
  t0 = time.time()
  with open(log_path, "w") as log:
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
      proc.wait(timeout=max(seconds, 1.0))
    except subprocess.TimeoutExpired:
      proc.send_signal(signal.SIGTERM)   # train saves a checkpoint and exits
      try:
        proc.wait(timeout=90)
      except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
  elapsed = time.time() - t0
  last = (metrics_log.read(workdir) or [{}])[-1]
  end_step = int(last.get("step", start_step)) if last else start_step
  steps = _checkpoint_steps(workdir)
  result = dict(command=" ".join(cmd), returncode=proc.returncode, seconds_training=elapsed,
                start_step=start_step, last_logged_step=end_step,
                checkpoint_step=steps[-1] if steps else None, last_log=last,
                config_changed=_config_changed_at(workdir, start_step))
  if proc.returncode not in (0, -signal.SIGTERM):
    with open(log_path) as f:
      tail = f.read()[-1500:]
    raise RuntimeError(f"train exited {proc.returncode}: {tail}")
  rate = metrics_log.median_steps_per_s(workdir, after_step=start_step)
  if rate is not None:
    result["median_steps_per_s"] = rate
  return result


def stage_study(out: str, overrides: Dict[str, Any], seconds: float) -> Dict[str, Any]:
  """experiments.sweep over the study presets x seeds, --study_jobs at a time, stopped at the
  budget (finished runs are kept); OUT/study.tar.gz holds every run's eval/metrics.json,
  metrics.jsonl, config.json, its latest checkpoint (about 1 MB with the default model: the
  probes, experiments.mask_probe and experiments.position_probe, then run on the host) and the
  tables, OUT/study_results.md the table."""
  root = os.path.abspath("/tmp/parts_kit_study" if not FLAGS.workdir
                         else FLAGS.workdir + "_study")
  spec = f"presets={','.join(FLAGS.study_presets)};seeds={','.join(FLAGS.study_seeds)}"
  study_overrides = dict(overrides, **{"data.cache": False,
                                       "train.num_steps": FLAGS.study_steps,
                                       "train.checkpoint_every": FLAGS.study_steps,
                                       "train.max_checkpoints": 1})
  cmd = [sys.executable, "-m", "experiments.sweep", "--config=experiments/configs/study.py",
         f"--sweep={spec}", f"--workdir_root={root}", f"--jobs={FLAGS.study_jobs}"
         ] + override_flags(study_overrides)
  print(" ".join(cmd), f"  (for at most {seconds:.0f} s)", flush=True)
  t0 = time.time()
  with open(os.path.join(out, "study.log"), "w") as log:
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
      proc.wait(timeout=max(seconds, 1.0))
    except subprocess.TimeoutExpired:
      os.killpg(proc.pid, signal.SIGTERM)   # the runs save a checkpoint; unfinished rows stay out
      proc.wait(timeout=60)
  subprocess.run([sys.executable, "-m", "experiments.sweep", "--collect_only",
                  f"--workdir_root={root}"], capture_output=True, text=True, timeout=120)
  finished = 0
  with tarfile.open(os.path.join(out, "study.tar.gz"), "w:gz") as tar:
    for dirpath, _, files in os.walk(root):
      for name in files:
        rel = os.path.relpath(os.path.join(dirpath, name), root)
        in_checkpoint = os.sep + "checkpoints" + os.sep in os.sep + rel
        if in_checkpoint or name in ("metrics.json", "metrics.jsonl", "config.json",
                                     "config_history.jsonl", "results.md", "results.csv",
                                     "sweep.log"):
          tar.add(os.path.join(dirpath, name), arcname=os.path.join("study", rel))
          finished += name == "metrics.json"
  if os.path.exists(os.path.join(root, "results.md")):
    shutil.copy(os.path.join(root, "results.md"), os.path.join(out, "study_results.md"))
  return dict(command=" ".join(cmd), returncode=proc.returncode, seconds=time.time() - t0,
              runs_finished=finished,
              runs_planned=len(FLAGS.study_presets) * len(FLAGS.study_seeds))


def stage_evaluate(out: str, workdir: str) -> Dict[str, Any]:
  output = os.path.join(out, "eval_metrics.json")
  cmd = [sys.executable, "-m", "experiments.evaluate", f"--workdir={workdir}",
         f"--output={output}"]
  proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
  with open(os.path.join(out, "evaluate.log"), "w") as f:
    f.write(proc.stdout + proc.stderr)
  if proc.returncode:
    raise RuntimeError(f"evaluate exit {proc.returncode}: {proc.stderr[-1000:]}")
  with open(output) as f:
    m = json.load(f)
  return {k: m.get(k) for k in ("step", "fg_ari", "ari", "mse", "num_sequences")}


def stage_archive(out: str, workdir: str) -> Dict[str, Any]:
  ckpt = os.path.join(workdir, "checkpoints")
  steps = _checkpoint_steps(workdir)
  if not steps:
    raise FileNotFoundError(f"no checkpoint in {ckpt}")
  # The run evaluates the mean of its last eval.average_checkpoints checkpoints: they all travel.
  average = setup_lib.load_config(workdir).eval.get("average_checkpoints", 1)
  path = os.path.join(out, "checkpoint.tar.gz")
  with tarfile.open(path, "w:gz") as tar:
    for step in steps[-average:]:
      tar.add(os.path.join(ckpt, str(step)), arcname=f"checkpoints/{step}")
    for name in RUN_FILES + RUN_DIRS:
      if os.path.exists(os.path.join(workdir, name)):
        tar.add(os.path.join(workdir, name), arcname=name)
  if os.path.exists(os.path.join(workdir, "metrics.jsonl")):
    shutil.copy(os.path.join(workdir, "metrics.jsonl"), out)
  return dict(archive=path, step=steps[-1], steps=steps[-average:],
              bytes=os.path.getsize(path))


def main(argv):
  del argv
  t_start = time.time()
  deadline = t_start + FLAGS.budget_s
  out = os.path.abspath(FLAGS.out or "kit_out")
  os.makedirs(out, exist_ok=True)
  overrides = DRY_RUN_OVERRIDES if FLAGS.dry_run else {}
  workdir = os.path.abspath(FLAGS.workdir or "/tmp/parts_kit_run")
  report = Report(out)
  report.data.update(dry_run=FLAGS.dry_run, budget_s=FLAGS.budget_s, argv=sys.argv)
  stages = set(FLAGS.stages)
  unknown = stages - {"device", "equivalence", "correctness", "timings", "train", "study"}
  if unknown:
    raise app.UsageError(f"unknown --stages {sorted(unknown)}")
  report.stage("device", stage_device)
  if "equivalence" in stages:
    report.stage("equivalence", lambda: stage_equivalence(out))
  if "correctness" in stages:
    report.stage("correctness", lambda: stage_correctness(overrides))
  if "timings" in stages:
    report.stage("timings", lambda: stage_timings(
        overrides, min(t_start + FLAGS.timings_budget_s, deadline - FLAGS.reserve_s - 30)))
  if "study" in stages:
    study_s = deadline - time.time() - 30 - (FLAGS.reserve_s + 60 if "train" in stages else 0)
    report.stage("study", lambda: stage_study(out, overrides, study_s))
  if "train" in stages:
    train_s = deadline - time.time() - FLAGS.reserve_s
    report.stage("train", lambda: stage_train(out, workdir, overrides, train_s))
    if os.path.isdir(os.path.join(workdir, "checkpoints")):
      report.stage("evaluate", lambda: stage_evaluate(out, workdir))
      report.stage("archive", lambda: stage_archive(out, workdir))
  report.data["total_seconds"] = round(time.time() - t_start, 1)
  report.data["all_ok"] = all(s["ok"] for s in report.data["stages"].values())
  report.write()
  print(f"\nkit finished in {report.data['total_seconds']} s; all stages ok: "
        f"{report.data['all_ok']}", flush=True)


if __name__ == "__main__":
  define_flags()
  with contextlib.suppress(KeyboardInterrupt):
    app.run(main)
