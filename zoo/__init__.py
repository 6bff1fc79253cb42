"""A zoo of classic CNNs as faithful Keras 3 models.

    >>> import zoo
    >>> zoo.list_models("resnet*")
    >>> model = zoo.create("resnet50", num_classes=10, input_shape=(128, 128, 3))

The registry (and with it TensorFlow) is imported on first use, so `import zoo` stays light.
"""

import importlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from zoo.errors import ZooError  # noqa: E402

_REGISTRY_NAMES = ("ModelSpec", "PretrainedWeights", "create", "info", "list_models", "register")

__all__ = ["ZooError", *_REGISTRY_NAMES]
__version__ = "0.1.0"


def __getattr__(name):
    if name in _REGISTRY_NAMES:
        return getattr(importlib.import_module("zoo.registry"), name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
