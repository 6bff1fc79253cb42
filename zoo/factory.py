"""Building registered models: `zoo.create`, with or without pretrained weights."""

from __future__ import annotations

from zoo.errors import ZooError
from zoo.registry import POOLING_CHOICES, ModelSpec, get_spec, min_input_size, resolve_input_shape
from zoo.weights.assign import assign
from zoo.weights.pretrained import is_other_library_file, resolve, tag_of


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
        weights: None (random initialization), a weights tag such as "imagenet" or "tv_in1k" (see
            `zoo info NAME`), or a file: Keras (.keras, .weights.h5, .h5), PyTorch (.pth, .pt, .bin),
            safetensors or Caffe (.caffemodel), whatever its name; the model is built as the
            weights need (e.g. `variant="torchvision"`).
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
                                   include_top=include_top, pooling=pooling, options=options,
                                   given=family_options)
    return build(spec, num_classes=num_classes, input_shape=input_shape,
                 include_top=include_top, pooling=pooling, options=options)


def build(spec: ModelSpec, *, num_classes=None, input_shape=None, include_top=True, pooling=None, options=None,
          min_size=None):
    """Builds a randomly initialized model from its spec (no weights loaded); `min_size`: the
    smallest input side, where a weights tag's network takes smaller ones than the spec's."""
    shape = resolve_input_shape(spec, input_shape, include_top, min_size)
    try:
        return spec.build_function()(
            input_shape=shape,
            num_classes=num_classes or spec.default_num_classes,
            include_top=include_top,
            pooling=pooling,
            name=spec.name,
            **(options if options is not None else spec.options),
        )
    except ValueError as error:  # a family's option out of range, or a shape its layers cannot take
        raise ZooError(f"cannot build {spec.name}: {error}") from None


def create_with_weights(spec: ModelSpec, weights: str, *, num_classes, input_shape, include_top, pooling, options,
                        given=None):
    """Builds `spec`'s model and loads `weights`: a tag of the spec ("imagenet", "tv_in1k") or a
    weights file of any format `zoo.weights.pretrained` reads.

    Unset `num_classes` and `input_shape` follow the weights (the tag's metadata, or the file's
    classifier and input); the family options the weights need (a variant) are added to `options`,
    and refused where `given` (the options the caller passed) contradicts them.
    """
    given = given or {}
    if options.get("norm") == "group" and (tag_of(spec, weights) or is_other_library_file(weights)):
        raise ZooError(f"{spec.name}'s pretrained weights ({weights}) hold batch normalization's statistics, which "
                       f"norm='group' has no place for: use norm='frozen' (or 'batch') to fine-tune them, or "
                       f"norm='group' without weights")

    def build_reference(reference_options, reference_classes, reference_shape):
        return build(spec, num_classes=reference_classes, input_shape=reference_shape, options=reference_options)

    resolved = resolve(spec, weights, include_top=include_top, given=given, build_reference=build_reference)
    for key, value in resolved.options.items():
        if key in given and given[key] != value:
            raise ZooError(f"the {resolved.name} weights need {key}={value!r}, not {key}={given[key]!r}: leave {key} out")
    model = build(
        spec,
        num_classes=num_classes or resolved.num_classes,
        input_shape=input_shape or resolved.input_shape,
        include_top=include_top, pooling=pooling, options={**options, **resolved.options},
        min_size=min_input_size(spec, tag_of(spec, weights)),
    )
    assign(model, resolved.weight_file(model))
    return model
