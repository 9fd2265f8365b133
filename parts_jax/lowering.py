"""The time loop (section 3.3): how the T steps of PARTS run, the loss, and the compiled programs.

`PARTS` (model.py) defines one step t (`PARTS.step`) and the per-step inputs of a batch
(`PARTS.step_inputs`); this module runs the steps over time, and is the only place that reads the
resolved lowering `time_loop` (parts_jax.config.resolve_lowering picks it):
  "scan"     one jax.lax.scan over T (the design for accelerators);
  "unroll"   a Python loop over T inside one program (compile time grows with T);
  "windows"  for gradients: the truncation windows (config.tbptt steps each, unrolled) run one
             after another from the host; no gradient crosses a window boundary, so the window
             gradients add up to the whole sequence's truncated-BPTT gradient, and compile time
             and memory do not grow with T. A whole-sequence forward (`PARTS.apply`,
             `rollout`) under "windows" runs the same way when its inputs are concrete arrays:
             one jitted window program after another (`sequence`); traced inside a caller's
             jax.jit it can only run unrolled. `compile_forward` compiles a caller's forward
             accordingly. (One jax.lax.scan over unrolled windows would keep the program small
             too, but XLA:CPU ran that forward 5x slower than unrolled; README Performance.)
`host_unroll` runs one jitted step at a time from the host (Fig 7's static unroll of many steps).

The loss of section 3.3 is L = (1/T) sum_t L_t with L_t = -ELBO(x_t) (Eqs 1, 7), averaged over
the batch: `loss` of the ELBO summed over the B x T frames (`frame_sums`), whatever the lowering.

Shapes: T time, B batch; "time-major" [T, B, ...], "batch-major" [B, T, ...].
"""
import collections
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp

Outputs = Dict[str, jnp.ndarray]
SUMMED = ("elbo", "kl", "nll", "mse")      # the per-frame terms of every step (`summed`)
FITTED = "fitted_elbo"                     # the step's terms under semi-amortised training
DISTILL = "distill"                        # (config.model.semi_amortized)


# --- The loss (3.3) ----------------------------------------------------------------------------
def summed(model_config) -> Tuple[str, ...]:
  """The per-frame terms `frame_sums` adds up: SUMMED, and under semi-amortised training
  (model_config.semi_amortized.steps > 0) "fitted_elbo" and/or "distill", as configured."""
  sa = model_config.semi_amortized
  if not sa.steps:
    return SUMMED
  return SUMMED + ((FITTED,) if sa.fitted_elbo else ()) + ((DISTILL,) if sa.distill else ())


def frame_sums(outs: Outputs) -> Dict[str, jnp.ndarray]:
  """Sums over all frames (time- or batch-major alike) of the per-frame terms `summed`
  (those in outs): scalars."""
  return {k: jnp.sum(outs[k]) for k in SUMMED + (FITTED, DISTILL) if k in outs}


def objective(sums: Dict[str, jnp.ndarray]) -> jnp.ndarray:
  """What the loss maximises, summed over frames (`frame_sums`): the ELBO, plus the fitted
  posterior's ELBO and minus the distillation penalty under semi-amortised training
  (config.model.semi_amortized)."""
  return sums["elbo"] + sums.get(FITTED, 0.0) - sums.get(DISTILL, 0.0)


def loss(elbo_sum: jnp.ndarray, num_frames: int) -> jnp.ndarray:
  """L = (1/T) sum_t L_t, L_t = -ELBO_t, averaged over B (3.3): -elbo_sum / (B T).

  elbo_sum: the ELBO summed over frames (`objective`); num_frames: B T of the whole sequence (a
  window's sum over its own steps gives that window's share of L)."""
  return -elbo_sum / num_frames


def per_frame(sums: Dict[str, jnp.ndarray], num_frames: int) -> Dict[str, jnp.ndarray]:
  """`frame_sums` -> "loss" (3.3) and the summed terms per frame."""
  return dict(loss=loss(objective(sums), num_frames),
              **{k: v / num_frames for k, v in sums.items()})


# --- Running the steps -------------------------------------------------------------------------
def starts(model, t0: int) -> Optional[bool]:
  """Whether steps from t0 on start the sequence (t0 == 0), as a static value for `run` where the
  model's step branches on t = 0 (config.first_frame_refine_steps > num_refine_steps); else None,
  so that every window of a length shares one program."""
  cfg = model.config
  return t0 == 0 if cfg.get("first_frame_refine_steps", 0) > cfg.num_refine_steps else None


