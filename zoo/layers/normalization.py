"""Batch normalization frozen to its moving statistics, for fine-tuning at small batches."""

import keras


@keras.saving.register_keras_serializable(package="zoo")
class FrozenBatchNormalization(keras.layers.BatchNormalization):
    """BatchNormalization that always normalizes with its moving mean and variance and never
    updates them, whether or not the model trains; gamma and beta still learn.

    The statistics of a batch of a few images are noisy, and the moving ones a backbone learnt
    on large batches serve better: Wu & He ("Group Normalization", ECCV 2018) name this freezing
    the usual practice for detection, as torchvision's FrozenBatchNorm2d does. The variables are
    BatchNormalization's, so its weight files load as they are.
    """

    def call(self, inputs, training=None, mask=None):
        return super().call(inputs, training=False, mask=mask)
