"""Averages the parameters of kept checkpoints of a workdir into a new workdir (step = last).

Run 22's pilot, before `eval.average_checkpoints` existed; it can average any kept steps (the
pilot took 64,000 and 64,506, skipping 64,500), the config value only the last N.
usage (from the repository, its package installed): python docs/study/run22/pilot_average.py
  SRC_WORKDIR DST_WORKDIR STEP,STEP,...
"""
import os, shutil, sys
import jax
from datasets import registry
from experiments import checkpointing, setup_lib

src, dst, steps = sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3].split(",")]
config = setup_lib.config_for_workdir(src)
it = registry.get_iterator(config.data, "eval", config.eval.batch_size, seed=0, shuffle=False)
batch = next(it); it.close()
model = setup_lib.make_model(config).for_evaluation()
shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), batch)
trees = [checkpointing.restore_params(src, shapes, step=s)[0] for s in steps]
avg = checkpointing.mean_params(trees)
os.makedirs(dst, exist_ok=True)
shutil.copy(os.path.join(src, "config.json"), dst)
mngr = checkpointing.manager(dst)
checkpointing.save(mngr, dict(step=checkpointing.step_array(steps[-1]), params=avg))
mngr.wait_until_finished()
print("averaged", steps, "->", dst)
