"""Local Response Normalization (Krizhevsky et al. 2012, section 3.3)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="zoo")
class LocalResponseNormalization(keras.layers.Layer):
    """Normalizes each activation by the energy of its neighbours across channels.

    ``b_i = a_i / (k + alpha * sum_{j=i-n/2}^{i+n/2} a_j**2) ** beta``, the sum running over the
    ``n`` adjacent channels that exist. ``alpha`` is not divided by ``n`` (TensorFlow's convention;
    Caffe's alpha is n times smaller). Defaults are the paper's: k=2, n=5, alpha=1e-4, beta=0.75.

    Reference: Krizhevsky, Sutskever, Hinton. "ImageNet Classification with Deep Convolutional
    Neural Networks", NeurIPS 2012.
    """

    def __init__(self, depth: int = 5, bias: float = 2.0, alpha: float = 1e-4, beta: float = 0.75, **kwargs):
        super().__init__(**kwargs)
        if depth < 1 or depth % 2 == 0:
            raise ValueError(f"depth (n) must be a positive odd number, got {depth}")
        self.depth = int(depth)
        self.bias = float(bias)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def call(self, inputs):
        # Written with keras.ops rather than tf.nn.local_response_normalization: the TF kernel has
        # no float64 version, which gradient checks need; the window is only n shifted slices.
        radius = self.depth // 2
        squared = ops.square(inputs)
        padded = ops.pad(squared, [[0, 0]] * (len(inputs.shape) - 1) + [[radius, radius]])
        channels = ops.shape(inputs)[-1]
        window_sum = padded[..., 0:channels]
        for offset in range(1, self.depth):
            window_sum = window_sum + padded[..., offset : offset + channels]
        return inputs / ops.power(self.bias + self.alpha * window_sum, self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(depth=self.depth, bias=self.bias, alpha=self.alpha, beta=self.beta)
        return config
