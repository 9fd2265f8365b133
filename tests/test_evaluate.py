"""Tests for experiments.evaluate: metrics.json against an sklearn recomputation, K override,
roll-out fields, data without segmentations, checkpoint/config mismatch, --step."""
import json
import os
import shutil

import jax
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from datasets import registry
from experiments import checkpointing, evaluate, evaluator, setup_lib, train
from experiments.configs import sprites
from parts_jax.config import ConfigError

T, K, EVAL_BATCH, NUM_EVAL, STEP = 3, 3, 4, 6, 7


def tiny_config(data_dir: str):
  """A sprites config small enough to compile quickly on a 2-core CPU (LSTM predictor and XLA
  convolutions: they compile faster; the evaluation code does not depend on them)."""
  c = sprites.get_config()
  c.data.update(image_size=16, num_frames=T, num_train=4, num_eval=NUM_EVAL, data_dir=data_dir)
  c.model.update(num_slots=K, slot_dim=4)
  c.model.decoder.channels = (8,)
  c.model.encoder.channels = (8,)
  c.model.attention.update(qk_dim=8, value_dim=8)
  c.model.refine.mlp_hidden = (16,)
  c.model.predictor.update(kind="lstm", model_size=16, mlp_size=16, lstm_size=16)
  c.model.conv_impl = "xla"
  c.train.batch_size = 2
  c.eval.update(batch_size=EVAL_BATCH, num_sequences=NUM_EVAL)
  return c


def make_workdir(workdir: str, config, seed: int = 42, step: int = STEP, params=None):
  """A workdir as experiments.train leaves it (config.json + a checkpoint of the train state at
  `step`, added to those already there), with `params` or else random parameters instead of
  trained ones (no compile of init or of the train step): N(0, 1) for the decoder, so that masks
  vary across pixels and the segmentation scores are not all equal, N(0, 0.1^2) elsewhere (no
  layer is zero as at initialisation). Returns the saved parameters."""
  setup_lib.save_config(config, workdir)
  it = registry.get_iterator(config.data, "train", config.train.batch_size, seed=0, prefetch=0)
  shapes = jax.eval_shape(setup_lib.make_model(config).init, jax.random.PRNGKey(0), next(it))
  leaves = jax.tree_util.tree_flatten_with_path(shapes)[0]
  keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
  if params is None:
    params = jax.tree.unflatten(jax.tree.structure(shapes), [
        (1.0 if "decoder" in jax.tree_util.keystr(path) else 0.1)
        * jax.random.normal(key, s.shape, s.dtype) for key, (path, s) in zip(keys, leaves)])
  state = dict(step=checkpointing.step_array(step), params=params,
               opt_state=train.make_optimizer(config.train).init(params),
               rng=jax.random.PRNGKey(1), skipped=checkpointing.step_array(0))
  mngr = checkpointing.manager(workdir)
  checkpointing.save(mngr, state)
  mngr.wait_until_finished()
  return params


@pytest.fixture(scope="module", name="run")
def _run(tmp_path_factory):
  root = tmp_path_factory.mktemp("evaluate")
  config = tiny_config(str(root / "data"))
  workdir = str(root / "wd")
  params = make_workdir(workdir, config)
  overrides = {"eval.burn_in": 2, "eval.rollout_steps": 3}
  result = evaluate.evaluate(setup_lib.config_for_workdir(workdir, overrides=overrides), workdir,
                             overrides=overrides)
  assert result["overrides"] == overrides    # metrics.json says what the evaluation changed
  return dict(config=config, workdir=workdir, params=params, result=result)


