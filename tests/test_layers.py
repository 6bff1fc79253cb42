"""The custom layers: LRN against the paper's formula, the bitwise bfloat16 ReLU against TensorFlow's."""

import keras
import numpy as np
import tensorflow as tf

from zoo.layers import LocalResponseNormalization, relu


def lrn_formula(a, k=2.0, n=5, alpha=1e-4, beta=0.75):
    """b_i = a_i / (k + alpha * sum_{j=max(0,i-n/2)}^{min(N-1,i+n/2)} a_j^2)^beta, straight from the paper."""
    channels = a.shape[-1]
    out = np.empty_like(a)
    for i in range(channels):
        low, high = max(0, i - n // 2), min(channels - 1, i + n // 2)
        energy = np.sum(a[..., low : high + 1] ** 2, axis=-1)
        out[..., i] = a[..., i] / (k + alpha * energy) ** beta
    return out


def test_lrn_matches_the_formula_on_random_input():
    a = np.random.default_rng(0).uniform(0, 30, size=(2, 5, 5, 11)).astype("float64")
    layer = LocalResponseNormalization(dtype="float64")
    np.testing.assert_allclose(layer(a).numpy(), lrn_formula(a), rtol=1e-12)


def test_lrn_matches_tensorflow_kernel_and_other_settings():
    a = np.random.default_rng(1).uniform(0, 10, size=(1, 4, 4, 16)).astype("float32")
    layer = LocalResponseNormalization(depth=3, bias=1.0, alpha=1e-2, beta=0.5)
    expected = tf.nn.local_response_normalization(a, depth_radius=1, bias=1.0, alpha=1e-2, beta=0.5)
    np.testing.assert_allclose(layer(a).numpy(), expected.numpy(), rtol=1e-5)
    np.testing.assert_allclose(layer(a).numpy(), lrn_formula(a.astype("float64"), 1.0, 3, 1e-2, 0.5), rtol=1e-5)


def test_lrn_serializes(tmp_path):
    inputs = keras.Input((4, 4, 8))
    model = keras.Model(inputs, LocalResponseNormalization(depth=7, alpha=2e-4, name="lrn")(inputs))
    model.save(tmp_path / "lrn.keras")
    reloaded = keras.saving.load_model(tmp_path / "lrn.keras", safe_mode=True)
    layer = reloaded.get_layer("lrn")
    assert (layer.depth, layer.alpha, layer.beta, layer.bias) == (7, 2e-4, 0.75, 2.0)


def test_the_zoo_relu_is_tensorflows_relu_with_its_gradient():
    values = np.array([-3.5, -1e-30, -0.0, 0.0, 1e-30, 0.5, 7.25, np.inf, -np.inf], "float32")
    for dtype in (tf.bfloat16, tf.float32):
        x = tf.cast(tf.constant(np.concatenate([values, np.random.default_rng(0).normal(size=55).astype("float32")])), dtype)
        upstream = tf.cast(tf.range(x.shape[0], dtype=tf.float32) - 30.0, dtype)
        results = []
        for function in (relu, tf.nn.relu):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = function(x)
            results.append((y, tape.gradient(y, x, output_gradients=upstream)))
        (ours, our_gradient), (theirs, their_gradient) = results
        assert ours.dtype == dtype
        np.testing.assert_array_equal(tf.cast(ours, tf.float32), tf.cast(theirs, tf.float32))  # -0.0 == 0.0
        np.testing.assert_array_equal(tf.cast(our_gradient, tf.float32), tf.cast(their_gradient, tf.float32))
    layer = keras.layers.Activation(relu)
    assert keras.layers.Activation.from_config(layer.get_config()).activation is relu
