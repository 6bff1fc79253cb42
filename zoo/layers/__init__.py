"""Custom layers of the zoo, registered for `.keras` files loaded with safe_mode=True."""

from zoo.layers.lrn import LocalResponseNormalization
from zoo.layers.normalization import FrozenBatchNormalization
from zoo.layers.pooling import CeilModeMaxPooling2D

__all__ = ["CeilModeMaxPooling2D", "FrozenBatchNormalization", "LocalResponseNormalization"]
