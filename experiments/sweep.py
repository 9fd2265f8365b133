r"""Sweeps presets x seeds x config values: train + evaluate every run, then one results table.

  python -m experiments.sweep --config=experiments/configs/ablations.py \
      --sweep="presets=s_iodine,op3,parts_no_transformer,parts;seeds=0,1,2" \
      [--workdir_root=workdirs/sweep] [--dry_run] [--config.train.num_steps=2000 ...]

--sweep is a ';'-separated list of NAME=V1,V2,... fields:
  presets=...   presets of experiments/configs/ablations.py (default: the preset of --config);
                the dataset of --config=ablations.py:PRESET,DATASET is kept for every preset.
  seeds=...     values of config.seed (default: config.seed). Only the model/training seed
                changes; the data (config.data.seed) is the same for every run.
  FIELD=...     any other config field, e.g. model.num_slots=5,7, is a grid axis (values as on
                the command line; commas inside brackets do not split: model.decoder.channels=
                (8,),(16,16)).
Runs are the product presets x FIELD values x seeds. The --config.x=y flags apply to every run.
Each run's workdir is ROOT/<preset>/seed<k>, or ROOT/<preset>/<field=value,...>/seed<k> with
grid axes. --dry_run prints one shell line per run (train && evaluate) for a cluster launcher.
Otherwise the runs go in subprocesses, seed-major (all presets' first seed, then the next), --jobs
at a time (default 1); a run whose eval/metrics.json exists is skipped, so re-running the command
resumes the sweep (train itself resumes from checkpoints), unless it was evaluated before the
step that --config.train.num_steps (or a train.num_steps grid axis) asks for: then training
resumes to that step and the new evaluation replaces the old (copy it out first to keep it), so
the same command with a larger num_steps continues a finished sweep.
Finally `collect(ROOT)` gathers every ROOT/**/eval/metrics.json into ROOT/results.csv and
ROOT/results.md: one row per run, then per group (the folder above seed<k>) the mean and the
population standard deviation (ddof=0) over its runs of fg_ari, ari and mse, and, for runs
evaluated with --config.eval.static_steps=S, of the static unroll's FG-ARI, MSE and KL at step T
(the training length) and S. --collect_only only builds the tables.
"""
import concurrent.futures
import csv
import dataclasses
import importlib.util
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from absl import app, flags
import ml_collections
import numpy as np
from ml_collections import config_flags

from experiments import evaluator, metrics_log

FLAGS = flags.FLAGS
# The table's columns (evaluator.Results.columns): the headline metrics; the segmentation
# diagnostics and the training speed (median train/steps_per_s of WORKDIR/metrics.jsonl); with
# --config.eval.static_steps=S (Fig 7), the static unroll at step T (the training length,
# "_at_t") and at its last step S.
METRICS = evaluator.HEADLINE
DIAG_METRICS = evaluator.DIAGNOSTIC_COLUMNS + ("steps_per_s",)
STATIC_METRICS = evaluator.STATIC_COLUMNS


class SweepError(ValueError):
  """A bad --sweep, --jobs or override flag of the sweep command line."""


@dataclasses.dataclass
class Run:
  preset: str
  seed: int
  grid: Dict[str, str]          # grid-axis overrides of this run, {"model.num_slots": "5"}
  config_arg: str               # --config value, e.g. experiments/configs/ablations.py:op3
  workdir: str


def split_values(text: str) -> List[str]:
  """Splits on commas outside brackets: "(8,),(16,16)" -> ["(8,)", "(16,16)"]."""
  values, depth, current = [], 0, ""
  for ch in text:
    depth += (ch in "([{") - (ch in ")]}")
    if ch == "," and depth == 0:
      values.append(current.strip())
      current = ""
    else:
      current += ch
  values.append(current.strip())
  return [v for v in values if v]


def parse_sweep(spec: str) -> Tuple[Optional[List[str]], Optional[List[int]],
                                    List[Tuple[str, List[str]]]]:
  """"presets=a,b;seeds=0,1;model.num_slots=5,7" -> (presets, seeds, grid axes)."""
  presets, seeds, grid = None, None, []
  for field in filter(None, (f.strip() for f in spec.split(";"))):
    name, eq, values = field.partition("=")
    name, values = name.strip(), split_values(values)
    if not eq or not name or not values:
      raise SweepError(f"--sweep field {field!r} is not NAME=V1,V2,...")
    if name == "presets":
      presets = values
    elif name == "seeds":
      try:
        seeds = [int(v) for v in values]
      except ValueError:
        raise SweepError(f"--sweep seeds must be integers, got {values}") from None
    else:
      grid.append((name, values))
  return presets, seeds, grid


