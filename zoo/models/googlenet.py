"""GoogLeNet / Inception v1 (Szegedy et al. "Going Deeper with Convolutions", CVPR 2015), as in
the paper and as the released weights were trained:

- "paper" (the default): Table 1's net, optionally batch-normalized (`batch_norm=True`);
- "bvlc": BVLC's Caffe replication (bvlc_googlenet): conv1 padded by 3 on every side, LRN with
  Caffe's k=1 (alpha divided by n), max pools between stages that round their output size up;
- "torchvision": torchvision's port of the TensorFlow-trained net: batch-normalized (epsilon 1e-3)
  without LRN, a 3x3 kernel in the branch the paper calls 5x5, pools that round up, and a 2x2/2
  pool after 4e.

The batch-normalized nets take `norm="group"` or `"frozen"` (see `zoo.models.common.normalization`).
"""

import keras
from keras import layers

from zoo.layers import CeilModeMaxPooling2D, LocalResponseNormalization
from zoo.models.common import RELU_INIT, check_normalization, classifier, feature_pooling, image_input, normalization

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
VARIANTS = ("paper", "bvlc", "torchvision")
# Caffe's LRN of bvlc_googlenet: local_size 5, alpha 1e-4 (divided by n in Caffe), beta 0.75, k 1
CAFFE_LRN = {"depth": 5, "bias": 1.0, "alpha": 1e-4 / 5, "beta": 0.75}


def conv(x, filters, kernel, name, strides=1, batch_norm=False, padding="same", norm="batch"):
    """A convolution followed by ReLU, with batch normalization (or what `norm` puts in its place)
    in between when asked."""
    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=not batch_norm,
                      kernel_initializer=RELU_INIT, name=name)(x)
    if batch_norm:
        x = normalization(x, norm, f"{name}_bn", epsilon=1e-3)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def inception(x, filters, name, batch_norm=False, fives_kernel=5, norm="batch"):
    """An inception module: 1x1, 1x1->3x3, 1x1->5x5 and 3x3 pool->1x1 branches, concatenated.

    `fives_kernel=3` gives torchvision's module, whose "5x5" branch has a 3x3 kernel.
    """
    ones, reduce3, threes, reduce5, fives, pool_proj = filters
    branch1 = conv(x, ones, 1, f"{name}_1x1", batch_norm=batch_norm, norm=norm)
    branch3 = conv(x, reduce3, 1, f"{name}_3x3_reduce", batch_norm=batch_norm, norm=norm)
    branch3 = conv(branch3, threes, 3, f"{name}_3x3", batch_norm=batch_norm, norm=norm)
    branch5 = conv(x, reduce5, 1, f"{name}_5x5_reduce", batch_norm=batch_norm, norm=norm)
    branch5 = conv(branch5, fives, fives_kernel, f"{name}_5x5", batch_norm=batch_norm, norm=norm)
    branch_pool = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    branch_pool = conv(branch_pool, pool_proj, 1, f"{name}_pool_proj", batch_norm=batch_norm, norm=norm)
    return layers.Concatenate(name=f"{name}_output")([branch1, branch3, branch5, branch_pool])


def auxiliary_head(x, num_classes, name, batch_norm, classifier_activation, norm="batch"):
    """5x5/3 average pool, 1x1 conv 128, FC 1024, dropout 0.7, classifier (training only)."""
    x = layers.AveragePooling2D(5, strides=3, name=f"{name}_pool")(x)
    x = conv(x, 128, 1, f"{name}_conv", batch_norm=batch_norm, norm=norm)
    x = layers.Flatten(name=f"{name}_flatten")(x)
    x = layers.Dense(1024, activation="relu", kernel_initializer=RELU_INIT, name=f"{name}_fc")(x)
    x = layers.Dropout(0.7, name=f"{name}_dropout")(x)
    return classifier(x, num_classes, classifier_activation, name=f"{name}_predictions")


