"""Custom layers of the zoo, registered for `.keras` files loaded with safe_mode=True."""

from zoo.layers.activations import relu
from zoo.layers.eval_transform import EvalResizeCrop
from zoo.layers.lrn import LocalResponseNormalization
from zoo.layers.normalization import BatchNormalization, FrozenBatchNormalization
from zoo.layers.pooling import CeilModeMaxPooling2D
from zoo.layers.preprocessing import ImagePreprocessing, preprocessing_layer

__all__ = ["BatchNormalization", "CeilModeMaxPooling2D", "EvalResizeCrop", "FrozenBatchNormalization", "ImagePreprocessing", "LocalResponseNormalization",
           "preprocessing_layer", "relu"]
