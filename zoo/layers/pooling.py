"""Max pooling whose output size rounds up, as Caffe's pooling and PyTorch's `ceil_mode=True` do."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="zoo")
class CeilModeMaxPooling2D(keras.layers.MaxPooling2D):
    """Max pooling with ``ceil((size - pool) / stride) + 1`` outputs per side instead of the floor.

    The last window may hang over the bottom and right edges; the part outside counts as -inf, as
    in Caffe and PyTorch. Keras has no ceil mode, and "same" padding matches it only on even sizes
    (it also pads the top and left on odd ones), so the input is padded by ``stride - 1`` at the
    bottom and right with -inf and pooled "valid": floor((size + stride - 1 - pool) / stride) equals
    ceil((size - pool) / stride) for every size, known or not at build time.
    """

    def __init__(self, pool_size, strides=None, **kwargs):
        kwargs.pop("padding", None)
        super().__init__(pool_size=pool_size, strides=strides, padding="valid", **kwargs)

    def call(self, inputs):
        extra_rows, extra_columns = (stride - 1 for stride in self.strides)
        if extra_rows or extra_columns:
            inputs = ops.pad(inputs, [[0, 0], [0, extra_rows], [0, extra_columns], [0, 0]],
                             constant_values=float("-inf"))
        return super().call(inputs)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        sides = [None if size is None else -(-(size - pool) // stride) + 1
                 for size, pool, stride in zip((height, width), self.pool_size, self.strides)]
        return (batch, *sides, channels)
