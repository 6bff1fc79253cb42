"""One registry of model specs: it drives `zoo.create`, `zoo.info`, the CLI and the test sweep.

The registry is data: specs and lookups, read without Keras. Each family's module in `zoo.specs`
registers its specs when it is imported (importing `zoo` imports them all); a spec names the
builder of its architecture in `zoo.models`, and building a model, with or without weights, is
`zoo.factory`'s job.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import importlib
from typing import Any, Callable

import numpy as np

from zoo.errors import ZooError
from zoo.eval_transform import SQUASH_BILINEAR, EvalTransform
from zoo.preprocessing import Preprocessing

POOLING_CHOICES = (None, "avg", "max")
# what the batch-normalized families' `norm` option puts in BatchNormalization's place
# (`zoo.models.common.normalization`)
NORMALIZATIONS = ("batch", "group", "frozen")


@dataclasses.dataclass(frozen=True)
class PretrainedWeights:
    """A set of pretrained weights a model can load, with what the weights expect.

    Keras files (`file_format="keras"`, keras.applications') come with and without the classifier
    top; other libraries' files (`"pytorch"`, `"safetensors"`, `"caffe"`) are one file, converted
    on first use, for the model built with `options` (e.g. {"variant": "torchvision"}).
    """

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
    source: str = "keras.applications"  # who trained and published the weights
    file_format: str = "keras"
    options: dict = dataclasses.field(default_factory=dict)  # the family options the weights need
    top1: float | None = None  # published ImageNet validation accuracy, percent
    top5: float | None = None
    file_name: str | None = None  # the file's name in the Keras cache (default: the URL's)
    # how the source resizes and crops images when it evaluates the weights (`zoo.eval_transform`)
    evaluation: EvalTransform = SQUASH_BILINEAR
    # the smallest input side the source's network takes, where it is not the model's (torchvision's
    # AlexNet takes 63 where the paper's net needs 67); None: the model's `min_input_size`
    min_input_size: int | None = None

    def summary(self) -> dict:
        """A plain-data description, as `zoo info` prints it."""
        return {"tag": self.tag, "source": self.source, "format": self.file_format, "top1": self.top1,
                "top5": self.top5, "input": list(self.input_shape), "preprocessing": self.preprocessing.name,
                "evaluation": self.evaluation.describe(*self.input_shape[:2]), "min_input_size": self.min_input_size,
                "options": dict(self.options), "url": self.top_url}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything the kit knows about one model, apart from its layers."""

    name: str
    family: str
    # the function that builds the model (input_shape, num_classes, include_top, pooling, name, **options),
    # or where it is, "module:function", imported when a model is first built
    builder: Callable[..., Any] | str
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
    # the classifier flattens a feature map (LeNet, AlexNet, VGG): with its top, the model needs a
    # fixed input height and width; the others pool globally and take any size
    fixed_size_top: bool = False
    # a shallower registered model built from the same blocks (resnet152: resnet50), or None
    same_blocks_as: str | None = None

    def build_function(self) -> Callable[..., Any]:
        """The builder itself: `builder`, imported from its module when it names one."""
        if callable(self.builder):
            return self.builder
        module, _, function = self.builder.partition(":")
        return getattr(importlib.import_module(module), function)

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


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, sorted, optionally filtered by an fnmatch pattern such as "resnet*"."""
    names = sorted(_REGISTRY)
    if pattern:
        names = [name for name in names if fnmatch.fnmatch(name, pattern)]
    return names


def get_spec(name: str) -> ModelSpec:
    """The spec of a model; an unknown name raises ZooError with the closest names."""
    base = name.split(".", 1)[0]
    if base in _REGISTRY:
        return _REGISTRY[base]
    close = difflib.get_close_matches(base, list(_REGISTRY), n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    raise ZooError(f"unknown model {name!r}.{hint} Run `zoo list` to see every model.")


def info(name: str) -> ModelSpec:
    """The spec of a model: family, paper, input shapes, classes, parameters, preprocessing, weights."""
    return get_spec(name)


def min_input_size(spec: ModelSpec, weights: str | None = None) -> int:
    """The smallest input side of `spec`'s model, or of the network a weights tag of it builds."""
    tag = weights.removeprefix(f"{spec.name}.") if isinstance(weights, str) else None
    pretrained = spec.weights.get(tag) if tag else None
    if pretrained is not None and pretrained.min_input_size is not None:
        return pretrained.min_input_size
    return spec.min_input_size


def resolve_input_shape(spec: ModelSpec, input_shape, include_top: bool = True, min_size: int | None = None) -> tuple:
    """Checks a requested (height, width, channels) against what the model can take.

    Height and width may be None (any size, as keras.applications allows), except where the
    classifier flattens a fixed-size feature map and the top is kept. `min_size`: the smallest
    side (default: the spec's; a weights tag may have its own, `min_input_size`).
    """
    min_size = spec.min_input_size if min_size is None else min_size
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
    sides = [side for side in (height, width) if side is not None]
    if any(not isinstance(side, (int, np.integer)) or isinstance(side, bool) for side in sides):
        raise ZooError(f"input_shape must hold whole numbers (or None for any size), got {input_shape}")
    if any(side < min_size for side in sides):
        raise ZooError(
            f"{spec.name} needs inputs of at least {min_size}x{min_size}, "
            f"got {height}x{width}; use a larger --image-size"
        )
    if len(sides) < 2 and include_top and spec.fixed_size_top:
        raise ZooError(f"{spec.name}'s classifier flattens a fixed-size feature map: give input_shape a height and "
                       f"width, or build it with include_top=False to take any size")
    return tuple(None if side is None else int(side) for side in (height, width)) + (int(channels),)
