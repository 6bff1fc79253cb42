"""Batch normalization as one fused TensorFlow op, and frozen to its moving statistics for
fine-tuning at small batches."""

import keras
import tensorflow as tf

# The floating types TensorFlow's FusedBatchNormV3 normalizes (on CPU and GPU), its statistics
# and parameters always float32.
FUSED_DTYPES = ("float32", "bfloat16", "float16")
# cuDNN's smallest epsilon (CUDNN_BN_MIN_EPSILON); below it the layer runs Keras's own way.
FUSED_MIN_EPSILON = 1e-5


@keras.saving.register_keras_serializable(package="zoo")
class BatchNormalization(keras.layers.BatchNormalization):
    """Keras's BatchNormalization, computed by TensorFlow's fused kernel (FusedBatchNormV3) for
    4-D channels-last inputs.

    Keras 3 normalizes with a dozen element-wise ops, and under a mixed policy first casts its
    bfloat16 or float16 input to float32 and the result back: on a CPU with AMX, those ops, the
    casts and their gradients took 57% of the op time of a ResNet-50 bfloat16 training step at
    224x224 (38% in float32), and the step ran 2.1 times as fast fused (float32 1.15 times;
    BENCHMARKS.md, profile_step). The fused op reads the input in the layer's
    compute dtype and keeps the statistics, gamma and beta in float32, in one pass forward and
    one backward (oneDNN's kernel where TensorFlow runs oneDNN, cuDNN's on a GPU), and
    TensorFlow's graph optimizer fuses it with a ReLU after it.

    The results are Keras's: the moving statistics update with the same momentum from the
    batch's biased variance (the fused op returns the unbiased one, n / (n - 1) larger, and is
    corrected), and the class name, variables and config are BatchNormalization's, so weight
    files and `.keras` files of either load into the other. Anything else (another rank or
    axis, masks, renorm, synchronized statistics, an epsilon under cuDNN's minimum) runs
    Keras's own code.
    """

    def _fused(self, inputs, mask) -> bool:
        return (mask is None and len(inputs.shape) == 4 and self.axis in (-1, 3) and not self.renorm
                and not self.synchronized and self.epsilon >= FUSED_MIN_EPSILON
                and self.compute_dtype in FUSED_DTYPES)

    def call(self, inputs, training=None, mask=None):
        if not self._fused(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        inputs = tf.cast(inputs, self.compute_dtype)
        channels = inputs.shape[-1]
        scale = self.gamma.value if self.scale else tf.ones([channels], tf.float32)
        offset = self.beta.value if self.center else tf.zeros([channels], tf.float32)
        if training and self.trainable:
            empty = tf.constant([], tf.float32)
            outputs, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=scale, offset=offset, mean=empty, variance=empty, epsilon=self.epsilon,
                exponential_avg_factor=1.0, data_format="NHWC", is_training=True)
            count = tf.cast(tf.size(inputs) // channels, tf.float32)
            variance = variance * ((count - 1.0) / count)
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
            return outputs
        outputs, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=scale, offset=offset, mean=self.moving_mean.value, variance=self.moving_variance.value,
            epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC", is_training=False)
        return outputs


@keras.saving.register_keras_serializable(package="zoo")
class FrozenBatchNormalization(BatchNormalization):
    """BatchNormalization that always normalizes with its moving mean and variance and never
    updates them, whether or not the model trains; gamma and beta still learn.

    The statistics of a batch of a few images are noisy, and the moving ones a backbone learnt
    on large batches serve better: Wu & He ("Group Normalization", ECCV 2018) name this freezing
    the usual practice for detection, as torchvision's FrozenBatchNorm2d does. The variables are
    BatchNormalization's, so its weight files load as they are.
    """

    def call(self, inputs, training=None, mask=None):
        return super().call(inputs, training=False, mask=mask)
