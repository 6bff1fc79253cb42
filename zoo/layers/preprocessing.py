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
        if self.reverse_channels:
            inputs = ops.flip(inputs, axis=-1)
        mean = ops.convert_to_tensor(self.mean, dtype=self.compute_dtype)
        std = ops.convert_to_tensor(self.std, dtype=self.compute_dtype)
        return (inputs - mean) / std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(mean=self.mean, std=self.std, reverse_channels=self.reverse_channels)
        return config
