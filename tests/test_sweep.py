"""Tests for experiments.sweep: spec parsing, run expansion, --dry_run commands, resuming, and
collect() tables from hand-written metrics.json files (no training)."""
import csv
import json
import os
import shlex
import subprocess
import sys

import pytest

from experiments import sweep
from experiments.configs import ablations
from parts_jax.config import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ABLATIONS = "experiments/configs/ablations.py"


def test_parse_sweep_and_split_values():
  presets, seeds, grid = sweep.parse_sweep(
      "presets=op3,parts; seeds=0,2 ;model.decoder.channels=(8,),(16,16);model.num_slots=5")
  assert presets == ["op3", "parts"] and seeds == [0, 2]
  assert grid == [("model.decoder.channels", ["(8,)", "(16,16)"]), ("model.num_slots", ["5"])]
  assert sweep.parse_sweep("") == (None, None, [])
  with pytest.raises(sweep.SweepError, match="integers"):
    sweep.parse_sweep("seeds=a")
  with pytest.raises(sweep.SweepError, match="NAME=V1"):
    sweep.parse_sweep("presets")


def test_expand_runs_and_workdirs():
  config = ablations.get_config("parts,room3d")
  runs = sweep.expand(f"{ABLATIONS}:parts,room3d", config,
                      "presets=op3,parts;seeds=0,1;model.num_slots=5,7", "/r")
  assert len(runs) == 2 * 2 * 2
  assert [(r.preset, r.grid["model.num_slots"], r.seed) for r in runs[:4]] == [
      ("op3", "5", 0), ("op3", "5", 1), ("op3", "7", 0), ("op3", "7", 1)]
  assert runs[0].config_arg == f"{ABLATIONS}:op3,room3d"     # The dataset is kept.
  assert runs[0].workdir == "/r/op3/model.num_slots=5/seed0"
  plain = sweep.expand(f"{ABLATIONS}:op3", ablations.get_config("op3"), "seeds=3", "/r")
  assert [(r.preset, r.seed, r.workdir) for r in plain] == [("op3", 3, "/r/op3/seed3")]
  with pytest.raises(sweep.SweepError, match="not presets"):
    sweep.expand(ABLATIONS, config, "presets=nope", "/r")
  with pytest.raises(sweep.SweepError, match="not a config field"):
    sweep.expand(ABLATIONS, config, "model.no_such=1", "/r")


def test_dry_run_cli_prints_commands(tmp_path):
  root = str(tmp_path / "sw")
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.sweep", f"--config={ABLATIONS}",
       "--sweep=presets=s_iodine,parts;seeds=0,1", f"--workdir_root={root}", "--dry_run",
       "--config.train.num_steps=2000", "--config.model.decoder.channels=(8,)"],
      cwd=REPO, capture_output=True, text=True, check=True,
      env=dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu"))
  lines = proc.stdout.strip().splitlines()
  assert len(lines) == 4
  common = ["--config.train.num_steps=2000", "--config.model.decoder.channels=(8,)"]
  for line, (preset, seed) in zip(lines, [("s_iodine", 0), ("s_iodine", 1), ("parts", 0),
                                          ("parts", 1)]):
    args = [f"--config={ABLATIONS}:{preset}", f"--workdir={root}/{preset}/seed{seed}",
            f"--config.seed={seed}"] + common
    train, evaluate = line.split(" && ")
    assert shlex.split(train) == ["python", "-m", "experiments.train"] + args
    assert shlex.split(evaluate) == ["python", "-m", "experiments.evaluate"] + args
  assert not os.path.exists(root)      # A dry run writes nothing.


def test_run_all_skips_evaluated_runs(tmp_path, monkeypatch):
  runs = sweep.expand(ABLATIONS, ablations.get_config("parts"), "seeds=0,1", str(tmp_path))
  os.makedirs(os.path.join(runs[0].workdir, "eval"))
  with open(sweep.metrics_path(runs[0].workdir), "w") as f:
    f.write("{}")
  called = []

  class Done:
    returncode = 0

  monkeypatch.setattr(sweep.subprocess, "run",
                      lambda argv, check, **kw: called.append(argv) or Done)
  assert sweep.run_all(runs, {"train.num_steps": 5}) == []
  # Only seed 1 runs: train, then evaluate, with the override.
  assert [a[2] for a in called] == ["experiments.train", "experiments.evaluate"]
  assert all(f"--workdir={runs[1].workdir}" in a and "--config.train.num_steps=5" in a
             for a in called)
  # Evaluated at step 5, asked for 8: seed 0 resumes (train, then evaluate); seed 1, evaluated
  # at 8, is skipped.
  def evaluated_at(workdir, text):
    os.makedirs(os.path.join(workdir, "eval"), exist_ok=True)
    with open(sweep.metrics_path(workdir), "w") as f:
      f.write(text)
  evaluated_at(runs[0].workdir, '{"step": 5}')
  evaluated_at(runs[1].workdir, '{"step": 8}')
  called.clear()
  assert sweep.run_all(runs, {"train.num_steps": 8}) == []
  assert [a[2] for a in called] == ["experiments.train", "experiments.evaluate"]
  assert all(f"--workdir={runs[0].workdir}" in a and "--config.train.num_steps=8" in a
             for a in called)
  # Without a num_steps override an evaluated run is skipped, as before.
  called.clear()
  assert sweep.run_all(runs, {}) == [] and called == []


