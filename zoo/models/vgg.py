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
from zoo.preprocessing import CAFFE, TORCH
from zoo.registry import ModelSpec, register
from zoo.weights.catalogue import released_weights
from zoo.weights.keras_applications import imagenet_weights

# convolutions per block; every block has 64, 128, 256, 512, 512 filters and ends in a 2x2 max pool
CONFIGS = {
    "vgg11": (1, 1, 2, 2, 2),  # A
    "vgg13": (2, 2, 2, 2, 2),  # B
    "vgg16": (2, 2, 3, 3, 3),  # D
    "vgg19": (2, 2, 4, 4, 4),  # E
}
BLOCK_FILTERS = (64, 128, 256, 512, 512)
PARAMS = {
    "vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544, "vgg19": 143_667_240,
    # with BatchNorm, Keras also counts the moving mean and variance (torchvision counts only the
    # trainable 132,868,840 / 133,053,736 / 138,365,992 / 143,678,248)
    "vgg11_bn": 132_874_344, "vgg13_bn": 133_059_624, "vgg16_bn": 138_374_440, "vgg19_bn": 143_689_256,
}
# forward FLOPs at 224x224x3 and 1000 classes (zoo.flops.count)
FLOPS = {
    "vgg11": 15_239_174_048, "vgg13": 22_647_560_096, "vgg16": 30_973_765_536, "vgg19": 39_299_970_976,
    "vgg11_bn": 15_254_026_144, "vgg13_bn": 22_672_045_984, "vgg16_bn": 31_000_860_576, "vgg19_bn": 39_329_675_168,
}


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


for _config in CONFIGS:
    for _batch_norm in (False, True):
        _name = f"{_config}_bn" if _batch_norm else _config
        register(
            ModelSpec(
                name=_name,
                family="vgg",
                builder=vgg,
                paper="Simonyan & Zisserman, Very Deep Convolutional Networks for Large-Scale Image "
                      "Recognition, ICLR 2015",
                default_input_shape=(224, 224, 3),
                min_input_size=32,
                default_num_classes=1000,
                num_params=PARAMS[_name],
                flops=FLOPS[_name],
                fixed_size_top=True,
                # vgg16/vgg19 share keras.applications' caffe convention, so its weights apply as they are
                preprocessing=CAFFE if _config in ("vgg16", "vgg19") and not _batch_norm else TORCH,
                options={"config": _config, "batch_norm": _batch_norm, "dropout": 0.5,
                         **({"batch_norm_epsilon": 1e-3, "norm": "batch"} if _batch_norm else {})},
                weights={**imagenet_weights(_name), **released_weights(_name)},
                same_blocks_as=None if _config == "vgg11" else ("vgg11_bn" if _batch_norm else "vgg11"),
            )
        )
