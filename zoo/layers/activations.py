"""ReLU computed on the bits of a bfloat16 tensor."""

import keras
import tensorflow as tf


@tf.custom_gradient
def _bitwise_relu(x):
    # A bfloat16's bits read as an int16 order as the numbers do for the non-negative ones, and
    # every negative one (sign bit set, -0.0 too) is a negative int16: max with 0 is ReLU.
    outputs = tf.bitcast(tf.maximum(tf.bitcast(x, tf.int16), tf.zeros([], tf.int16)), x.dtype)

    def gradient(upstream):
        return tf.raw_ops.ReluGrad(gradients=upstream, features=outputs)

    return outputs, gradient


@keras.saving.register_keras_serializable(package="zoo")
def relu(x):
    """max(x, 0), as `keras.activations.relu`; on bfloat16, computed as an int16 max of its bits.

    TensorFlow's Relu kernel on bfloat16 (Eigen's) runs at half its float32 speed, although it
    moves half the bytes: a ReLU after each residual block's Add took 20% of a ResNet-50 bfloat16
    inference call on an AMX CPU (BENCHMARKS.md, profile_step); the int16 max runs 3.7 times as
    fast. Its gradient is TensorFlow's ReluGrad; its values are Relu's (-0.0 comes out as 0.0).
    Where the ReLU follows a BatchNormalization or a convolution, keep Keras's "relu": TensorFlow
    fuses that Relu into the op before it.
    """
    x = tf.convert_to_tensor(x)
    if x.dtype == tf.bfloat16:
        return _bitwise_relu(x)
    return tf.nn.relu(x)
