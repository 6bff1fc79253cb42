"""Building registered models: `zoo.create`, with or without pretrained weights."""

from __future__ import annotations

import os

from zoo.errors import ZooError
from zoo.registry import POOLING_CHOICES, ModelSpec, get_spec, resolve_input_shape
from zoo.weights.assign import assign
from zoo.weights.download import fetch_pretrained
from zoo.weights.files import read_weight_file


def create(
    name: str,
    *,
    num_classes: int | None = None,
    input_shape=None,
    include_top: bool = True,
    pooling: str | None = None,
    weights: str | None = None,
    **family_options,
):
    """Builds a registered model as a Keras functional model.

    Args:
        name: a registered name (`zoo.list_models()`), optionally with a weights tag ("resnet50.imagenet").
        num_classes: size of the classifier; defaults to the model's (or the weights') number of classes.
        input_shape: (height, width, channels) at or above the model's minimum, with 1 or 3 channels.
        include_top: keep the classifier; without it the model ends at its last feature map.
        pooling: with include_top=False, None (the feature map), "avg" or "max" (a vector per image).
        weights: None (random initialization), a weights tag such as "imagenet", or a file path.
        family_options: options of the family, such as `variant="modern"` for lenet5.
    """
    spec = get_spec(name)
    if "." in name and weights is None:
        weights = name.split(".", 1)[1]
    if pooling not in POOLING_CHOICES:
        raise ZooError(f"pooling must be one of None, 'avg', 'max', not {pooling!r}")
    if num_classes is not None and num_classes < 1:
        raise ZooError(f"num_classes must be at least 1, got {num_classes}")
    unknown = set(family_options) - set(spec.options) - {"classifier_activation"}
    if unknown:
        allowed = ", ".join(sorted(spec.options)) or "none"
        raise ZooError(f"{spec.name} has no option {', '.join(sorted(unknown))}; its options: {allowed}")
    options = {**spec.options, **family_options}
    if weights is not None:
        return create_with_weights(spec, weights, num_classes=num_classes, input_shape=input_shape,
                                   include_top=include_top, pooling=pooling, options=options)
    return build(spec, num_classes=num_classes, input_shape=input_shape,
                 include_top=include_top, pooling=pooling, options=options)


def build(spec: ModelSpec, *, num_classes=None, input_shape=None, include_top=True, pooling=None, options=None):
    """Builds a randomly initialized model from its spec (no weights loaded)."""
    shape = resolve_input_shape(spec, input_shape, include_top)
    try:
        return spec.builder(
            input_shape=shape,
            num_classes=num_classes or spec.default_num_classes,
            include_top=include_top,
            pooling=pooling,
            name=spec.name,
            **(options if options is not None else spec.options),
        )
    except ValueError as error:  # a family's option out of range, or a shape its layers cannot take
        raise ZooError(f"cannot build {spec.name}: {error}") from None


def create_with_weights(spec: ModelSpec, weights: str, *, num_classes, input_shape, include_top, pooling, options):
    """Builds `spec`'s model and loads `weights`: a tag of the spec ("imagenet") or a weights file.

    Unset `num_classes` and `input_shape` follow the weights (the tag's metadata, or the file's
    classifier and input).
    """
    default_classes = default_shape = None
    if weights in spec.weights:
        pretrained = spec.weights[weights]
        path = fetch_pretrained(pretrained, include_top)
        default_classes, default_shape = pretrained.num_classes, pretrained.input_shape
    elif os.path.exists(weights) or os.sep in weights or weights.endswith((".h5", ".keras")):
        path = weights
    else:
        tags = ", ".join(spec.weights) or "none"
        raise ZooError(
            f"{spec.name} has no weights {weights!r} (its weights: {tags}); pass a tag or a path to a "
            f".keras, .weights.h5 or .h5 file"
        )
    weight_file = read_weight_file(path)
    model = build(
        spec,
        num_classes=num_classes or weight_file.num_classes or default_classes,
        input_shape=input_shape or weight_file.input_shape or default_shape,
        include_top=include_top, pooling=pooling, options=options,
    )
    assign(model, weight_file)
    return model
