"""Training: every setting of a run, the one training step and epoch loop every task shares, run
folders, and the classifier's fine-tuning in its three modes.

- `config`: `FinetuneConfig` and the setting checks every task shares;
- `runfolder`: the run folder (one owner, atomic epoch commits, resume);
- `trainer`, `loop`, `objectives`: the training step, the epoch loop, the tasks' losses;
- `classification`, `modeling`, `inputs`, `optim`: the classifier's run (model, data, optimizer);
- `devices`, `precision`: tf.distribute strategies and dtype policies;
- `diagnostics`, `evaluation`, `plots`: what a run measures and draws.
"""

from finetune.runtime import start_tensorflow

start_tensorflow()  # before the modules below import it