def _has_field(config: ml_collections.ConfigDict, path: str) -> bool:
  node = config
  for key in path.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or key not in node:
      return False
    node = node[key]
  return True


def _tag(grid: Dict[str, str]) -> str:
  """{"model.decoder.channels": "(16,16)"} -> "model.decoder.channels=16-16"."""
  clean = lambda v: re.sub(r"[^A-Za-z0-9._+-]", "", re.sub(r"[\s,]+", "-", v)).strip("-")
  return ",".join(f"{clean(k)}={clean(v)}" for k, v in grid.items())


def expand(config_file: str, config: ml_collections.ConfigDict, spec: str,
           root: str) -> List[Run]:
  """The runs of `spec` (see the module docstring).

  Args:
    config_file: the --config value, e.g. "experiments/configs/ablations.py:parts,room3d".
    config: the config it gives (to check the grid fields and for defaults).
    spec: the --sweep string.
    root: the sweep's root folder.
  """
  presets, seeds, grid = parse_sweep(spec)
  path, _, arg = config_file.partition(":")
  _, _, dataset = arg.partition(",")
  if presets is None:
    presets, configs = [config.get("preset") or os.path.splitext(os.path.basename(path))[0]], \
        [config_file]
  else:
    known = _presets_of(path)
    unknown = [p for p in presets if p not in known]
    if unknown:
      raise SweepError(f"--sweep presets {unknown} are not presets of {path}; valid: "
                        f"{', '.join(known)}")
    configs = [f"{path}:{p}" + (f",{dataset}" if dataset else "") for p in presets]
  for name, _ in grid:
    if not _has_field(config, name):
      raise SweepError(f"--sweep field {name!r} is not a config field")
  seeds = [int(config.seed)] if seeds is None else seeds
  runs = []
  for (preset, cfg), values in itertools.product(
      zip(presets, configs), itertools.product(*[v for _, v in grid])):
    overrides = dict(zip([n for n, _ in grid], values))
    for seed in seeds:
      parts = [root, preset] + ([_tag(overrides)] if overrides else []) + [f"seed{seed}"]
      runs.append(Run(preset, seed, overrides, cfg, os.path.join(*parts)))
  return runs


