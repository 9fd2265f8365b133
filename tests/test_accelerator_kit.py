"""The accelerator kit's dry run on the CPU: every stage of the GPU command, at tiny sizes.

The kit (benchmarks/accelerator_kit.py, run on a GPU by scripts/gpu_kit.sh) is used rarely; this
test keeps it from rotting in between: device report, lowering-equivalence test, correctness
check, timings with MFU for both configs and both precisions, the host-CPU step, the study
sweep, a resumed training run, evaluation, and a checkpoint archive that restores.
"""
import json
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from benchmarks import accelerator_kit
from experiments import host_devices

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, cwd=ROOT, timeout=900):
  """Runs `python -m ARGS` on the CPU; the processes share the suite's persistent compilation
  cache (tests/conftest.py; the same tiny train step is compiled by several of them).

  One XLA:CPU device, as on the one-GPU machine the kit is for: with the 2-core default of one
  device per core, a cross-device all-reduce of the first `experiments.train` call was aborted
  by XLA's 40 s rendezvous timeout in CI under `-n 2` load (only one of the two device threads
  arrived). Data parallelism over host devices has its own tests (test_reliability,
  test_host_devices, test_multiprocess)."""
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} {host_devices.FLAG}=1".strip())
  proc = subprocess.run([sys.executable, "-m"] + args, cwd=cwd, capture_output=True, text=True,
                        timeout=timeout, env=env)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-12000:]
  return proc


def _kit(tmp_path, stages, *flags):
  """Runs the kit's dry run with STAGES into tmp_path/out; returns (report, out)."""
  out = tmp_path / "out"
  _run(["benchmarks.accelerator_kit", "--dry_run", f"--out={out}", "--budget_s=3000",
        "--timings_budget_s=3000", f"--stages={stages}", *flags])
  report = json.loads((out / "report.json").read_text())
  failed = {k: v.get("error") for k, v in report["stages"].items() if not v["ok"]}
  assert not failed and report["all_ok"], failed
  return report["stages"], out


# The kit's stages in two tests, so that `pytest -n 2` runs the halves side by side. The
# rehearsal times one config at one precision (to keep the suite short): bfloat16 is the float32
# code path under another jax.default_matmul_precision, and `playroom` the sprites code path
# with a synthetic batch of other sizes (the GPU run times both configs at both precisions).
@pytest.mark.slow
def test_accelerator_kit_dry_run_checks_and_timings(tmp_path):
  stages, out = _kit(tmp_path, "device,equivalence,correctness,timings", "--steps=2",
                     "--precisions=float32", "--configs=sprites")
  assert list(stages) == ["device", "equivalence", "correctness", "timings"]
  assert (out / "pytest.log").exists()
  assert stages["device"]["backend"] == "cpu"
  assert "2 tests collected" in stages["equivalence"]["summary"]
  assert stages["correctness"]["grad_max_rel_diff_per_leaf"] < 1e-3
  assert np.all(np.isfinite(stages["correctness"]["train_losses"]))

  rows = stages["timings"]["rows"]
  assert {(r["config"], r["precision"]) for r in rows} == {("sprites", "float32")}
  for r in rows:
    assert r["time_loop"] == "scan" and r["flops_per_step"] > 0 and r["step_s"] > 0, r
    np.testing.assert_allclose(r["mfu"], r["flops_per_step"] / r["step_s"] / r["peak_flops"])
  cpu = stages["timings"]["host_cpu"]
  assert "error" not in cpu, cpu
  assert cpu["time_loop"] == "windows" and cpu["step_s"] > 0, cpu
  assert set(stages["timings"]["speedup_vs_host_cpu"]) == {"float32"}


