"""VGG 11-19, with and without BatchNorm, from torchvision's files and timm's `tv_in1k` safetensors.

torchvision: ``features.{i}`` (the convolutions, each followed at i+1 by its BatchNorm in the
`_bn` nets), ``classifier.{0,3,6}``. timm stores the same weights with the first two fully
connected layers as convolutions: ``pre_logits.fc1`` (4096, 512, 7, 7), ``pre_logits.fc2``
(4096, 4096, 1, 1), and the classifier as ``head.fc``.
"""

from __future__ import annotations

import math
import re

from zoo.errors import ZooError
from zoo.specs.vgg import CONFIGS
from zoo.preprocessing import TORCH
from zoo.weights.converters.mapping import FamilyConverter, conflicting, skip_always
from zoo.weights.sources import SourceWeights

TORCH_BN_EPSILON = 1e-5
TOP = {"torchvision": ("classifier.0", "classifier.3", "classifier.6"),
       "timm": ("pre_logits.fc1", "pre_logits.fc2", "head.fc")}
FEATURE_KEY = re.compile(r"features\.(\d+)\.weight")


def _layout(source: SourceWeights) -> str:
    return "timm" if "pre_logits.fc1.weight" in source.arrays else "torchvision"


def identify(source: SourceWeights) -> str:
    """The zoo model a VGG file is for: convolutions per block from the gaps between their indices
    (conv, [BatchNorm,] ReLU within a block; one more index, the pooling, between blocks)."""
    convolutions = sorted(int(match.group(1)) for key, array in source.arrays.items()
                          if (match := FEATURE_KEY.fullmatch(key)) and array.ndim == 4)
    if not convolutions:
        raise ZooError(f"{source.path} is not a torchvision or timm VGG file (it has no features.N convolutions)")
    batch_norm = f"features.{convolutions[0] + 1}.running_mean" in source.arrays
    step = 3 if batch_norm else 2
    blocks = [1]
    for previous, current in zip(convolutions, convolutions[1:]):
        if current - previous == step:
            blocks[-1] += 1
        else:
            blocks.append(1)
    for config, per_block in CONFIGS.items():
        if tuple(blocks) == per_block:
            return f"{config}_bn" if batch_norm else config
    raise ZooError(f"{source.path} is a VGG with {tuple(blocks)} convolutions per block, which the zoo does not have")


def options(source: SourceWeights, name: str, given: dict) -> dict:
    found = identify(source)
    if found != name:
        raise ZooError(f"{source.path} holds {found}'s weights, not {name}'s: create {found} with it")
    detected = {"batch_norm_epsilon": TORCH_BN_EPSILON} if found.endswith("_bn") else {}
    conflicting(detected, given, f"{source.path} (PyTorch's BatchNorm)")
    return detected


def _feature_names(config: str, batch_norm: bool) -> dict[str, str]:
    """Keras layer name -> torchvision's `features` index, walking conv, [BN,] ReLU ... pool."""
    names, index = {}, 0
    for block, convolutions in enumerate(CONFIGS[config], start=1):
        for position in range(1, convolutions + 1):
            names[f"block{block}_conv{position}"] = f"features.{index}"
            index += 1
            if batch_norm:
                names[f"block{block}_bn{position}"] = f"features.{index}"
                index += 1
            index += 1  # ReLU
        index += 1  # max pool
    return names


def source_name(layer_name: str, options: dict, source: SourceWeights) -> str:
    top = dict(zip(("fc1", "fc2", "predictions"), TOP[_layout(source)]))
    if layer_name in top:
        return top[layer_name]
    config = identify(source)
    names = _feature_names(config.removesuffix("_bn"), config.endswith("_bn"))
    if layer_name not in names:
        raise ZooError(f"layer {layer_name!r} has no counterpart in torchvision's {config}")
    return names[layer_name]


def skip_reason(key: str, model, options: dict) -> str | None:
    tops = tuple(f"{prefix}." for layout in TOP.values() for prefix in layout)
    if key.startswith(tops) and "predictions" not in {layer.name for layer in model.layers}:
        return "the fully connected top, left out with include_top=False"
    return skip_always(key)


def input_shape(source: SourceWeights, options: dict) -> tuple | None:
    """The input whose 512-channel map after five 2x2 pools fills the first fully connected layer."""
    weight = source.arrays.get(f"{TOP[_layout(source)][0]}.weight")
    if weight is None:
        return None
    cells = weight.shape[-1] * weight.shape[-2] if weight.ndim == 4 else weight.shape[1] // 512
    side = math.isqrt(int(cells))
    return (32 * side, 32 * side, 3) if side * side == cells else None


CONVERTER = FamilyConverter(
    options=options, source_name=source_name, skip_reason=skip_reason,
    preprocessing=lambda options: TORCH, input_shape=input_shape,
)
