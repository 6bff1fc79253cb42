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
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from finetune.quiet import native_stderr_silenced  # noqa: E402
from finetune.runtime import use_onednn  # noqa: E402

use_onednn()  # before TensorFlow starts: it reads the setting once

with native_stderr_silenced():
    import tensorflow  # started here, its native start-up messages kept quiet

    # The first device listing probes CUDA, which on a machine without a GPU logs "failed call to
    # cuInit" to stderr; listing physical devices does not start TensorFlow's context.
    tensorflow.config.list_physical_devices("GPU")

from finetune.api import (  # noqa: E402
    LoadedModel, RunResult, caption, evaluate, export, finetune, load, make_config, predict,
)
from finetune.captioning.config import CaptioningConfig  # noqa: E402
from finetune.training.config import FinetuneConfig  # noqa: E402

__all__ = ["CaptioningConfig", "FinetuneConfig", "LoadedModel", "RunResult", "caption", "evaluate", "export",
           "finetune", "load", "make_config", "predict"]
