"""GoogLeNet / Inception v1 (Szegedy et al. "Going Deeper with Convolutions", CVPR 2015)."""

import keras
from keras import layers

from zoo.layers import LocalResponseNormalization
from zoo.models.common import RELU_INIT, classifier, feature_pooling, image_input
from zoo.preprocessing import TORCH
from zoo.registry import ModelSpec, register

# Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj
INCEPTION_FILTERS = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}
POOL_AFTER = ("3b", "4e")  # 3x3/2 max pools between the stages
AUXILIARY_AFTER = ("4a", "4d")
AUXILIARY_LOSS_WEIGHT = 0.3
AUXILIARY_MIN_INPUT = 80  # the auxiliary heads' 5x5/3 pooling needs a 5x5 map at stage 4


def conv(x, filters, kernel, name, strides=1, batch_norm=False):
    """A convolution followed by ReLU, with batch normalization in between when asked."""
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=not batch_norm,
                      kernel_initializer=RELU_INIT, name=name)(x)
    if batch_norm:
        x = layers.BatchNormalization(epsilon=1e-3, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def inception(x, filters, name, batch_norm=False):
    """An inception module: 1x1, 1x1->3x3, 1x1->5x5 and 3x3 pool->1x1 branches, concatenated."""
    ones, reduce3, threes, reduce5, fives, pool_proj = filters
    branch1 = conv(x, ones, 1, f"{name}_1x1", batch_norm=batch_norm)
    branch3 = conv(x, reduce3, 1, f"{name}_3x3_reduce", batch_norm=batch_norm)
    branch3 = conv(branch3, threes, 3, f"{name}_3x3", batch_norm=batch_norm)
    branch5 = conv(x, reduce5, 1, f"{name}_5x5_reduce", batch_norm=batch_norm)
    branch5 = conv(branch5, fives, 5, f"{name}_5x5", batch_norm=batch_norm)
    branch_pool = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    branch_pool = conv(branch_pool, pool_proj, 1, f"{name}_pool_proj", batch_norm=batch_norm)
    return layers.Concatenate(name=f"{name}_output")([branch1, branch3, branch5, branch_pool])


def auxiliary_head(x, num_classes, name, batch_norm, classifier_activation):
    """5x5/3 average pool, 1x1 conv 128, FC 1024, dropout 0.7, classifier (training only)."""
    x = layers.AveragePooling2D(5, strides=3, name=f"{name}_pool")(x)
    x = conv(x, 128, 1, f"{name}_conv", batch_norm=batch_norm)
    x = layers.Flatten(name=f"{name}_flatten")(x)
    x = layers.Dense(1024, activation="relu", kernel_initializer=RELU_INIT, name=f"{name}_fc")(x)
    x = layers.Dropout(0.7, name=f"{name}_dropout")(x)
    return classifier(x, num_classes, classifier_activation, name=f"{name}_predictions")


def googlenet(input_shape, num_classes, include_top, pooling, name, batch_norm=False, auxiliary=False,
              dropout=0.4, classifier_activation="softmax"):
    """GoogLeNet: the stem with its two LRNs, inception modules 3a-5b, global average pooling,
    dropout 0.4 and a linear classifier.

    With `auxiliary=True` the model has three outputs, the main classifier then the auxiliary
    heads on 4a and 4d, for training with `AUXILIARY_LOSS_WEIGHT`; `inference_model` drops them.
    With `batch_norm=True` every convolution is batch-normalized and the LRNs are left out.
    """
    if auxiliary and not include_top:
        raise ValueError("googlenet auxiliary heads need include_top=True")
    if auxiliary and None in input_shape[:2]:
        raise ValueError("googlenet auxiliary heads flatten a fixed-size feature map: give the input a height and width")
    if auxiliary and min(input_shape[:2]) < AUXILIARY_MIN_INPUT:
        raise ValueError(f"googlenet auxiliary heads need inputs of at least {AUXILIARY_MIN_INPUT}x{AUXILIARY_MIN_INPUT}")
    inputs = image_input(input_shape)
    x = conv(inputs, 64, 7, "conv1", strides=2, batch_norm=batch_norm)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    if not batch_norm:
        x = LocalResponseNormalization(name="lrn1")(x)
    x = conv(x, 64, 1, "conv2_reduce", batch_norm=batch_norm)
    x = conv(x, 192, 3, "conv2", batch_norm=batch_norm)
    if not batch_norm:
        x = LocalResponseNormalization(name="lrn2")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)
    auxiliary_outputs = []
    for stage, filters in INCEPTION_FILTERS.items():
        x = inception(x, filters, f"inception{stage}", batch_norm=batch_norm)
        if auxiliary and stage in AUXILIARY_AFTER:
            index = len(auxiliary_outputs) + 1
            auxiliary_outputs.append(auxiliary_head(x, num_classes, f"aux{index}", batch_norm, classifier_activation))
        if stage in POOL_AFTER:
            x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{stage[0]}")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(dropout, name="dropout")(x)
        x = classifier(x, num_classes, classifier_activation)
    else:
        x = feature_pooling(x, pooling)
    outputs = [x, *auxiliary_outputs] if auxiliary else x
    return keras.Model(inputs, outputs, name=name)


def inference_model(model):
    """The model without its auxiliary heads (they only help training), sharing its weights."""
    outputs = model.outputs[0] if isinstance(model.outputs, (list, tuple)) else model.outputs
    return keras.Model(model.inputs, outputs, name=model.name)


register(
    ModelSpec(
        name="googlenet",
        family="googlenet",
        builder=googlenet,
        paper="Szegedy et al., Going Deeper with Convolutions, CVPR 2015",
        default_input_shape=(224, 224, 3),
        min_input_size=32,
        default_num_classes=1000,
        num_params=6_998_552,
        preprocessing=TORCH,
        flops=3_191_832_832,
        options={"batch_norm": False, "auxiliary": False, "dropout": 0.4},
    )
)
