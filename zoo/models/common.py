"""Pieces every family shares: the input, the classifier top, the feature pooling and the normalization layer."""

import keras
from keras import layers

from zoo.layers import BatchNormalization, FrozenBatchNormalization
from zoo.registry import NORMALIZATIONS

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


MAX_GROUPS = 32  # Wu & He, "Group Normalization", ECCV 2018: 32 groups by default


def check_normalization(norm: str, family: str) -> None:
    if norm not in NORMALIZATIONS:
        raise ValueError(f"{family} norm must be one of {', '.join(NORMALIZATIONS)}, not {norm!r}")


def group_count(channels: int) -> int:
    """The largest number of groups up to MAX_GROUPS that divides `channels` evenly."""
    return next(groups for groups in range(min(MAX_GROUPS, channels), 0, -1) if channels % groups == 0)


def normalization(x, norm: str, name: str, epsilon: float):
    """Normalizes `x` as `norm` asks: "batch" (BatchNormalization, the zoo's fused one), "group" (GroupNormalization,
    groups from the channel count) or "frozen" (BatchNormalization on its moving statistics)."""
    if norm == "group":
        return layers.GroupNormalization(groups=group_count(x.shape[-1]), epsilon=epsilon, name=name)(x)
    if norm == "frozen":
        return FrozenBatchNormalization(epsilon=epsilon, name=name)(x)
    return BatchNormalization(epsilon=epsilon, name=name)(x)
