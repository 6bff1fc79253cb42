"""The training practice of the course notes, automated: sanity checks before a long run, the
learning-rate range test, random search, k-fold cross-validation and ensembles.

- `checks`, `doctor`, `report`: checks before training (initial loss, overfitting a tiny subset, ...);
- `lr_find`: the learning-rate range test;
- `tune`: coarse-to-fine random search on a validation split;
- `folds`: k-fold cross-validation;
- `ensemble`: averaging several runs' probabilities.
"""

from finetune.runtime import start_tensorflow

start_tensorflow()  # before the modules below import it
