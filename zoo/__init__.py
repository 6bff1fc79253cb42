"""A zoo of classic CNNs as faithful Keras 3 models.

    >>> import zoo
    >>> zoo.list_models("resnet*")
    >>> model = zoo.create("resnet50", num_classes=10, input_shape=(128, 128, 3))

Layers, bottom up: `errors`, `preprocessing` and `registry` (specs and lookups, data only);
`layers` and `weights` (files, readers, downloads, catalogues); `models` (one module per family,
each registering its specs on import); `weights.converters` and `weights.pretrained` (other
libraries' files laid out for the models' layers, tags downloaded, converted and cached);
`factory` (`create`: a model, with or without weights).
The zoo knows nothing of training: that is the `finetune` kit built on it.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from zoo.errors import ZooError  # noqa: E402
from zoo.registry import ModelSpec, PretrainedWeights, get_spec, info, list_models, register  # noqa: E402
from zoo import models  # noqa: E402,F401  (registers every family)
from zoo.factory import create  # noqa: E402

__all__ = ["ModelSpec", "PretrainedWeights", "ZooError", "create", "get_spec", "info", "list_models", "register"]
__version__ = "0.1.0"