def run(model, params, carry, xs, scan: bool,
        starts_sequence: Optional[bool] = None) -> Tuple[Any, Outputs]:
  """Runs the steps of xs (time-major `StepInputs` [T, ...]) from `carry` in one jax.lax.scan
  (`scan`) or a Python loop. Returns the last carry and time-major outputs [T, B, ...].
  In the loop, `starts_sequence` (from `starts`) makes each step's `first` a Python bool (xs'
  first step is t = 0 or not), so that the step branches on it without a conditional."""
  step = lambda c, inp: model.step(params, c, inp)
  if scan:
    return jax.lax.scan(step, carry, xs)
  per_step = []
  for i in range(xs.x.shape[0]):
    inputs = jax.tree.map(lambda a: a[i], xs)
    if starts_sequence is not None:
      inputs = inputs._replace(first=starts_sequence and i == 0)
    carry, out = step(carry, inputs)
    per_step.append(out)
  return carry, jax.tree.map(lambda *a: jnp.stack(a), *per_step)


def _traced(*trees) -> bool:
  return any(isinstance(a, jax.core.Tracer) for a in jax.tree.leaves(trees))


_run_jitted = jax.jit(run, static_argnums=(0, 4, 5))   # One per (model, window length, starts).


def sequence(model, params, carry, xs) -> Outputs:
  """The whole sequence under the model's lowering: batch-major outputs [B, T, ...] plus the
  scalar "loss" (3.3). "windows" with concrete inputs: one jitted program per window of
  config.tbptt steps (all T when tbptt = 0), run from the host; traced: unrolled."""
  if model.time_loop == "windows" and not _traced(params, carry, xs):
    per_window = []
    for t0, window in windows(xs, model.config.tbptt):
      carry, o = _run_jitted(model, params, carry, window, False, starts(model, t0))
      per_window.append(o)
    outs = jax.tree.map(lambda *a: jnp.concatenate(a), *per_window)
  else:
    scan = model.time_loop == "scan"
    _, outs = run(model, params, carry, xs, scan, None if scan else starts(model, 0))
  outs = jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), outs)
  outs["loss"] = loss(objective(frame_sums(outs)), outs["elbo"].size)
  return outs


def compile_forward(model, fn: Callable, **jit_kwargs) -> Callable:
  """`fn` (arrays -> arrays, calling `PARTS.apply` or `rollout`) compiled the way the model's
  lowering runs a whole sequence: jax.jit(fn, **jit_kwargs) under "scan" and "unroll"; under
  "windows" fn itself, so that apply/rollout run one jitted window at a time (compile time
  flat in T) and the inputs keep the shardings they were put with."""
  return fn if model.time_loop == "windows" else jax.jit(fn, **jit_kwargs)


def window_bounds(num_steps: int, tbptt: int) -> List[Tuple[int, int]]:
  """[(t0, t1), ...]: the truncation windows of tbptt steps (one window when tbptt = 0)."""
  length = tbptt or num_steps
  return [(t0, min(t0 + length, num_steps)) for t0 in range(0, num_steps, length)]


def windows(xs, tbptt: int) -> List[Tuple[int, Any]]:
  """(t0, the window's slice [W, ...]) for each window of time-major step inputs xs [T, ...]
  (`window_bounds`)."""
  return [(t0, jax.tree.map(lambda a, t0=t0, t1=t1: a[t0:t1], xs))
          for t0, t1 in window_bounds(xs.x.shape[0], tbptt)]


def window_loss(model, params, carry, xs, num_steps: int,
                starts_sequence: Optional[bool] = None):
  """One truncation window (no gradient reaches `carry`); xs holds its steps ([W, ...]), the
  first of them t = 0 or not as `starts_sequence` says (`starts`; None: as xs.first says).

  Returns (this window's share of the loss, (next carry, `frame_sums` of the window))."""
  carry = jax.lax.stop_gradient(carry)
  carry, outs = run(model, params, carry, xs._replace(cut=jnp.zeros_like(xs.cut)), scan=False,
                    starts_sequence=starts_sequence)
  sums = frame_sums(outs)
  return loss(objective(sums), num_steps * xs.x.shape[1]), (carry, sums)


def jit_step(model, reduce: Optional[Callable] = None):
  """A jitted (params, carry, inputs of one step, *aux) -> (carry, reduce(outputs [B, ...], *aux))
  (default: the outputs), for `host_unroll`."""
  reduce = reduce or (lambda out: out)

  def step(params, carry, inputs, *aux):
    carry, out = model.step(params, carry, inputs)
    return carry, reduce(out, *aux)

  return jax.jit(step)


def host_unroll(step, params, carry, xs, *aux) -> Outputs:
  """Runs `step` (from `jit_step`) once per step of xs ([T, ...]) from the host, so that compile
  time does not grow with T. Returns its results stacked batch-major [B, T, ...]."""
  per_step = []
  for t in range(xs.x.shape[0]):
    carry, result = step(params, carry, jax.tree.map(lambda a, t=t: a[t], xs), *aux)
    per_step.append(result)
  return jax.tree.map(lambda *a: jnp.stack(a, axis=1), *per_step)


