"""Multi-process data-parallel training: two processes on 127.0.0.1 (jax.distributed, CPU
collectives over gloo, one CPU device each) train on the same global batches as one process and
end with the same parameters."""
import shutil
import socket
import time

import numpy as np
import pytest

from test_train import (NUM_STEPS, RUN, assert_same_arrays, checkpoint_steps, console, env,
                        load_checkpoint, metrics_lines, params_of, reference_run, start,
                        start_reference, train_args)

TIMEOUT_S = 300


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _train_two_processes(tmp_path_factory, tmp_path, workdir: str, port: int):
  """Starts the two processes on `port`, waits for them; (procs, logs, dumps)."""
  procs, logs, dumps = [], [], []
  try:
    for i in range(2):
      dumps.append(str(tmp_path / f"params{i}.npz"))
      logs.append(str(tmp_path / f"process{i}.log"))
      args = train_args(tmp_path_factory, workdir, NUM_STEPS, **RUN) + [
          "--num_processes=2", f"--process_id={i}", f"--coordinator_address=127.0.0.1:{port}"]
      procs.append(start(args, env(dump=dumps[-1]), logs[-1], driver=True))
    deadline = time.time() + TIMEOUT_S
    while any(p.poll() is None for p in procs) and time.time() < deadline:
      if any(p.poll() not in (None, 0) for p in procs):
        break  # One failed: the other would wait for it until the coordinator times out.
      time.sleep(0.2)
    assert time.time() < deadline, f"the two processes did not finish in {TIMEOUT_S} s"
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
      p.wait()
  return procs, logs, dumps


@pytest.mark.slow
def test_two_processes_match_one(tmp_path_factory, tmp_path):
  workdir = str(tmp_path / "run")
  start_reference(tmp_path_factory)  # The one-process run, alongside.
  for attempt in range(3):
    # The free port can be taken by another program between free_port() and the coordinator's
    # bind: then start again on another port (a bind failure names the address).
    procs, logs, dumps = _train_two_processes(tmp_path_factory, tmp_path, workdir, free_port())
    text0 = open(logs[0]).read().lower()
    if procs[0].returncode == 0 or "address already in use" not in text0 or attempt == 2:
      break
    shutil.rmtree(workdir, ignore_errors=True)
  texts = [open(log).read() for log in logs]
  for i, (p, text) in enumerate(zip(procs, texts)):
    assert p.returncode == 0, f"process {i} (rc {p.returncode}):\n{console(text)[-3000:]}"
    assert "JAX" in text and "2 process(es), 1 local / 2 global devices (cpu)" in text
  # Process 0 alone logs; both processes wrote the checkpoints together.
  assert "step 12/12" in texts[0] and "step 12/12" not in texts[1]
  assert [l["step"] for l in metrics_lines(workdir)] == list(range(1, NUM_STEPS + 1))
  assert checkpoint_steps(workdir) == list(range(2, NUM_STEPS + 1, 2))

  on_0, on_1 = (dict(np.load(d)) for d in dumps)
  assert_same_arrays(on_0, on_1)  # Replicated parameters: identical on both processes.
  assert_same_arrays(on_0, params_of(load_checkpoint(workdir)))
  one = params_of(load_checkpoint(reference_run(tmp_path_factory)))
  assert sorted(one) == sorted(on_0)
  for k in one:  # The same global batches: equal up to the order of float reductions
    # (measured: max |difference| ~3e-11 after 12 steps).
    np.testing.assert_allclose(on_0[k], one[k], rtol=1e-6, atol=1e-8, err_msg=k)
  reference = metrics_lines(reference_run(tmp_path_factory))
  np.testing.assert_allclose([l["train/loss"] for l in metrics_lines(workdir)],
                             [l["train/loss"] for l in reference], rtol=1e-5)
  differ = sum(not np.array_equal(on_0[k], one[k]) for k in one)
  worst = max(float(np.max(np.abs(on_0[k] - one[k]))) for k in one)
  print(f"2 processes vs 1: {differ} of {len(one)} parameter arrays differ bitwise, "
        f"max |difference| {worst:.2g}")