def test_run_all_jobs_seed_major_logs_and_failures(tmp_path, monkeypatch):
  runs = sweep.expand(ABLATIONS, ablations.get_config("parts"),
                      "presets=op3,parts;seeds=0,1", str(tmp_path))
  assert [(r.preset, r.seed) for r in sweep.schedule(runs)] == [
      ("op3", 0), ("parts", 0), ("op3", 1), ("parts", 1)]
  calls = []

  class Result:
    def __init__(self, code):
      self.returncode = code

  def fake_run(argv, check, env=None, stdout=None, stderr=None):
    calls.append((argv, env))
    stdout.write("log line\n")
    # op3 seed 1 fails in training: its evaluate must not run.
    return Result(int("op3/seed1" in argv[4] and argv[2] == "experiments.train"))

  monkeypatch.setattr(sweep.subprocess, "run", fake_run)
  monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
  failed = sweep.run_all(runs, {}, jobs=2)
  assert [(r.preset, r.seed) for r in failed] == [("op3", 1)]
  assert len(calls) == 7                     # 4 trains + 3 evaluates.
  for _, env in calls:                       # One XLA:CPU thread per run, user flags kept.
    assert env["XLA_FLAGS"].startswith("--xla_dump_to=/tmp/x ")
    assert "intra_op_parallelism_threads=1" in env["XLA_FLAGS"]
  for r in runs:
    with open(os.path.join(r.workdir, "sweep.log")) as f:
      assert f.read().count("log line") == (1 if (r.preset, r.seed) == ("op3", 1) else 2)
  assert sweep.single_thread_env({"XLA_FLAGS": "intra_op_parallelism_threads=2"}) == {
      "XLA_FLAGS": "intra_op_parallelism_threads=2"}
  with pytest.raises(sweep.SweepError, match="jobs"):
    sweep.run_all(runs, {}, jobs=0)


def _write_metrics(root, rel, **values):
  os.makedirs(os.path.join(root, rel, "eval"))
  with open(os.path.join(root, rel, "eval", "metrics.json"), "w") as f:
    json.dump(dict(step=100, num_sequences=64, **values), f)


def test_collect_tables(tmp_path):
  root = str(tmp_path)
  _write_metrics(root, "parts/seed0", preset="parts", seed=0, fg_ari=0.70, ari=0.5, mse=0.002)
  _write_metrics(root, "parts/seed1", preset="parts", seed=1, fg_ari=0.72, ari=0.6, mse=0.004)
  _write_metrics(root, "parts/seed2", preset="parts", seed=2, fg_ari=0.77, ari=0.7, mse=0.003)
  _write_metrics(root, "op3/seed0", preset="op3", seed=0, fg_ari=0.40, ari=0.3, mse=0.005)
  _write_metrics(root, "arm/seed0", preset="arm", seed=0, fg_ari=None, ari=None, mse=0.01)
  tables = sweep.collect(root)
  groups = {g["group"]: g for g in tables["groups"]}
  assert sorted(groups) == ["arm", "op3", "parts"] and len(tables["runs"]) == 5
  # Hand-computed: mean(0.70, 0.72, 0.77) = 0.73; population variance
  # ((-0.03)^2 + (-0.01)^2 + 0.04^2) / 3 = 0.0026 / 3.
  assert groups["parts"]["fg_ari"] == pytest.approx(0.73)
  assert groups["parts"]["fg_ari_std"] == pytest.approx((0.0026 / 3) ** 0.5)
  assert groups["parts"]["mse"] == pytest.approx(0.003)
  assert groups["parts"]["mse_std"] == pytest.approx((2e-6 / 3) ** 0.5)
  assert groups["op3"]["fg_ari"] == pytest.approx(0.40) and groups["op3"]["fg_ari_std"] == 0.0
  assert groups["arm"]["fg_ari"] is None and groups["arm"]["fg_ari_n"] == 0

  with open(os.path.join(root, "results.csv")) as f:
    rows = list(csv.DictReader(f))
  assert [r["kind"] for r in rows] == ["run"] * 5 + ["mean_std"] * 3
  summary = {r["group"]: r for r in rows if r["kind"] == "mean_std"}
  assert float(summary["parts"]["fg_ari"]) == pytest.approx(0.73)
  assert float(summary["parts"]["fg_ari_std"]) == pytest.approx(0.029439, abs=1e-6)
  assert summary["parts"]["num_runs"] == "3" and summary["parts"]["seed"] == "0 1 2"
  run_rows = [r for r in rows if r["kind"] == "run"]
  assert [r["run"] for r in run_rows] == ["arm/seed0", "op3/seed0", "parts/seed0",
                                          "parts/seed1", "parts/seed2"]

  with open(os.path.join(root, "results.md")) as f:
    markdown = f.read()
  assert "| parts | parts | 3 | 0.7300 ± 0.0294 | 0.6000 ± 0.0816 | 0.00300 ± 0.00082 |" \
      in markdown
  assert "| op3/seed0 | op3 | 0 | 100 | 0.4000 | 0.3000 | 0.00500 |" in markdown
  assert "| arm | arm | 1 | n/a | n/a | 0.01000 ± 0.00000 |" in markdown