# --- Gradients and the compiled programs they run ---------------------------------------------
class Program(NamedTuple):
  """One compiled program: `fn.lower(*args).compile()` builds it; `calls` runs per use."""
  name: str
  fn: Any                 # a jax.jit-ed function
  args: Tuple             # arrays or jax.ShapeDtypeStruct to lower it with (static ints too)
  calls: int


def wait_for_cpu_all_reduce(outputs) -> bool:
  """Blocks until `outputs` (a window program's results) are computed when that program ran on
  more than one XLA:CPU device, i.e. ended in the gradients' all-reduce; returns whether it
  waited. Dispatching the next program (the add that accumulates the windows' gradients) while
  that all-reduce was in flight deadlocked four times in session 18 (README Reliability, "The
  host devices' all-reduce deadlock"; docs/study.md runs 16-17); waiting costs nothing
  measurable there (the device threads are the bottleneck), and 84 minutes of training with it
  saw no hang (run 17). On one device, or a GPU/TPU, dispatch stays asynchronous."""
  leaf = jax.tree.leaves(outputs)[0]
  traced = isinstance(leaf, jax.core.Tracer)
  devices = leaf.devices() if isinstance(leaf, jax.Array) and not traced else set()
  if len(devices) < 2 or next(iter(devices)).platform != "cpu":
    return False
  jax.block_until_ready(outputs)
  return True


class Gradients:
  """(params, rng, batch) -> (grads, sums): the gradient of the loss (3.3) w.r.t. params and the
  `frame_sums` of the forward, under a lowering (default: the model's).

  batch {"video": [B, T, H, W, 3], "actions": [B, T, A]}; grads: like params.
  """

  def __init__(self, model, time_loop: Optional[str] = None):
    self.model = model
    self.time_loop = time_loop or model.time_loop
    self._sequence = jax.jit(self._sequence_grads)
    self._prepare = jax.jit(model.step_inputs)
    self._window = jax.jit(self._window_grads, static_argnums=(3, 4))

  def _sequence_grads(self, params, rng, batch):
    carry, xs = self.model.step_inputs(rng, batch)
    num_frames = xs.x.shape[0] * xs.x.shape[1]
    scan = self.time_loop == "scan"

    def loss_fn(p):
      _, outs = run(self.model, p, carry, xs, scan, None if scan else starts(self.model, 0))
      sums = frame_sums(outs)
      return loss(objective(sums), num_frames), sums

    (_, sums), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    return grads, sums

  def _window_grads(self, params, carry, xs, num_steps, starts_sequence=None):
    (_, (carry, sums)), grads = jax.value_and_grad(
        lambda p: window_loss(self.model, p, carry, xs, num_steps, starts_sequence),
        has_aux=True)(params)
    return grads, carry, sums

  def __call__(self, params, rng, batch):
    if self.time_loop != "windows":
      return self._sequence(params, rng, batch)
    carry, xs = self._prepare(rng, batch)
    num_steps = xs.x.shape[0]
    grads = sums = None
    for t0, window in windows(xs, self.model.config.tbptt):
      g, carry, s = self._window(params, carry, window, num_steps, starts(self.model, t0))
      wait_for_cpu_all_reduce((g, carry, s))
      grads = g if grads is None else jax.tree.map(jnp.add, grads, g)
      sums = s if sums is None else jax.tree.map(jnp.add, sums, s)
    return grads, sums

  def programs(self, params, rng, batch) -> List[Program]:
    """The distinct programs one call runs, with the arguments to lower them with (nothing is
    run: shapes come from jax.eval_shape)."""
    if self.time_loop != "windows":
      return [Program("sequence", self._sequence, (params, rng, batch), 1)]
    carry, xs = jax.eval_shape(self.model.step_inputs, rng, batch)
    num_steps = xs.x.shape[0]
    kinds = collections.Counter(   # (window length, `starts`): one program each
        (t1 - t0, starts(self.model, t0))
        for t0, t1 in window_bounds(num_steps, self.model.config.tbptt))
    programs = [Program("prepare", self._prepare, (rng, batch), 1)]
    for (n, first), calls in sorted(kinds.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
      window = jax.tree.map(lambda a, n=n: jax.ShapeDtypeStruct((n,) + a.shape[1:], a.dtype), xs)
      name = f"window[{n}]" + ("" if first is None else f", t0 {'=' if first else '>'} 0")
      programs.append(Program(name, self._window, (params, carry, window, num_steps, first),
                              calls))
    return programs

  def loop_free(self) -> "Gradients":
    """The same gradients with no time loop inside a program ("scan" -> "unroll"): XLA's cost
    analysis counts a loop body once, so FLOP counts need these programs."""
    return self if self.time_loop != "scan" else Gradients(self.model, "unroll")