def googlenet(input_shape, num_classes, include_top, pooling, name, variant="paper", batch_norm=None,
              auxiliary=False, dropout=0.4, norm="batch", classifier_activation="softmax"):
    """GoogLeNet: the stem with its two LRNs, inception modules 3a-5b, global average pooling,
    dropout 0.4 and a linear classifier.

    With `auxiliary=True` the model has three outputs, the main classifier then the auxiliary
    heads on 4a and 4d, for training with `AUXILIARY_LOSS_WEIGHT`; `inference_model` drops them.
    With `batch_norm=True` every convolution is batch-normalized and the LRNs are left out
    (torchvision's variant always is, BVLC's never); `norm` ("batch", "group" or "frozen") says
    how. See the module docstring for the variants.
    """
    if variant not in VARIANTS:
        raise ValueError(f"googlenet variant must be one of {', '.join(VARIANTS)}, not {variant!r}")
    if batch_norm is None:
        batch_norm = variant == "torchvision"
    if batch_norm != (variant == "torchvision") and variant != "paper":
        raise ValueError(f"the {variant} googlenet is {'' if variant == 'torchvision' else 'not '}batch-normalized: "
                         f"leave batch_norm out")
    check_normalization(norm, "googlenet")
    if norm != "batch" and not batch_norm:
        raise ValueError(f"norm={norm!r} replaces batch normalization, which this googlenet does not have: "
                         f"build it with batch_norm=True or variant='torchvision'")
    if auxiliary and not include_top:
        raise ValueError("googlenet auxiliary heads need include_top=True")
    if auxiliary and None in input_shape[:2]:
        raise ValueError("googlenet auxiliary heads flatten a fixed-size feature map: give the input a height and width")
    if auxiliary and min(input_shape[:2]) < AUXILIARY_MIN_INPUT:
        raise ValueError(f"googlenet auxiliary heads need inputs of at least {AUXILIARY_MIN_INPUT}x{AUXILIARY_MIN_INPUT}")
    released = variant != "paper"  # the released nets pad conv1 symmetrically and pool rounding up

    def max_pool(x, name, size=3):
        if released:
            return CeilModeMaxPooling2D(size, strides=2, name=name)(x)
        return layers.MaxPooling2D(size, strides=2, padding="same", name=name)(x)

    def normalize(x, name):
        if batch_norm:
            return x
        return LocalResponseNormalization(name=name, **(CAFFE_LRN if variant == "bvlc" else {}))(x)

    inputs = image_input(input_shape)
    x = inputs
    if released:
        # Caffe and PyTorch pad 3 on every side; "same" would pad 2 above and 3 below on even inputs
        x = layers.ZeroPadding2D(3, name="conv1_pad")(x)
    x = conv(x, 64, 7, "conv1", strides=2, batch_norm=batch_norm, padding="valid" if released else "same", norm=norm)
    x = max_pool(x, "pool1")
    x = normalize(x, "lrn1")
    x = conv(x, 64, 1, "conv2_reduce", batch_norm=batch_norm, norm=norm)
    x = conv(x, 192, 3, "conv2", batch_norm=batch_norm, norm=norm)
    x = normalize(x, "lrn2")
    x = max_pool(x, "pool2")
    auxiliary_outputs = []
    for stage, filters in INCEPTION_FILTERS.items():
        x = inception(x, filters, f"inception{stage}", batch_norm=batch_norm,
                      fives_kernel=3 if variant == "torchvision" else 5, norm=norm)
        if auxiliary and stage in AUXILIARY_AFTER:
            index = len(auxiliary_outputs) + 1
            auxiliary_outputs.append(auxiliary_head(x, num_classes, f"aux{index}", batch_norm, classifier_activation,
                                                    norm))
        if stage in POOL_AFTER:
            x = max_pool(x, f"pool{stage[0]}", size=2 if variant == "torchvision" and stage == "4e" else 3)
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