def test_collect_static_unroll_columns(tmp_path):
  root = str(tmp_path)
  curves = lambda x: dict(static_fg_ari_per_step=[0.1, x, 0.6], static_mse_per_step=[0, x, 0],
                          static_kl_per_step=[0, 10 * x, 0])
  _write_metrics(root, "parts/seed0", preset="parts", seed=0, fg_ari=0.5, ari=0.4, mse=0.01,
                 static_fg_ari=0.6, static_mse=0.02, static_kl=300.0, num_frames=2,
                 **curves(0.2))
  _write_metrics(root, "parts/seed1", preset="parts", seed=1, fg_ari=0.7, ari=0.4, mse=0.01,
                 static_fg_ari=0.8, static_mse=0.04, static_kl=100.0, num_frames=2,
                 **curves(0.4))
  _write_metrics(root, "op3/seed0", preset="op3", seed=0, fg_ari=0.1, ari=0.1, mse=0.01)
  groups = {g["group"]: g for g in sweep.collect(root)["groups"]}
  assert groups["parts"]["static_fg_ari"] == pytest.approx(0.7)
  assert groups["parts"]["static_fg_ari_std"] == pytest.approx(0.1)
  assert groups["parts"]["static_kl"] == pytest.approx(200.0)
  # At step T = num_frames = 2 (1-based): the second entry of each curve.
  assert groups["parts"]["static_fg_ari_at_t"] == pytest.approx(0.3)
  assert groups["parts"]["static_kl_at_t"] == pytest.approx(3.0)
  assert groups["parts"]["static_kl_at_t_std"] == pytest.approx(1.0)
  assert groups["op3"]["static_fg_ari"] is None and groups["op3"]["static_kl_at_t"] is None
  assert sweep._fmt(4.55e24, 1) == "4.55e+24" and sweep._fmt(999999.04, 1) == "999999.0"
  with open(os.path.join(root, "results.md")) as f:
    markdown = f.read()
  assert ("| FG-ARI | ARI | MSE | static FG-ARI @T | static MSE @T | static KL @T | "
          "static FG-ARI @S | static MSE @S | static KL @S |") in markdown
  assert ("| parts | parts | 2 | 0.6000 ± 0.1000 | 0.4000 ± 0.0000 | 0.01000 ± 0.00000 | "
          "0.3000 ± 0.1000 | 0.30000 ± 0.10000 | 3.0 ± 1.0 | "
          "0.7000 ± 0.1000 | 0.03000 ± 0.01000 | 200.0 ± 100.0 |") in markdown
  assert ("| op3/seed0 | op3 | 0 | 100 | 0.1000 | 0.1000 | 0.01000 | n/a | n/a | n/a | n/a | "
          "n/a | n/a |") in markdown


def test_collect_without_results(tmp_path):
  with pytest.raises(FileNotFoundError, match="metrics.json"):
    sweep.collect(str(tmp_path))


