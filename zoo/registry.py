"""One registry of model specs: it drives `zoo.create`, `zoo.info`, the CLI and the test sweep."""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from typing import Any, Callable

from zoo.errors import ZooError
from zoo.preprocessing import Preprocessing

POOLING_CHOICES = (None, "avg", "max")


@dataclasses.dataclass(frozen=True)
class PretrainedWeights:
    """A set of pretrained weights a model can load, with what the weights expect."""

    tag: str
    description: str
    preprocessing: Preprocessing
    input_shape: tuple[int, int, int]
    num_classes: int
    top_url: str | None = None
    top_hash: str | None = None
    notop_url: str | None = None
    notop_hash: str | None = None
    class_names: str | None = None  # "imagenet": Keras's ImageNet class index file


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything the kit knows about one model, apart from its layers."""

    name: str
    family: str
    builder: Callable[..., Any]
    paper: str
    default_input_shape: tuple[int, int, int]
    min_input_size: int
    default_num_classes: int
    num_params: int  # at the default configuration; the test sweep checks it against the built model
    preprocessing: Preprocessing
    # forward FLOPs of one image at the default configuration, as `zoo.flops.count` counts them
    # (the test sweep checks it); None where they depend on more than the image (captioner)
    flops: int | None = None
    options: dict = dataclasses.field(default_factory=dict)
    weights: dict[str, PretrainedWeights] = dataclasses.field(default_factory=dict)
    test_input_size: int | None = None  # a small input for CI; defaults to the minimum

    def summary(self) -> dict:
        """A plain-data description, as `zoo info` prints it."""
        return {
            "name": self.name,
            "family": self.family,
            "paper": self.paper,
            "default_input_shape": list(self.default_input_shape),
            "min_input_shape": [self.min_input_size, self.min_input_size, 1],
            "default_num_classes": self.default_num_classes,
            "num_params": self.num_params,
            "flops": self.flops,
            "preprocessing": self.preprocessing.describe(),
            "options": dict(self.options),
            "weights": [f"{self.name}.{tag}" for tag in self.weights],
        }


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Adds a spec; a second spec under the same name is refused."""
    if spec.name in _REGISTRY:
        raise ZooError(f"a model named {spec.name!r} is already registered; pick another name")
    if spec.name != spec.name.lower() or " " in spec.name:
        raise ZooError(f"model names are lower case without spaces, not {spec.name!r}")
    _REGISTRY[spec.name] = spec
    return spec


def _load_families() -> None:
    import zoo.models  # noqa: F401  (registers every family on import)


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, sorted, optionally filtered by an fnmatch pattern such as "resnet*"."""
    _load_families()
    names = sorted(_REGISTRY)
    if pattern:
        names = [name for name in names if fnmatch.fnmatch(name, pattern)]
    return names


def get_spec(name: str) -> ModelSpec:
    """The spec of a model; an unknown name raises ZooError with the closest names."""
    _load_families()
    base = name.split(".", 1)[0]
    if base in _REGISTRY:
        return _REGISTRY[base]
    close = difflib.get_close_matches(base, list(_REGISTRY), n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    raise ZooError(f"unknown model {name!r}.{hint} Run `zoo list` to see every model.")


def info(name: str) -> ModelSpec:
    """The spec of a model: family, paper, input shapes, classes, parameters, preprocessing, weights."""
    return get_spec(name)


def resolve_input_shape(spec: ModelSpec, input_shape) -> tuple[int, int, int]:
    """Checks a requested (height, width, channels) against what the model can take."""
    if input_shape is None:
        return tuple(spec.default_input_shape)
    if isinstance(input_shape, int):
        input_shape = (input_shape, input_shape, spec.default_input_shape[-1])
    input_shape = tuple(input_shape)
    if len(input_shape) == 2:
        input_shape = (*input_shape, spec.default_input_shape[-1])
    if len(input_shape) != 3:
        raise ZooError(f"input_shape must be (height, width, channels), got {input_shape}")
    height, width, channels = input_shape
    if channels not in (1, 3):
        raise ZooError(f"{spec.name} takes 1- or 3-channel images, got {channels} channels")
    if height < spec.min_input_size or width < spec.min_input_size:
        raise ZooError(
            f"{spec.name} needs inputs of at least {spec.min_input_size}x{spec.min_input_size}, "
            f"got {height}x{width}; use a larger --image-size"
        )
    return (int(height), int(width), int(channels))


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
        from zoo import weights as weight_loading

        return weight_loading.create_with_weights(
            spec, weights, num_classes=num_classes, input_shape=input_shape,
            include_top=include_top, pooling=pooling, options=options,
        )
    return build(spec, num_classes=num_classes, input_shape=input_shape,
                 include_top=include_top, pooling=pooling, options=options)


def build(spec: ModelSpec, *, num_classes=None, input_shape=None, include_top=True, pooling=None, options=None):
    """Builds a randomly initialized model from its spec (no weights loaded)."""
    shape = resolve_input_shape(spec, input_shape)
    return spec.builder(
        input_shape=shape,
        num_classes=num_classes or spec.default_num_classes,
        include_top=include_top,
        pooling=pooling,
        name=spec.name,
        **(options if options is not None else spec.options),
    )