@pytest.mark.slow
def test_accelerator_kit_dry_run_study_train_and_archive(tmp_path):
  init, run = tmp_path / "init", tmp_path / "run"
  overrides = accelerator_kit.override_flags(accelerator_kit.DRY_RUN_OVERRIDES)
  _run(["experiments.train", "--config=experiments/configs/sprites.py", f"--workdir={init}",
        "--config.data.cache=False", "--config.train.num_steps=4"] + overrides)
  earlier = '{"step": 2, "changed": {"train.num_steps": [2, 4]}}\n'   # a change made before
  (init / "config_history.jsonl").write_text(earlier)
  stages, out = _kit(tmp_path, "study,train", f"--init_workdir={init}", f"--workdir={run}",
                     "--num_steps=8",
                     "--train_overrides=model.beta=0.25,eval.average_checkpoints=2",
                     "--study_presets=combined", "--study_seeds=0", "--study_steps=2",
                     "--study_jobs=1")
  assert list(stages) == ["device", "study", "train", "evaluate", "archive"]

  study = stages["study"]
  assert study["runs_finished"] == study["runs_planned"] == 1, study
  table = (out / "study_results.md").read_text()
  assert "| combined | combined | 1 |" in table
  assert "FG-ARI responsibilities (diag.)" in table and "steps/s" in table
  with tarfile.open(out / "study.tar.gz") as tar:
    names = tar.getnames()
  assert "study/combined/seed0/eval/metrics.json" in names
  # the latest checkpoint of each run travels too, for the probes on the host
  assert any(n.startswith("study/combined/seed0/checkpoints/2/") for n in names), names

  train = stages["train"]
  assert train["start_step"] == 4 and train["checkpoint_step"] == 8, train
  # --train_overrides reach the run (a recipe other than the default, e.g. the shipped run's)
  assert train["config_changed"]["model.beta"] == [0.5, 0.25], train
  assert stages["evaluate"]["step"] == 8 and 0 <= stages["evaluate"]["fg_ari"] <= 1
  for name in ("report.json", "checkpoint.tar.gz", "metrics.jsonl", "eval_metrics.json",
               "train.log", "evaluate.log"):
    assert (out / name).exists(), name

  # The archive is a workdir: extracted, it evaluates and resumes training on the CPU.
  resumed = tmp_path / "resumed"
  with tarfile.open(out / "checkpoint.tar.gz") as tar:
    tar.extractall(resumed)
  # eval.average_checkpoints=2: the two checkpoints the evaluation averages travel
  assert sorted(os.listdir(resumed / "checkpoints")) == ["4", "8"]
  assert stages["archive"]["steps"] == [4, 8]
  # the TensorBoard logs travel both ways: the init run's event file and the kit run's
  init_events = os.listdir(init / "tb")
  assert len(init_events) == 1, init_events
  events = os.listdir(resumed / "tb")
  assert set(init_events) < set(events) and len(events) == 2, events
  proc = _run(["experiments.train", "--config=experiments/configs/sprites.py",
               f"--workdir={resumed}", "--config.data.cache=False", "--config.model.beta=0.25",
               "--config.train.num_steps=10"] + overrides)
  assert "Resuming from checkpoint at step 8" in proc.stdout
  steps = [json.loads(l)["step"] for l in (resumed / "metrics.jsonl").read_text().splitlines()]
  assert steps[-1] == 10 and steps == sorted(steps)
  # The record of config changes travels both ways: the earlier entry, the kit's resume at 4
  # (num_steps 4 -> 8, beta 0.5 -> 0.25) and the CPU resume at 8 (8 -> 10).
  history = [json.loads(l) for l in (resumed / "config_history.jsonl").read_text().splitlines()]
  assert [(h["step"], h["changed"]["train.num_steps"]) for h in history] == [
      (2, [2, 4]), (4, [4, 8]), (8, [8, 10])], history
  assert history[1]["changed"]["model.beta"] == [0.5, 0.25] and "model.beta" not in history[2][
      "changed"], history


@pytest.mark.slow
def test_extrapolated_flops_equal_the_unrolled_count():
  """common.extrapolated_flops (T = 1, 2, extrapolated) equals XLA's count of the whole
  unrolled step at T = 5."""
  from benchmarks import common
  config = accelerator_kit.load_config("sprites", accelerator_kit.DRY_RUN_OVERRIDES)
  config.model.time_loop = "unroll"
  batch = common.synthetic_batch(config, batch_size=2, num_frames=5)
  run = common.StepRunner(config, batch)
  estimate = common.extrapolated_flops(run, batch)
  programs = run.step.programs(run.state, batch)
  assert [p.name for p in programs] == ["key", "sequence", "update"]
  whole = sum(p.calls * common.compiled_flops(p.fn, *p.args) for p in programs)
  np.testing.assert_allclose(estimate, whole, rtol=0.01)


def test_train_overrides_keep_the_commas_of_tuple_values():
  pieces = "model.sigma_x=0.3,model.decoder.channels=(64,64,64),seed=2".split(",")
  assert accelerator_kit.join_override_pieces(pieces) == [
      "model.sigma_x=0.3", "model.decoder.channels=(64,64,64)", "seed=2"]
  assert accelerator_kit.join_override_pieces([]) == []
  with pytest.raises(Exception, match="a.b=value"):
    accelerator_kit.join_override_pieces(["model.sigma_x"])