def test_collect_diagnostic_and_speed_columns(tmp_path):
  """The study table: the four diagnostic FG-ARIs, the foreground share of the background slot,
  the object mask contrast and the background share of the object slots from metrics.json's
  "diagnostics" (n/a where an older metrics.json lacks one, as seed 0's lacks the contrast: its
  group mean is marked "n=1 of 2") and the median logged steps/s (the first log line, which
  includes compilation, left out)."""
  root = str(tmp_path)
  for seed, resp, rates in ((0, 0.8, [0.1, 2.0, 3.0, 4.0]), (1, 0.9, [0.1, 4.0, 4.0, 6.0])):
    _write_metrics(root, f"combined/seed{seed}", preset="combined", seed=seed, fg_ari=0.5,
                   ari=0.4, mse=0.01, diagnostics=dict(
                       note="diagnostics", fg_ari_masks_mean=0.55, fg_ari_masks_refined=0.6,
                       fg_ari_responsibilities=resp, fg_ari_attention=0.7,
                       fg_in_background_slot=0.2 + 0.1 * seed,
                       bg_in_object_slots=0.01 + 0.02 * seed,
                       **({"object_mask_contrast": 0.3} if seed else {})))
    with open(os.path.join(root, f"combined/seed{seed}", "metrics.jsonl"), "w") as f:
      for i, r in enumerate(rates):
        f.write(json.dumps({"step": 20 * (i + 1), "train/steps_per_s": r}) + "\n")
      f.write(json.dumps({"step": 80, "eval/fg_ari": 0.1 * (seed + 1)}) + "\n")
  _write_metrics(root, "old/seed0", preset="old", seed=0, fg_ari=0.1, ari=0.1, mse=0.01)
  groups = {g["group"]: g for g in sweep.collect(root)["groups"]}
  assert groups["combined"]["fg_ari_responsibilities"] == pytest.approx(0.85)
  assert groups["combined"]["fg_ari_responsibilities_std"] == pytest.approx(0.05)
  assert groups["combined"]["steps_per_s"] == pytest.approx((3.0 + 4.0) / 2)  # medians 3, 4
  assert groups["old"]["fg_ari_attention"] is None and groups["old"]["steps_per_s"] is None
  # curves.png/.json: the held-out FG-ARI each run logged (the "old" run logged none).
  with open(os.path.join(root, "curves.json")) as f:
    assert json.load(f) == {"eval/fg_ari": {f"combined/seed{s}": dict(steps=[80], values=[v])
                                            for s, v in ((0, 0.1), (1, 0.2))}}
  assert os.path.getsize(os.path.join(root, "curves.png")) > 0
  with open(os.path.join(root, "results.md")) as f:
    markdown = f.read()
  assert ("| combined | combined | 2 | 0.5000 ± 0.0000 | 0.4000 ± 0.0000 | 0.01000 ± 0.00000 | "
          "0.5500 ± 0.0000 | 0.6000 ± 0.0000 | 0.8500 ± 0.0500 | 0.7000 ± 0.0000 | "
          "0.2500 ± 0.0500 | 0.3000 ± 0.0000 (n=1 of 2) | 0.0200 ± 0.0100 | 3.50 ± 0.50 |"
          ) in markdown
  assert groups["combined"]["object_mask_contrast"] == pytest.approx(0.3)   # seed 1 only
  assert ("| old | old | 1 | 0.1000 ± 0.0000 | 0.1000 ± 0.0000 | 0.01000 ± 0.00000 | "
          "n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a |") in markdown


def test_study_presets_change_one_field_each():
  from experiments.configs import common, sprites, study
  base = study.get_config("baseline")
  assert base.to_dict() == dict(common.set_fields(sprites.get_config(), study.BASELINE).to_dict(),
                                preset="baseline")
  for name, changes in study.PRESETS.items():
    c = study.get_config(name)
    assert c.preset == name
    for path, value in changes.items():
      parent, _, field = path.rpartition(".")     # ConfigDict reads dotted paths itself
      assert c[path] == value, (name, path)
      if field in base[parent]:
        assert base[path] != value, (name, path)
    if name != "combined":   # One concept each, beside the pin of the recipe it is measured
      # against: refine_2 for later rows, the shipped sigma_x_0.3_refine_2 for run 17's and
      # sigma_x_1.0_refine_2 for run 21's; the semi-amortised fit's fields are one concept.
      recipes = [study.SHIPPED, study.PRESETS["sigma_x_1.0_refine_2"]]
      pins = next((r for r in recipes if set(r.items()) < set(changes.items())),
                  {"model.num_refine_steps": 2})
      own = {k.split(".")[1] if k.startswith("model.semi_amortized.") else k
             for k, v in changes.items() if pins.get(k, object()) != v}
      assert len(own) <= 2 and (changes or name == "baseline"), name
  with pytest.raises(ConfigError, match="unknown study preset"):
    study.get_config("nope")