def _eval_batches(config, split="eval", num=NUM_EVAL):
  """The eval batches as documented: the first `num` episodes of `split` in order, the last
  batch wrapping around to the start of the split; video as float in [0, 1]."""
  source = registry.build_source(config.data, split)
  num_batches = -(-num // EVAL_BATCH)
  for i, indices in enumerate((np.arange(num_batches * EVAL_BATCH) % num)
                              .reshape(num_batches, EVAL_BATCH)):
    episodes = [source[int(j)] for j in indices]
    yield i, dict(
        video=np.stack([e["video"][:T] for e in episodes]).astype(np.float32) / 255.0,
        actions=np.stack([e["actions"][:T] for e in episodes]).astype(np.float32),
        segmentations=np.stack([e["segmentations"][:T] for e in episodes]).astype(np.int32))


def _sklearn_reference(config, params, split="eval", num=NUM_EVAL):
  """Per-sequence FG-ARI / ARI / MSE [N, T] and roll-out MSE at step 2 of the first `num`
  episodes of `split`, recomputed from the model outputs with sklearn and NumPy."""
  model = setup_lib.make_model(config)
  apply = jax.jit(model.apply)
  rollout = jax.jit(model.rollout, static_argnums=(3, 4))
  key = jax.random.PRNGKey(config.eval.seed)
  fg, has_fg, ari, mse, ro_mse = [], [], [], [], []
  for i, batch in _eval_batches(config, split, num):
    rng = jax.random.fold_in(key, i)
    out = jax.device_get(apply(params, rng, batch))
    ro = jax.device_get(rollout(params, jax.random.fold_in(rng, 1), batch, 2, 3))
    pred = np.argmax(out["masks"], axis=2)                  # [B, T, H, W]
    for b in range(EVAL_BATCH):
      seg = batch["segmentations"][b]
      fg.append([adjusted_rand_score(seg[t][seg[t] > 0], pred[b, t][seg[t] > 0])
                 if (seg[t] > 0).any() else np.nan for t in range(T)])
      has_fg.append([(seg[t] > 0).any() for t in range(T)])
      ari.append([adjusted_rand_score(seg[t].ravel(), pred[b, t].ravel()) for t in range(T)])
      mse.append(np.mean((np.asarray(out["recon"][b], np.float64) - batch["video"][b])**2,
                         axis=(1, 2, 3)))
      ro_mse.append(np.mean((ro["recon"][b, 2] - batch["video"][b, 2])**2))
  keep = slice(0, num)                                       # Drop the wrapped-around episodes.
  return (np.array(fg)[keep], np.array(has_fg)[keep], np.array(ari)[keep], np.array(mse)[keep],
          np.array(ro_mse)[keep])


@pytest.fixture(scope="module", name="reference")
def _reference(run):
  return _sklearn_reference(run["config"], run["params"])


def test_metrics_json_keys_and_lengths(run):
  result = run["result"]
  with open(os.path.join(run["workdir"], "eval", "metrics.json")) as f:
    assert json.load(f) == result
  assert result["step"] == STEP
  assert result["num_sequences"] == NUM_EVAL and result["num_slots"] == K
  assert result["data"] == "sprites" and result["num_frames"] == T
  for key in ("fg_ari_per_step", "ari_per_step", "mse_per_step"):
    assert len(result[key]) == T and np.all(np.isfinite(result[key])), key
  for key in ("fg_ari", "ari", "mse"):
    assert np.isfinite(result[key]), key
  assert result["fg_ari"] == result["fg_ari_per_step"][-1]
  assert result["mse"] == result["mse_per_step"][-1]
  assert result["num_frames_without_foreground"] == 0    # sprites has 2-4 objects per frame


def test_metrics_match_sklearn_recomputation(run, reference):
  fg, has_fg, ari, mse, _ = reference
  result = run["result"]
  assert has_fg.all()
  np.testing.assert_allclose(result["fg_ari"], fg[:, -1].mean(), atol=1e-5)
  np.testing.assert_allclose(result["fg_ari_per_step"], fg.mean(0), atol=1e-5)
  np.testing.assert_allclose(result["fg_ari_per_sequence"], fg[:, -1], atol=1e-5)
  np.testing.assert_allclose(result["fg_ari_sem"],
                             np.std(fg[:, -1], ddof=1) / np.sqrt(len(fg)), atol=1e-5)
  np.testing.assert_allclose(result["ari"], ari[:, -1].mean(), atol=1e-5)
  np.testing.assert_allclose(result["mse_per_step"], mse.mean(0), rtol=1e-5)
  assert len(set(np.round(fg[:, -1], 6))) > 1      # Not a degenerate (constant) score.


def test_split_train_scores_the_training_episodes(run, tmp_path, capsys):
  """eval.split = "train": the first episodes of the training split (4 of them, fewer than the
  6 asked for: a warning), scored as the sklearn recomputation on those episodes scores them;
  the split is named in the output and recorded in metrics.json's overrides."""
  overrides = {"eval.split": "train"}
  config = setup_lib.config_for_workdir(run["workdir"], overrides=overrides)
  result = evaluate.evaluate(config, run["workdir"], output=str(tmp_path / "train.json"),
                             overrides=overrides)
  num_train = run["config"].data.num_train
  fg, _, ari, mse, _ = _sklearn_reference(config, run["params"], "train", num_train)
  assert result["num_sequences"] == num_train and result["overrides"] == overrides
  np.testing.assert_allclose(result["fg_ari_per_sequence"], fg[:, -1], atol=1e-5)
  np.testing.assert_allclose(result["ari"], ari[:, -1].mean(), atol=1e-5)
  np.testing.assert_allclose(result["mse_per_step"], mse.mean(0), rtol=1e-5)
  assert result["mse"] != run["result"]["mse"]      # not the eval split's episodes
  printed = capsys.readouterr().out
  assert "but the train split of" in printed and "(the train split)" in printed
  with pytest.raises(ConfigError, match="eval.split"):
    setup_lib.check_config(setup_lib.config_for_workdir(
        run["workdir"], overrides={"eval.split": "validation"}))


def test_rollout_fields(run, reference):
  result = run["result"]
  # T = 3, burn-in 2, 3 predicted steps (t = 2, 3, 4): only t = 2 has ground truth.
  assert result["rollout_burn_in"] == 2 and result["rollout_steps"] == 3
  assert result["rollout_steps_with_ground_truth"] == 1
  assert len(result["rollout_mse_per_step"]) == 1
  assert len(result["rollout_fg_ari_per_step"]) == 1
  assert np.isfinite(result["rollout_fg_ari_per_step"][0])
  ro_mse = reference[-1]
  np.testing.assert_allclose(result["rollout_mse_per_step"][0], ro_mse.mean(), rtol=1e-5)


def test_num_slots_override_without_segmentations(run, monkeypatch, tmp_path):
  """K = 5 on a model trained with K = 3; batches without masks (like Robotics Arm); more
  sequences requested than the split has (clipped, with a warning)."""
  build_source = registry.build_source

  def without_masks(*args, **kwargs):
    source = build_source(*args, **kwargs)
    source.has_segmentations = False        # The batcher then leaves them out.
    return source

  monkeypatch.setattr(registry, "build_source", without_masks)
  config = setup_lib.config_for_workdir(run["workdir"], overrides={
      "eval.num_slots": 5, "eval.num_sequences": 100})
  output = str(tmp_path / "k5.json")
  result = evaluate.evaluate(config, run["workdir"], output=output)
  assert result["num_slots"] == 5 and result["num_slots_trained"] == K
  assert result["num_sequences"] == NUM_EVAL and result["num_sequences_requested"] == 100
  assert result["fg_ari"] is None and result["ari"] is None
  assert "no ground-truth segmentations" in result["fg_ari_note"]
  assert len(result["mse_per_step"]) == T and np.all(np.isfinite(result["mse_per_step"]))
  assert "rollout_mse_per_step" not in result
  assert "overrides" not in result         # none recorded when none are given
  with open(output) as f:
    assert json.load(f)["num_slots"] == 5


def test_config_overrides_and_mismatch(run):
  config = setup_lib.config_for_workdir(run["workdir"], overrides={"eval.num_slots": 4})
  assert config.eval.num_slots == 4 and tuple(config.model.decoder.channels) == (8,)
  with pytest.raises(ValueError, match="unknown config field"):
    setup_lib.config_for_workdir(run["workdir"], overrides={"eval.no_such_field": 1})
  wrong = setup_lib.config_for_workdir(run["workdir"],
                                       overrides={"model.decoder.channels": (16,)})
  with pytest.raises(ValueError, match="does not fit the model"):
    evaluate.evaluate(wrong, run["workdir"], verbose=False)
  with pytest.raises(FileNotFoundError, match="train first"):
    evaluate.evaluate(run["config"], os.path.join(run["workdir"], "missing"), verbose=False)


def test_step_evaluates_a_kept_checkpoint(run, tmp_path):
  """--step: a workdir holding the run's checkpoint (step STEP) and a later one with other
  parameters; step=STEP reproduces the run's result to the bit and writes metrics_step_STEP.json
  beside metrics.json; no step takes the latest; a step not kept is a clear error."""
  workdir = str(tmp_path / "two_steps")
  shutil.copytree(run["workdir"], workdir, ignore=shutil.ignore_patterns("eval"))
  make_workdir(workdir, run["config"], seed=7, step=STEP + 5)
  overrides = {"eval.burn_in": 2, "eval.rollout_steps": 3}
  config = setup_lib.config_for_workdir(workdir, overrides=overrides)
  latest = evaluate.evaluate(config, workdir, verbose=False, overrides=overrides)
  assert latest["step"] == STEP + 5 and latest["mse"] != run["result"]["mse"]
  earlier = evaluate.evaluate(config, workdir, verbose=False, step=STEP, overrides=overrides)
  assert earlier == dict(run["result"], workdir=os.path.abspath(workdir))
  with open(os.path.join(workdir, "eval", f"metrics_step_{STEP}.json")) as f:
    assert json.load(f) == earlier
  with open(os.path.join(workdir, "eval", "metrics.json")) as f:
    assert json.load(f) == latest                         # not overwritten by the earlier step
  with pytest.raises(FileNotFoundError, match=f"it holds steps {STEP}, {STEP + 5}"):
    evaluate.evaluate(config, workdir, verbose=False, step=STEP + 1)


def test_average_checkpoints_evaluates_the_mean_of_the_parameters(run, tmp_path):
  """eval.average_checkpoints = 2 on a workdir with the run's checkpoint and a later one: the
  result is that of a workdir holding one checkpoint with the two parameter sets averaged by hand
  (float64 NumPy), and metrics.json names the averaged steps; which steps are averaged when
  fewer are kept or an earlier step is asked; the config's checks."""
  workdir = str(tmp_path / "two_steps")
  shutil.copytree(run["workdir"], workdir, ignore=shutil.ignore_patterns("eval"))
  later = make_workdir(workdir, run["config"], seed=7, step=STEP + 5)
  assert checkpointing.averaged_steps(workdir, average=3) == [STEP, STEP + 5]
  assert checkpointing.averaged_steps(workdir, step=STEP, average=2) == [STEP]
  assert checkpointing.averaged_steps(workdir, average=1) == [STEP + 5]
  with pytest.raises(ValueError, match="average must be >= 1"):
    checkpointing.averaged_steps(workdir, average=0)
  mean = jax.tree.map(lambda a, b: ((np.asarray(a, np.float64) + np.asarray(b, np.float64)) / 2)
                      .astype(np.float32), run["params"], later)
  restored, step = checkpointing.restore_params(workdir, run["params"], average=2)
  assert step == STEP + 5
  jax.tree.map(np.testing.assert_array_equal, restored, mean)

  config = setup_lib.config_for_workdir(workdir, overrides={"eval.average_checkpoints": 2})
  result = evaluate.evaluate(config, workdir, output=str(tmp_path / "avg.json"), verbose=False)
  assert result["averaged_steps"] == [STEP, STEP + 5] and result["step"] == STEP + 5
  by_hand = str(tmp_path / "by_hand")
  make_workdir(by_hand, run["config"], step=STEP + 5, params=mean)
  want = evaluate.evaluate(setup_lib.config_for_workdir(by_hand), by_hand, verbose=False)
  assert "averaged_steps" not in want and "averaged_steps" not in run["result"]
  for key in ("fg_ari", "ari", "fg_ari_per_step", "mse_per_step", "diagnostics"):
    assert result[key] == want[key], key
  for bad, match in ((0, "must be a positive integer"), (4, "than config.train.max_checkpoints")):
    config.eval.average_checkpoints = bad
    with pytest.raises(ValueError, match=match):
      setup_lib.check_config(config)


def test_static_unroll_matches_apply_and_sklearn(run, tmp_path):
  """eval.static_steps (Fig 7): frame 0 repeated S times with zero actions, run one step at a
  time from the host, against model.apply on the repeated batch (same noise keys) and sklearn."""
  steps = 4
  config = setup_lib.config_for_workdir(run["workdir"], overrides={"eval.static_steps": steps})
  result = evaluate.evaluate(config, run["workdir"], output=str(tmp_path / "m.json"),
                             verbose=False)
  model = setup_lib.make_model(run["config"])
  apply = jax.jit(model.apply, static_argnames="refine_all")
  key = jax.random.PRNGKey(config.eval.seed)
  fg, mse, kl = [], [], []
  for i, batch in _eval_batches(run["config"]):
    static = dict(video=np.repeat(batch["video"][:, :1], steps, axis=1),
                  actions=np.zeros((EVAL_BATCH, steps, batch["actions"].shape[-1]), np.float32))
    out = jax.device_get(apply(run["params"], jax.random.fold_in(jax.random.fold_in(key, i), 2),
                               static, refine_all=True))
    pred = np.argmax(out["masks"], axis=2)
    for b in range(EVAL_BATCH):
      seg = batch["segmentations"][b, 0]
      fg.append([adjusted_rand_score(seg[seg > 0], pred[b, t][seg > 0]) for t in range(steps)])
    mse.append(out["mse"])
    kl.append(out["kl"])
  fg = np.array(fg)[:NUM_EVAL]
  mse, kl = np.concatenate(mse)[:NUM_EVAL], np.concatenate(kl)[:NUM_EVAL]
  assert result["static_steps"] == steps
  np.testing.assert_allclose(result["static_fg_ari_per_step"], fg.mean(0), atol=1e-5)
  np.testing.assert_allclose(result["static_mse_per_step"], mse.mean(0), rtol=1e-4)
  np.testing.assert_allclose(result["static_kl_per_step"], kl.mean(0), rtol=1e-4)
  assert result["static_fg_ari"] == result["static_fg_ari_per_step"][-1]
  assert len(result["static_ari_per_step"]) == steps
  assert result["fg_ari"] == run["result"]["fg_ari"]          # The usual fields are unchanged.
  with pytest.raises(ValueError, match="static_steps"):
    evaluate.evaluate(setup_lib.config_for_workdir(
        run["workdir"], overrides={"eval.static_steps": -1}), run["workdir"], verbose=False)


def test_old_workdir_config_gets_new_fields(run, tmp_path):
  """A config.json written before a field existed: the field comes from the schema config."""
  workdir = str(tmp_path / "old")
  os.makedirs(workdir)
  old = setup_lib.load_config(run["workdir"])
  del old.eval["static_steps"]
  setup_lib.save_config(old, workdir)
  config = setup_lib.config_for_workdir(workdir, run["config"], {"eval.static_steps": 3})
  assert config.eval.static_steps == 3
  assert tuple(config.model.decoder.channels) == (8,)      # The run's own values are kept.
  with pytest.raises(ValueError, match="unknown config field"):
    setup_lib.config_for_workdir(workdir, None, {"eval.static_steps": 3})


def test_config_for_workdir_fills_new_model_fields_without_a_config(tmp_path, run):
  """A run trained before a model option existed (its config.json lacks it) loads with the
  option's default even without a --config (position_probe, mask_probe pass none)."""
  workdir = str(tmp_path / "old_model")
  os.makedirs(workdir)
  old = setup_lib.load_config(run["workdir"])
  del old.model.decoder["basis"], old.model.decoder["basis_hidden"]
  setup_lib.save_config(old, workdir)
  config = setup_lib.config_for_workdir(workdir)
  assert config.model.decoder.basis == "linear" and config.model.decoder.basis_hidden == 64
  assert tuple(config.model.decoder.channels) == (8,)      # The run's own values are kept.


def test_diagnostic_fg_aris_match_numpy_argmax_and_sklearn(tmp_path):
  """The four diagnostic FG-ARIs against an independent computation: responsibilities by hand
  in float64 NumPy (m_k N(x; C_k, sigma_x^2), normalised over k), the masks of the headline's and
  of the refined posterior decoded from their means, the attention as returned; argmax per
  pixel; scikit-learn's ARI on the foreground pixels of every frame."""
  config = tiny_config(str(tmp_path / "data"))
  model = setup_lib.make_model(config)
  it = registry.get_iterator(config.data, "eval", EVAL_BATCH, seed=0, shuffle=False)
  batch = next(it)
  it.close()
  params = model.init(jax.random.PRNGKey(0), batch)
  params = jax.tree.map(lambda p, k: p + 0.5 * jax.random.normal(k, p.shape), params,
                        jax.tree.unflatten(jax.tree.structure(params), list(jax.random.split(
                            jax.random.PRNGKey(3), len(jax.tree.leaves(params))))))
  out = model.apply(params, jax.random.PRNGKey(1), batch)
  got = evaluator.diagnostic_fg_ari(model, params, batch, out, config.eval.max_ids)

  video = np.asarray(batch["video"], np.float64)                    # [B, T, H, W, 3]
  masks = np.asarray(out["masks"], np.float64)                      # [B, T, K, H, W]
  comps = np.asarray(out["components"], np.float64)                 # [B, T, K, H, W, 3]
  sq = np.sum((video[:, :, None] - comps) ** 2, axis=-1)            # [B, T, K, H, W]
  with np.errstate(divide="ignore"):                                 # masks that underflowed
    log_p = np.log(masks) - sq / (2 * config.model.sigma_x ** 2)
  resp = np.exp(log_p - log_p.max(axis=2, keepdims=True))
  resp /= resp.sum(axis=2, keepdims=True)
  b, t = video.shape[:2]
  at_mean = lambda lam: np.asarray(model.decode(params, np.asarray(lam)[
      ..., :config.model.slot_dim].reshape(b * t, K, -1))["masks"]).reshape(masks.shape)
  expected_maps = dict(responsibilities=resp, masks_refined=at_mean(out["posterior"]),
                       masks_mean=at_mean(out["decoded_posterior"]),
                       attention=np.asarray(out["attention"]))
  segs = np.asarray(batch["segmentations"])
  for name, maps in expected_maps.items():
    ids = maps.argmax(axis=2)
    scored = 0
    for i in range(b):
      for j in range(t):
        fg = segs[i, j] > 0
        if not fg.any():
          continue
        want = adjusted_rand_score(segs[i, j][fg], ids[i, j][fg])
        np.testing.assert_allclose(got[f"fg_ari_{name}"][i, j], want, atol=1e-5,
                                   err_msg=f"{name} [{i}, {j}]")
        scored += 1
    assert scored >= b
  # The responsibilities' argmax is not the masks' argmax here (the diagnostic is not a copy).
  assert np.mean(resp.argmax(2) != masks.argmax(2)) > 0.05
  # object_mask_contrast with loops: per object, the best slot's mean mask on it minus its mean
  # on the other pixels.
  for i in range(b):
    for j in range(t):
      seg = segs[i, j]
      if not (seg > 0).any():
        continue
      want = np.mean([max(masks[i, j, k][seg == o].mean() - masks[i, j, k][seg != o].mean()
                          for k in range(K)) for o in np.unique(seg) if o > 0])
      np.testing.assert_allclose(got[evaluator.OBJECT_MASK_CONTRAST][i, j], want, atol=1e-5,
                                 err_msg=f"object_mask_contrast [{i}, {j}]")
  # bg_in_object_slots with loops: the background slot wins most background pixels under the
  # headline argmax (ties: the lowest k); the share of background pixels it does not win.
  ids = masks.argmax(axis=2)
  for i in range(b):
    for j in range(t):
      bg = segs[i, j] == 0
      if not bg.any():
        continue
      counts = np.bincount(ids[i, j][bg], minlength=K)
      want = np.mean(ids[i, j][bg] != counts.argmax())
      np.testing.assert_allclose(got[evaluator.BACKGROUND_SPILL][i, j], want, atol=1e-6,
                                 err_msg=f"bg_in_object_slots [{i}, {j}]")


def test_evaluate_writes_labelled_diagnostics(tmp_path, capsys):
  """metrics.json holds the labelled diagnostics; the printout names each by its table header."""
  config = tiny_config(str(tmp_path / "data"))
  workdir = str(tmp_path / "run")
  make_workdir(workdir, config)
  result = evaluate.evaluate(config, workdir, verbose=True)
  diag = result["diagnostics"]
  printed = capsys.readouterr().out
  for key, header in zip(evaluator.DIAGNOSTIC_COLUMNS, evaluator.DIAGNOSTIC_HEADERS):
    assert f"{header} {diag[key]:.4f}" in printed, (header, printed)
  assert "not the paper's number" in diag["note"]
  for name in evaluator.DIAGNOSTICS:
    assert -1.0 <= diag[f"fg_ari_{name}"] <= 1.0
    assert len(diag[f"fg_ari_{name}_per_step"]) == T
  for key in (evaluator.BACKGROUND_SLOT, evaluator.OBJECT_MASK_CONTRAST,
              evaluator.BACKGROUND_SPILL):
    assert -1.0 <= diag[key] <= 1.0 and len(diag[f"{key}_per_step"]) == T
  with open(os.path.join(workdir, "eval", "metrics.json")) as f:
    assert json.load(f)["diagnostics"] == diag


def test_eval_step_runs_the_model_without_the_semi_amortized_fit(tmp_path):
  """The evaluator (experiments.evaluate and the held-out evaluation in training) measures a
  semi-amortised run as the amortised model: its held-out "loss" and masks are those of the same
  parameters in a model built with semi_amortized.steps = 0, not -(ELBO + fitted ELBO)."""
  config = tiny_config(str(tmp_path / "data"))
  config.model.semi_amortized.steps = 2
  model = setup_lib.make_model(config)
  it = registry.get_iterator(config.data, "eval", EVAL_BATCH, seed=0, shuffle=False)
  batch = next(it)
  it.close()
  params = model.init(jax.random.PRNGKey(0), batch)
  rng = jax.random.PRNGKey(1)
  got = evaluator.make_eval_step(model, config.eval.max_ids, keep_outputs=True)(params, rng, batch)
  config.model.semi_amortized.steps = 0
  want = setup_lib.make_model(config).apply(params, rng, batch)
  trained = model.apply(params, rng, batch)
  np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-6)
  assert abs(float(trained["loss"]) - float(want["loss"])) > 1.0   # the fit's term is not in it
  np.testing.assert_allclose(got["masks"], want["masks"], rtol=1e-6)
