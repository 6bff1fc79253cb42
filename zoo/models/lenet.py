"""LeNet-5 (LeCun, Bottou, Bengio, Haffner. "Gradient-Based Learning Applied to Document
Recognition", Proc. IEEE 1998)."""

import keras
from keras import layers

from zoo.models.common import LINEAR_INIT, RELU_INIT, classifier, feature_pooling, image_input

VARIANTS = {
    # variant: (activation, subsampling layer, initializer)
    "classic": ("tanh", layers.AveragePooling2D, LINEAR_INIT),
    "modern": ("relu", layers.MaxPooling2D, RELU_INIT),
}


def lenet5(input_shape, num_classes, include_top, pooling, name, variant="modern", classifier_activation="softmax"):
    """LeNet-5: C1(6)-S2-C3(16)-S4-C5(120)-F6(84)-output (the default variant is "modern").

    The "classic" variant keeps the paper's tanh squashing and average-pool subsampling (without
    S2/S4's trainable coefficients), with a fully connected C3 and a dense output instead of the
    paper's partial C3 table and RBF units. The "modern" variant uses ReLU and max pooling.
    """
    if variant not in VARIANTS:
        raise ValueError(f"lenet5 variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    activation, subsampling, initializer = VARIANTS[variant]
    inputs = image_input(input_shape)
    x = layers.Conv2D(6, 5, activation=activation, kernel_initializer=initializer, name="c1")(inputs)
    x = subsampling(2, name="s2")(x)
    x = layers.Conv2D(16, 5, activation=activation, kernel_initializer=initializer, name="c3")(x)
    x = subsampling(2, name="s4")(x)
    x = layers.Conv2D(120, 5, activation=activation, kernel_initializer=initializer, name="c5")(x)
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(84, activation=activation, kernel_initializer=initializer, name="f6")(x)
        x = classifier(x, num_classes, classifier_activation)
    else:
        x = feature_pooling(x, pooling)
    return keras.Model(inputs, x, name=name)
