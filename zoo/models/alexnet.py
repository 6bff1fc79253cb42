"""AlexNet (Krizhevsky, Sutskever, Hinton. "ImageNet Classification with Deep Convolutional Neural
Networks", NeurIPS 2012), as in the paper and as the released weights were trained:

- "paper" (the default): the paper's net, LRN with the paper's k=2;
- "bvlc": BVLC's Caffe replication (bvlc_alexnet): LRN with Caffe's k=1 (and alpha divided by n,
  Caffe's convention), pooling that rounds up as Caffe's does;
- "caffenet": BVLC's reference CaffeNet, the same net with each max pool before its LRN;
- "torchvision": the "one weird trick" net torchvision ships (Krizhevsky, "One weird trick for
  parallelizing convolutional neural networks", 2014): 64-192-384-256-256 filters, no LRN, one
  tower, conv1 padded by 2.
"""

import keras
from keras import layers

from zoo.layers import CeilModeMaxPooling2D, LocalResponseNormalization
from zoo.models.common import RELU_INIT, classifier, feature_pooling, image_input

# (filters, kernel, stride, split across the two towers, LRN + overlapping pool after it)
CONVOLUTIONS = [
    (96, 11, 4, False, True),
    (256, 5, 1, True, True),
    (384, 3, 1, False, False),
    (384, 3, 1, True, False),
    (256, 3, 1, True, False),
]
TORCHVISION_FILTERS = (64, 192, 384, 256, 256)
VARIANTS = ("paper", "bvlc", "caffenet", "torchvision")
# Caffe's LRN layers of both BVLC nets: local_size 5, alpha 1e-4, beta 0.75, k 1; Caffe divides
# alpha by local_size, the zoo's layer (TensorFlow's convention) does not
CAFFE_LRN = {"depth": 5, "bias": 1.0, "alpha": 1e-4 / 5, "beta": 0.75}


def alexnet(input_shape, num_classes, include_top, pooling, name, variant="paper", towers=None, dropout=0.5,
            classifier_activation="softmax"):
    """AlexNet: five convolutions (LRN and overlapping 3x3/2 max pooling after conv1 and conv2,
    pooling after conv5), then FC6 and FC7 with dropout and the classifier.

    With `towers=2` (the paper's two-GPU layout, the default of every variant but torchvision's)
    conv2, conv4 and conv5 see only the channels of their own tower (groups=2), giving the paper's
    60,965,224 parameters; `towers=1` connects all. See the module docstring for the variants.
    """
    if variant not in VARIANTS:
        raise ValueError(f"alexnet variant must be one of {', '.join(VARIANTS)}, not {variant!r}")
    if towers is None:
        towers = 1 if variant == "torchvision" else 2
    if towers not in (1, 2):
        raise ValueError(f"alexnet towers must be 1 or 2, got {towers!r}")
    if variant == "torchvision" and towers != 1:
        raise ValueError("torchvision's alexnet has one tower: leave towers out or pass towers=1")
    caffe = variant in ("bvlc", "caffenet")
    inputs = image_input(input_shape)
    x = inputs
    for index, (filters, kernel, stride, split, normalize) in enumerate(CONVOLUTIONS, start=1):
        if variant == "torchvision":
            filters = TORCHVISION_FILTERS[index - 1]
            if index == 1:
                x = layers.ZeroPadding2D(2, name="conv1_pad")(x)
        x = layers.Conv2D(
            filters, kernel, strides=stride, padding="valid" if index == 1 else "same",
            groups=towers if split else 1, activation="relu", kernel_initializer=RELU_INIT,
            name=f"conv{index}",
        )(x)
        if normalize:
            x = _normalize_and_pool(x, index, variant)
    x = _max_pool(caffe, "pool5")(x)
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        for index in (6, 7):
            x = layers.Dense(4096, activation="relu", kernel_initializer=RELU_INIT, name=f"fc{index}")(x)
            x = layers.Dropout(dropout, name=f"dropout{index}")(x)
        x = classifier(x, num_classes, classifier_activation)
    else:
        x = feature_pooling(x, pooling)
    return keras.Model(inputs, x, name=name)


def _max_pool(caffe: bool, name: str):
    """Overlapping 3x3/2 max pooling; Caffe's rounds its output size up."""
    return CeilModeMaxPooling2D(3, strides=2, name=name) if caffe else layers.MaxPooling2D(3, strides=2, name=name)


def _normalize_and_pool(x, index: int, variant: str):
    """LRN then pooling (the paper, bvlc), pooling then LRN (caffenet), or pooling alone (torchvision)."""
    caffe = variant in ("bvlc", "caffenet")
    normalize = LocalResponseNormalization(name=f"lrn{index}", **(CAFFE_LRN if caffe else {}))
    pool = _max_pool(caffe, f"pool{index}")
    if variant == "torchvision":
        return pool(x)
    if variant == "caffenet":
        return normalize(pool(x))
    return pool(normalize(x))
