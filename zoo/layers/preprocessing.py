"""A model's preprocessing (`zoo.preprocessing.Preprocessing`) as a serializable layer, so that
models, input pipelines and exports take raw pixels."""

import keras
from keras import ops

from zoo.preprocessing import Preprocessing


def preprocessing_layer(preprocessing: Preprocessing, name: str = "preprocessing") -> "ImagePreprocessing":
    """The convention as a layer, computing in float32 whatever the global dtype policy (it runs in
    input pipelines and serving graphs, on 0-255 pixels that bfloat16 would round)."""
    return ImagePreprocessing(
        mean=list(preprocessing.mean), std=list(preprocessing.std),
        reverse_channels=preprocessing.channel_order == "bgr", name=name, dtype="float32",
    )


@keras.saving.register_keras_serializable(package="zoo")
class ImagePreprocessing(keras.layers.Layer):
    """Applies a model's preprocessing inside the graph, so exports take raw pixels."""

    def __init__(self, mean, std, reverse_channels=False, **kwargs):
        super().__init__(**kwargs)
        self.mean = [float(value) for value in mean]
        self.std = [float(value) for value in std]
        self.reverse_channels = bool(reverse_channels)

    def call(self, inputs):
        inputs = ops.cast(inputs, self.compute_dtype)
        channels = len(self.mean)
        if len(inputs.shape) == 4 and inputs.shape[-1] == channels:
            return self._as_convolution(inputs)
        if self.reverse_channels:
            inputs = ops.flip(inputs, axis=-1)
        mean = ops.convert_to_tensor(self.mean, dtype=self.compute_dtype)
        std = ops.convert_to_tensor(self.std, dtype=self.compute_dtype)
        return (inputs - mean) / std

    def _as_convolution(self, images):
        """The same on batches, as one 1x1 convolution (the channel order and 1 / std in its kernel,
        -mean / std its bias): one pass over the pixels where a flip, a subtraction and a division
        broadcast along the channels take three, each slower (3.5x the time in a tf.data pipeline,
        on batches of 64 images of 224x224: scripts/bench_input.py)."""
        channels = len(self.mean)
        order = list(reversed(range(channels))) if self.reverse_channels else list(range(channels))
        kernel = [[0.0] * channels for _ in range(channels)]
        for output, source in enumerate(order):
            kernel[source][output] = 1.0 / self.std[output]
        kernel = ops.convert_to_tensor([[kernel]], dtype=self.compute_dtype)  # [1, 1, in, out]
        bias = ops.convert_to_tensor([-mean / std for mean, std in zip(self.mean, self.std)], dtype=self.compute_dtype)
        return ops.conv(images, kernel, strides=1, padding="valid") + bias

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(mean=self.mean, std=self.std, reverse_channels=self.reverse_channels)
        return config
