"""AlexNet (Krizhevsky, Sutskever, Hinton. "ImageNet Classification with Deep Convolutional Neural
Networks", NeurIPS 2012)."""

import keras
from keras import layers

from zoo.layers import LocalResponseNormalization
from zoo.models.common import RELU_INIT, classifier, feature_pooling, image_input
from zoo.preprocessing import TORCH
from zoo.registry import ModelSpec, register

# (filters, kernel, stride, split across the two towers, LRN + overlapping pool after it)
CONVOLUTIONS = [
    (96, 11, 4, False, True),
    (256, 5, 1, True, True),
    (384, 3, 1, False, False),
    (384, 3, 1, True, False),
    (256, 3, 1, True, False),
]


def alexnet(input_shape, num_classes, include_top, pooling, name, towers=2, dropout=0.5,
            classifier_activation="softmax"):
    """AlexNet with Local Response Normalization after conv1 and conv2, overlapping 3x3/2 max
    pooling and dropout in FC6/FC7.

    With `towers=2` (the paper's two-GPU layout) conv2, conv4 and conv5 see only the channels of
    their own tower (groups=2), giving the paper's 60,965,224 parameters; `towers=1` connects all.
    """
    if towers not in (1, 2):
        raise ValueError(f"alexnet towers must be 1 or 2, got {towers!r}")
    inputs = image_input(input_shape)
    x = inputs
    for index, (filters, kernel, stride, split, normalize) in enumerate(CONVOLUTIONS, start=1):
        x = layers.Conv2D(
            filters, kernel, strides=stride, padding="valid" if index == 1 else "same",
            groups=towers if split else 1, activation="relu", kernel_initializer=RELU_INIT,
            name=f"conv{index}",
        )(x)
        if normalize:
            x = LocalResponseNormalization(name=f"lrn{index}")(x)
            x = layers.MaxPooling2D(3, strides=2, name=f"pool{index}")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool5")(x)
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        for index in (6, 7):
            x = layers.Dense(4096, activation="relu", kernel_initializer=RELU_INIT, name=f"fc{index}")(x)
            x = layers.Dropout(dropout, name=f"dropout{index}")(x)
        x = classifier(x, num_classes, classifier_activation)
    else:
        x = feature_pooling(x, pooling)
    return keras.Model(inputs, x, name=name)


register(
    ModelSpec(
        name="alexnet",
        family="alexnet",
        builder=alexnet,
        paper="Krizhevsky et al., ImageNet Classification with Deep Convolutional Neural Networks, NeurIPS 2012",
        default_input_shape=(227, 227, 3),
        min_input_size=67,
        default_num_classes=1000,
        num_params=60_965_224,
        preprocessing=TORCH,
        flops=1_455_529_568,
        fixed_size_top=True,
        options={"towers": 2, "dropout": 0.5},
    )
)
