"""VGG (Simonyan & Zisserman. "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015), configurations A, B, D and E, with and without batch normalization.

Layer names and weight shapes follow keras.applications (`block1_conv1`, `fc1`, `predictions`),
so its ImageNet weight files load into vgg16 and vgg19. torchvision's VGGs have the same layers;
their BatchNorm epsilon is PyTorch's 1e-5 (`batch_norm_epsilon=1e-5`) where Keras's default is 1e-3.
The `_bn` models take `norm="group"` or `"frozen"` (see `zoo.models.common.normalization`).
"""

import keras
from keras import layers

from zoo.models.common import RELU_INIT, check_normalization, classifier, feature_pooling, image_input, normalization
from zoo.specs.vgg import CONFIGS

BLOCK_FILTERS = (64, 128, 256, 512, 512)


def conv_block(x, filters, convolutions, block, batch_norm, batch_norm_epsilon=1e-3, norm="batch"):
    """`convolutions` 3x3 convolutions (each optionally normalized as `norm` asks) and a 2x2 max pool."""
    for index in range(1, convolutions + 1):
        prefix = f"block{block}_conv{index}"
        if batch_norm:
            x = layers.Conv2D(filters, 3, padding="same", kernel_initializer=RELU_INIT, name=prefix)(x)
            x = normalization(x, norm, f"block{block}_bn{index}", batch_norm_epsilon)
            x = layers.Activation("relu", name=f"block{block}_relu{index}")(x)
        else:
            x = layers.Conv2D(filters, 3, padding="same", activation="relu", kernel_initializer=RELU_INIT,
                              name=prefix)(x)
    return layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)


def vgg(input_shape, num_classes, include_top, pooling, name, config, batch_norm=False, batch_norm_epsilon=1e-3,
        norm="batch", dropout=0.5, classifier_activation="softmax"):
    """A VGG network: five blocks of 3x3 convolutions, then FC-4096, FC-4096 (dropout 0.5) and
    the classifier. `batch_norm_epsilon` applies with `batch_norm=True` (1e-3, Keras's default;
    torchvision's weights need 1e-5), and so does `norm` ("batch", "group" or "frozen")."""
    check_normalization(norm, "vgg")
    if norm != "batch" and not batch_norm:
        raise ValueError(f"norm={norm!r} replaces batch normalization, which {name} does not have: use {config}_bn")
    inputs = image_input(input_shape)
    x = inputs
    for block, (filters, convolutions) in enumerate(zip(BLOCK_FILTERS, CONFIGS[config]), start=1):
        x = conv_block(x, filters, convolutions, block, batch_norm, batch_norm_epsilon, norm)
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        for index in (1, 2):
            x = layers.Dense(4096, activation="relu", kernel_initializer=RELU_INIT, name=f"fc{index}")(x)
            x = layers.Dropout(dropout, name=f"fc{index}_dropout")(x)
        x = classifier(x, num_classes, classifier_activation)
    else:
        x = feature_pooling(x, pooling)
    return keras.Model(inputs, x, name=name)
