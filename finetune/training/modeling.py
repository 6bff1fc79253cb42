"""Turns a zoo model into a fine-tunable one: its feature extractor (the backbone) and a new head.

The backbone is the zoo model up to its classifier's input (keeping VGG's and AlexNet's fully
connected layers and LeNet's F6, as the paper's network has them); the head is dropout and a new
classifier sized for the data. Both live in one functional model saved as `.keras`.
"""

from __future__ import annotations

import keras

import zoo
from zoo.errors import ZooError

BACKBONE = "backbone"
HEAD = "predictions"
HEAD_DROPOUT = "head_dropout"


def backbone_of(model: keras.Model) -> keras.Model:
    return model.get_layer(BACKBONE)


def head_layers(model: keras.Model) -> list:
    return [layer for layer in model.layers if layer.name not in (BACKBONE,) and layer.weights]


def build(config, num_classes: int, input_shape) -> keras.Model:
    """The fine-tunable classifier for `config` (model, weights, mode, dropout, model options)."""
    spec = zoo.info(config.model)
    full = zoo.create(config.model, input_shape=input_shape, weights=config.weights,
                      num_classes=num_classes, **config.model_options)
    try:
        classifier = full.get_layer(HEAD)
    except ValueError:
        raise ZooError(f"{spec.name} has no layer named {HEAD!r} to replace with a new head") from None
    backbone = keras.Model(full.inputs, classifier.input, name=BACKBONE)

    inputs = keras.Input(shape=input_shape, name="image")
    features = backbone(inputs, training=backbone_training(config))
    x = features
    if config.dropout:
        x = keras.layers.Dropout(config.dropout, name=HEAD_DROPOUT)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name=HEAD)(x)
    model = keras.Model(inputs, outputs, name=spec.name)
    set_trainable(model, config.mode, config.unfreeze_from)
    return model


def backbone_training(config) -> bool | None:
    """How the backbone is called when the model trains: False (inference mode) or None (the
    layers train as they would on their own)."""
    if config.mode != "full":
        return False
    # A chosen normalization decides for itself: "batch" then normalizes with each batch's
    # statistics, "frozen" with its moving ones, "group" with each image's.
    if "norm" in config.model_options:
        return None
    # Otherwise pretrained BatchNorm statistics stay frozen (inference mode) even when the backbone
    # trains, as the Keras transfer-learning guide advises; from scratch, BatchNorm learns as usual.
    return False if config.weights else None


def set_trainable(model: keras.Model, mode: str, unfreeze_from: str | None = None) -> None:
    """predict: nothing trains; head: only the head; full: everything, or the backbone from
    `unfreeze_from` (a layer name or prefix, e.g. "conv4_block1") on."""
    backbone = backbone_of(model)
    for layer in head_layers(model):
        layer.trainable = mode != "predict"
    if mode != "full":
        backbone.trainable = False
        return
    backbone.trainable = True
    if unfreeze_from:
        names = [layer.name for layer in backbone.layers]
        starts = [index for index, name in enumerate(names) if name.startswith(unfreeze_from)]
        if not starts:
            raise ZooError(f"no backbone layer starts with {unfreeze_from!r}; layers include "
                           f"{', '.join(names[1:6])} ... (see `zoo info {model.name}`)")
        for layer in backbone.layers[: starts[0]]:
            layer.trainable = False


def feature_extractor(model: keras.Model) -> keras.Model:
    """The backbone of a fine-tunable model, in inference mode (for cached head training)."""
    return backbone_of(model)
