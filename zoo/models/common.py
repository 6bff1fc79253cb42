"""Pieces every family shares: the input, the classifier top and the feature pooling."""

import keras
from keras import layers

RELU_INIT = "he_normal"  # He et al. 2015: keeps activation variance through ReLU layers
LINEAR_INIT = "glorot_uniform"  # Glorot & Bengio 2010: for tanh and linear layers


def image_input(input_shape, name: str = "input_layer"):
    return keras.Input(shape=input_shape, name=name)


def classifier(x, num_classes: int, activation="softmax", name: str = "predictions"):
    """The final linear layer, Glorot-initialized (it feeds a softmax, not a ReLU)."""
    return layers.Dense(num_classes, activation=activation, kernel_initializer=LINEAR_INIT, name=name)(x)


def feature_pooling(x, pooling):
    """What `include_top=False` returns: the feature map, or its global average or max."""
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x
