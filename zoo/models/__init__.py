"""The model families. Importing this package registers every model."""

from zoo.models import alexnet, googlenet, lenet, resnet, vgg  # noqa: F401
from zoo.models import captioner  # noqa: F401,E402  (after the backbones it builds on)
