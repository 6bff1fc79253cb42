"""The fine-tuning kit every zoo model plugs into: data -> training -> serving, with the training
practice of the course notes on top, and the `zoo` command.

    >>> import finetune
    >>> result = finetune.finetune("lenet5", epochs=3, out="runs/lenet5")
    >>> finetune.predict("runs/lenet5", ["a.png"])
    >>> finetune.export("runs/lenet5", "serving")

Sub-packages, each importing only those before it:
- `data`: data specs resolved to tf.data streams, augmentation, the built-in datasets;
- `training`: configs, the trainer and epoch loop every task shares, run folders, the classifier;
- `serving`: loading trained models, prediction, evaluation, the export stager and SavedModels;
- `captioning`: the captioner's task on the same run machinery;
- `practice`: doctor, learning-rate range test, random search, ensembles;
- `api` (this package's functions) and `cli` (the `zoo` command).

Importing `finetune` loads nothing of TensorFlow: the API's names below are imported from their
modules on first use, and each sub-package that computes starts TensorFlow as it loads
(`finetune.runtime.start_tensorflow`), so that the `zoo` command parses and answers `--help`,
`zoo list` and `zoo info` at once.
"""

import importlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# the package's API: each name and its module, imported on first use (PEP 562)
_API = {
    "LoadedModel": "finetune.api", "RunResult": "finetune.api", "caption": "finetune.api", "evaluate": "finetune.api",
    "export": "finetune.api", "finetune": "finetune.api", "load": "finetune.api", "make_config": "finetune.api",
    "predict": "finetune.api", "CaptioningConfig": "finetune.captioning.config",
    "FinetuneConfig": "finetune.training.config",
}
__all__ = sorted(_API)


def __getattr__(name):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'finetune' has no attribute {name!r}")
