"""The model families. Importing this package registers every model."""

from zoo.models import alexnet, googlenet, lenet, resnet, vgg  # noqa: F401
