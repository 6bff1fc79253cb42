"""Gradient checks (CS231n): the project's own layers against centred finite differences in float64."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from finetune.data.augment import PCALighting, RandomResizedCrop  # noqa: E402
from zoo.layers import LocalResponseNormalization, preprocessing_layer  # noqa: E402
from zoo.preprocessing import CAFFE, TORCH  # noqa: E402

STEP = 1e-6
TOLERANCE = 1e-4
SHAPE = (1, 2, 3, 7)  # 7 channels: LRN windows reach both edges and the middle


def relative_error(analytic, numeric) -> float:
    """max |a - n| / max(|a|, |n|), with a floor so that two near-zero gradients compare as equal."""
    return float(np.max(np.abs(analytic - numeric) / np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), 1e-8)))


def gradient_check(layer, inputs, seed=0):
    """Analytic gradient of a random projection of the layer's output against centred differences,
    (f(x + h) - f(x - h)) / 2h, for every input coordinate."""
    projection = tf.constant(np.random.default_rng(seed).normal(size=layer(inputs).shape), tf.float64)

    def objective(x):
        return tf.reduce_sum(layer(x) * projection)

    x = tf.constant(inputs, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = objective(x)
    analytic = tape.gradient(value, x).numpy()
    numeric = np.zeros_like(inputs)
    for index in np.ndindex(inputs.shape):
        shift = np.zeros_like(inputs)
        shift[index] = STEP
        numeric[index] = (objective(x + shift) - objective(x - shift)).numpy() / (2 * STEP)
    return relative_error(analytic, numeric)


def positive_inputs(seed=0):
    # Activations after ReLU, as LRN sees them in AlexNet, at a scale where the window term matters.
    return np.random.default_rng(seed).uniform(0.5, 3.0, SHAPE)


@pytest.mark.parametrize("settings", [
    {},  # the paper's k=2, n=5, alpha=1e-4, beta=0.75: nearly a constant scale
    {"depth": 3, "bias": 1.0, "alpha": 0.5, "beta": 0.75},  # strong normalization: the window dominates
    {"depth": 7, "bias": 0.5, "alpha": 1.0, "beta": 1.5},  # a window wider than half the channels
])
def test_local_response_normalization(settings):
    layer = LocalResponseNormalization(dtype="float64", **settings)
    assert gradient_check(layer, positive_inputs()) < TOLERANCE


@pytest.mark.parametrize("preprocessing", [CAFFE, TORCH], ids=["caffe-bgr", "torch"])
def test_image_preprocessing(preprocessing):
    layer = preprocessing_layer(preprocessing)
    layer = type(layer).from_config({**layer.get_config(), "dtype": "float64"})
    inputs = np.random.default_rng(1).uniform(0, 255, (1, 2, 2, 3))
    assert gradient_check(layer, inputs) < TOLERANCE


@pytest.mark.parametrize("layer_class", [RandomResizedCrop, PCALighting])
def test_augmentation_layers_at_inference(layer_class):
    """At inference the augmentation layers pass images through: the gradient is the identity."""
    layer = layer_class(seed=0, dtype="float64")

    class Inference:
        def __call__(self, x):
            return layer(x, training=False)

    inputs = np.random.default_rng(2).uniform(0, 255, (1, 2, 2, 3))
    assert gradient_check(Inference(), inputs) < TOLERANCE


def test_the_check_catches_a_wrong_gradient():
    """A layer with a deliberately wrong gradient fails the check, so passing means something."""

    @tf.custom_gradient
    def wrong_square(x):
        return x * x, lambda upstream: upstream * 2.2 * x  # should be 2x

    assert gradient_check(wrong_square, positive_inputs()) > 0.05