def _presets_of(path: str) -> Sequence[str]:
  spec = importlib.util.spec_from_file_location("_sweep_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, "PRESETS"):
    raise SweepError(f"{path} has no PRESETS: presets=... needs experiments/configs/"
                      "ablations.py; drop presets= to sweep this config as it is")
  return list(module.PRESETS)


def format_value(value: Any) -> str:
  """A config value as a --config.x=y command-line string."""
  if isinstance(value, (tuple, list)):
    return repr(tuple(value))
  return str(value)


def commands(run: Run, overrides: Dict[str, Any], python: str = "python") -> List[List[str]]:
  """argv of the train and evaluate commands of `run`; `overrides` apply to every run."""
  args = [f"--config={run.config_arg}", f"--workdir={run.workdir}",
          f"--config.seed={run.seed}"]
  args += [f"--config.{k}={format_value(v)}" for k, v in overrides.items()]
  args += [f"--config.{k}={v}" for k, v in run.grid.items()]
  return [[python, "-m", f"experiments.{m}"] + args for m in ("train", "evaluate")]


def shell_line(run: Run, overrides: Dict[str, Any], python: str = "python") -> str:
  return " && ".join(shlex.join(c) for c in commands(run, overrides, python))


def metrics_path(workdir: str) -> str:
  return os.path.join(workdir, "eval", "metrics.json")


def evaluated_step(workdir: str) -> Optional[int]:
  """The step of WORKDIR/eval/metrics.json (-1 where it names none: counted as finished), None
  if not evaluated."""
  if not os.path.exists(metrics_path(workdir)):
    return None
  with open(metrics_path(workdir)) as f:
    step = json.load(f).get("step")
  return -1 if step is None else int(step)


def single_thread_env(env: Dict[str, str]) -> Dict[str, str]:
  """`env` with XLA:CPU limited to one thread (unless XLA_FLAGS already sets a thread option):
  on a CPU, N single-threaded runs side by side train faster in total than N runs that each
  spread over all cores (README, Performance)."""
  env = dict(env)
  flags_ = env.get("XLA_FLAGS", "")
  if "multi_thread_eigen" not in flags_ and "intra_op_parallelism_threads" not in flags_:
    env["XLA_FLAGS"] = (flags_ + " --xla_cpu_multi_thread_eigen=false "
                        "intra_op_parallelism_threads=1").strip()
  return env


def schedule(runs: Sequence[Run]) -> List[Run]:
  """Seed-major order (every preset's seed 0, then seed 1, ...), so that a sweep stopped early
  has every row with some seeds rather than some rows with all seeds."""
  seeds = sorted({r.seed for r in runs}, key=[r.seed for r in runs].index)
  return [r for s in seeds for r in runs if r.seed == s]


def _run_one(i: int, total: int, run: Run, overrides: Dict[str, Any], jobs: int) -> bool:
  """Trains and evaluates one run; True on success. With jobs > 1 the run's output goes to
  WORKDIR/sweep.log and each process is limited to one XLA:CPU thread."""
  print(f"[{i + 1}/{total}] {run.workdir}", flush=True)
  env, log = None, None
  if jobs > 1:
    env = single_thread_env(os.environ)
    os.makedirs(run.workdir, exist_ok=True)
    log = open(os.path.join(run.workdir, "sweep.log"), "a")
  try:
    for argv in commands(run, overrides, sys.executable):
      print(f"  [{i + 1}/{total}] " + shlex.join(argv), flush=True)
      if subprocess.run(argv, check=False, env=env, stdout=log,
                        stderr=subprocess.STDOUT if log else None).returncode:
        print(f"  FAILED: {run.workdir}" + (f" (see {log.name})" if log else ""), flush=True)
        return False
  finally:
    if log:
      log.close()
  print(f"  [{i + 1}/{total}] done: {run.workdir}", flush=True)
  return True


def run_all(runs: Sequence[Run], overrides: Dict[str, Any], jobs: int = 1) -> List[Run]:
  """Trains and evaluates the runs (seed-major, `jobs` at a time), skipping those already
  evaluated. Returns the runs that failed."""
  if jobs < 1:
    raise SweepError(f"--jobs must be >= 1, got {jobs}")
  todo = []
  for i, run in enumerate(schedule(runs)):
    step = evaluated_step(run.workdir)
    target = run.grid.get("train.num_steps", overrides.get("train.num_steps"))
    if step is not None and (target is None or step < 0 or step >= int(target)):
      print(f"[{i + 1}/{len(runs)}] {run.workdir}: already evaluated, skipping", flush=True)
    else:
      if step is not None:
        print(f"[{i + 1}/{len(runs)}] {run.workdir}: evaluated at step {step} < "
              f"train.num_steps={target}: training resumes, then evaluation replaces "
              f"eval/metrics.json", flush=True)
      todo.append((i, run))
  with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
    ok = list(pool.map(lambda ir: _run_one(ir[0], len(runs), ir[1], overrides, jobs), todo))
  return [run for (_, run), good in zip(todo, ok) if not good]


def _number(value) -> Optional[float]:
  return None if value is None else float(value)


def collect(root: str) -> Dict[str, List[Dict[str, Any]]]:
  """Builds ROOT/results.csv and ROOT/results.md from every ROOT/**/eval/metrics.json.

  Returns {"runs": one dict per run, "groups": one dict per group with <metric> (mean),
  <metric>_std (population std, ddof=0) and <metric>_n (runs with a value) for fg_ari, ari, mse}.
  """
  runs = []
  for dirpath, _, filenames in os.walk(root):
    if os.path.basename(dirpath) == "eval" and "metrics.json" in filenames:
      m = evaluator.Results.load(os.path.join(dirpath, "metrics.json"))
      columns = dict(m.columns(), steps_per_s=metrics_log.median_steps_per_s(os.path.dirname(dirpath)))
      rel = os.path.relpath(os.path.dirname(dirpath), root)
      parts = rel.split(os.sep)
      group = os.sep.join(parts[:-1]) if len(parts) > 1 and parts[-1].startswith("seed") else rel
      runs.append(dict(run=rel, group=group, preset=m.preset or parts[0], seed=m.seed,
                       step=m.step, num_sequences=m.num_sequences,
                       **{k: _number(columns[k]) for k in METRICS + DIAG_METRICS + STATIC_METRICS}))
  if not runs:
    raise FileNotFoundError(f"no */eval/metrics.json under {root}: run the sweep (or "
                            "python -m experiments.evaluate) first")
  runs.sort(key=lambda r: (r["group"], str(r["seed"]), r["run"]))
  groups = []
  for group in sorted({r["group"] for r in runs}):
    members = [r for r in runs if r["group"] == group]
    g = dict(group=group, preset=members[0]["preset"], num_runs=len(members),
             seeds=[r["seed"] for r in members])
    for k in METRICS + DIAG_METRICS + STATIC_METRICS:
      values = np.array([r[k] for r in members if r[k] is not None], np.float64)
      g[k] = float(values.mean()) if values.size else None
      g[f"{k}_std"] = float(values.std()) if values.size else None
      g[f"{k}_n"] = int(values.size)
    groups.append(g)
  _write_csv(os.path.join(root, "results.csv"), runs, groups)
  _write_markdown(os.path.join(root, "results.md"), runs, groups)
  _write_curves(root, [r["run"] for r in runs])
  return dict(runs=runs, groups=groups)


# The metrics.jsonl keys drawn in ROOT/curves.png, one panel each (titled as in
# evaluator.HELD_OUT_LABELS).
CURVE_PANELS = ("eval/fg_ari", f"eval_diagnostics/{evaluator.OBJECT_MASK_CONTRAST}",
                f"eval_diagnostics/{evaluator.BACKGROUND_SLOT}")


def _write_curves(root: str, runs: Sequence[str]) -> None:
  """ROOT/curves.png and curves.json: the held-out metrics each run logged during training
  (the same eval batch every train.eval_every steps), one line per run, one panel per metric."""
  panels = {}
  for run in runs:
    logged = metrics_log.curves(os.path.join(root, run), CURVE_PANELS)
    for key, curve in logged.items():
      panels.setdefault(key, {})[run] = curve
  if not panels:
    return
  from parts_jax import visualize   # pylint: disable=g-import-not-at-top  (matplotlib)
  visualize.runs_curves_figure({evaluator.HELD_OUT_LABELS[k]: panels[k] for k in CURVE_PANELS
                                if k in panels},
                               os.path.join(root, "curves.png"), figsize=(5.0 * len(panels), 3.5))
  with open(os.path.join(root, "curves.json"), "w") as f:
    json.dump({key: {run: dict(steps=c[0], values=c[1]) for run, c in per_run.items()}
               for key, per_run in panels.items()}, f, indent=1)


CSV_COLUMNS = ("kind", "group", "preset", "seed", "num_runs", "step", "fg_ari", "fg_ari_std",
               "ari", "ari_std", "mse", "mse_std", "num_sequences", "run") + tuple(
                   c for k in DIAG_METRICS + STATIC_METRICS for c in (k, f"{k}_std"))


def _write_csv(path: str, runs, groups) -> None:
  """One row per run (kind=run), then one per group (kind=mean_std: means and std columns)."""
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for r in runs:
      writer.writerow(dict(r, kind="run", num_runs=1))
    for g in groups:
      writer.writerow(dict(g, kind="mean_std", seed=" ".join(map(str, g["seeds"]))))


def _fmt(value, digits: int) -> str:
  """Fixed point with `digits` decimals; 3 significant digits in scientific notation from 1e6
  (a diverged unroll's KL)."""
  if value is None:
    return "n/a"
  return f"{value:.{digits}f}" if abs(value) < 1e6 else f"{value:.2e}"


def _pm(group, key: str, digits: int) -> str:
  """mean ± std; "(n=2 of 3)" when only some of the group's runs have the value (an older
  metrics.json without the column), so that a mean over fewer seeds is never read as all."""
  if group[key] is None:
    return "n/a"
  n = group[f"{key}_n"]
  some = f" (n={n} of {group['num_runs']})" if n < group["num_runs"] else ""
  return f"{_fmt(group[key], digits)} ± {_fmt(group[key + '_std'], digits)}{some}"


def _write_markdown(path: str, runs, groups) -> None:
  """Static-unroll columns (Fig 7) only when some run has them: at step T (the training
  length) and at the last step S."""
  static = any(r["static_fg_ari"] is not None or r["static_kl"] is not None for r in runs)
  diag = any(r["fg_ari_responsibilities"] is not None for r in runs)
  names = ("static FG-ARI @T", "static MSE @T", "static KL @T", "static FG-ARI @S",
           "static MSE @S", "static KL @S") if static else ()
  names = (evaluator.DIAGNOSTIC_HEADERS + ("steps/s",) if diag else ()) + names
  head = lambda first: "| " + " | ".join(first + ("FG-ARI", "ARI", "MSE") + names) + " |"
  rule = lambda n: "|" + "---|" * n
  lines = ["# Sweep results", "", "## Runs", "", head(("run", "preset", "seed", "step")),
           rule(7 + len(names))]
  for r in runs:
    cells = [r["run"], r["preset"], r["seed"], r["step"], _fmt(r["fg_ari"], 4),
             _fmt(r["ari"], 4), _fmt(r["mse"], 5)]
    if diag:
      cells += [_fmt(r[k], 4) for k in DIAG_METRICS[:-1]] + [_fmt(r["steps_per_s"], 2)]
    if static:
      cells += [_fmt(r[f"static_{n}{at}"], d) for at in ("_at_t", "")
                for n, d in (("fg_ari", 4), ("mse", 5), ("kl", 1))]
    lines.append("| " + " | ".join(map(str, cells)) + " |")
  lines += ["", "## Mean ± std over seeds (population std, ddof=0)", "",
            head(("group", "preset", "runs")), rule(6 + len(names))]
  for g in groups:
    cells = [g["group"], g["preset"], g["num_runs"], _pm(g, "fg_ari", 4), _pm(g, "ari", 4),
             _pm(g, "mse", 5)]
    if diag:
      cells += [_pm(g, k, 4) for k in DIAG_METRICS[:-1]] + [_pm(g, "steps_per_s", 2)]
    if static:
      cells += [_pm(g, f"static_{n}{at}", d) for at in ("_at_t", "")
                for n, d in (("fg_ari", 4), ("mse", 5), ("kl", 1))]
    lines.append("| " + " | ".join(map(str, cells)) + " |")
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")


def define_flags() -> None:
  config_flags.DEFINE_config_file("config", None, "Config file, e.g. "
                                  "experiments/configs/ablations.py[:PRESET[,DATASET]].")
  flags.DEFINE_string("sweep", "", "presets=a,b;seeds=0,1;FIELD=v1,v2 (module docstring).")
  flags.DEFINE_string("workdir_root", "workdirs/sweep", "Root folder of the run workdirs.")
  flags.DEFINE_bool("dry_run", False, "Print one shell line per run instead of running.")
  flags.DEFINE_bool("collect_only", False, "Only build ROOT/results.{csv,md}.")
  flags.DEFINE_integer("jobs", 1, "Runs trained side by side. With > 1, each run's output goes "
                       "to WORKDIR/sweep.log and XLA:CPU gets one thread per run (set XLA_FLAGS "
                       "yourself to override); on a CPU use jobs = number of cores.")


def main(argv):
  del argv
  root = FLAGS.workdir_root
  if FLAGS.collect_only:
    collect(root)
    print(f"Wrote {root}/results.csv and {root}/results.md")
    return
  if FLAGS.config is None:
    raise app.UsageError("--config is required (e.g. experiments/configs/ablations.py)")
  overrides = dict(config_flags.get_override_values(FLAGS["config"]))
  if "seed" in overrides and "seeds=" in FLAGS.sweep:
    raise SweepError("give the seeds in --sweep=...;seeds=..., not as --config.seed")
  overrides.pop("seed", None)   # Applied per run as --config.seed (default: config.seed).
  runs = expand(config_flags.get_config_filename(FLAGS["config"]), FLAGS.config, FLAGS.sweep,
                root)
  if FLAGS.dry_run:
    for run in runs:
      print(shell_line(run, overrides))
    return
  failed = run_all(runs, overrides, FLAGS.jobs)
  summary = collect(root)
  print(f"Wrote {root}/results.csv and {root}/results.md ({len(summary['runs'])} runs)")
  if failed:
    print("Failed runs:\n" + "\n".join(r.workdir for r in failed))
    sys.exit(1)


if __name__ == "__main__":
  define_flags()
  app.run(main)
