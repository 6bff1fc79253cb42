"""A zoo of classic CNNs as faithful Keras 3 models.

    >>> import zoo
    >>> zoo.list_models("resnet*")
    >>> model = zoo.create("resnet50", num_classes=10, input_shape=(128, 128, 3))

Layers, bottom up: `errors`, `preprocessing`, `eval_transform` and `registry` (specs and lookups,
data only); `specs` (each family's registered specs and weight tags, data only); `layers` and `weights`
(files, readers, downloads, catalogues); `models` (one module per family: the architectures);
`weights.converters` and `weights.pretrained` (other libraries' files laid out for the models'
layers, tags downloaded, converted and cached); `factory` (`create`: a model, with or without weights).
The zoo knows nothing of training: that is the `finetune` kit built on it.

Importing `zoo` reads the registry only, without Keras, so that listing and describing models is
instant; `zoo.create` loads `zoo.factory`, and with it Keras and TensorFlow, when first used.
"""

import importlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from zoo.errors import ZooError  # noqa: E402
from zoo.registry import ModelSpec, PretrainedWeights, get_spec, info, list_models, register  # noqa: E402
from zoo import specs  # noqa: E402,F401  (registers every model)

__all__ = ["ModelSpec", "PretrainedWeights", "ZooError", "create", "get_spec", "info", "list_models", "register"]
__version__ = "0.1.0"

# names of this package that live in modules which load Keras: imported on first use (PEP 562)
_LAZY = {"create": "zoo.factory"}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
