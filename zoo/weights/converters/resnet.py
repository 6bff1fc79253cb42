"""ResNet-18 to 152 from torchvision's and timm's files (the same key names).

torchvision: ``conv1``, ``bn1``, ``layer{1-4}.{block}.conv{1,2,3}`` / ``bn{1,2,3}``,
``layer{1-4}.0.downsample.{0,1}`` (the projection shortcut), ``fc``. Their nets are the zoo's
`variant="torchvision"`.
"""

from __future__ import annotations

import re

from zoo.errors import ZooError
from zoo.specs.resnet import CONFIGS
from zoo.preprocessing import TORCH
from zoo.weights.converters.mapping import FamilyConverter, conflicting, skip_always
from zoo.weights.sources import SourceWeights

BLOCK_LAYER = re.compile(r"conv(\d)_block(\d+)_(\d)_(conv|bn)")
SOURCE_BLOCK = re.compile(r"layer(\d)\.(\d+)\.")


def identify(source: SourceWeights) -> str:
    """The zoo model a torchvision/timm ResNet file is for, from its blocks per stage."""
    if "layer1.0.conv1.weight" not in source.arrays:
        raise ZooError(f"{source.path} is not a torchvision or timm ResNet file (it has no layer1.0.conv1.weight)")
    blocks = [0, 0, 0, 0]
    for key in source.arrays:
        match = SOURCE_BLOCK.match(key)
        if match:
            stage = int(match.group(1)) - 1
            blocks[stage] = max(blocks[stage], int(match.group(2)) + 1)
    kind = "bottleneck" if "layer1.0.conv3.weight" in source.arrays else "basic"
    for name, (block, blocks_per_stage, preactivation, _) in CONFIGS.items():
        if (block, tuple(blocks), preactivation) == (kind, blocks_per_stage, False):
            return name
    raise ZooError(f"{source.path} is a ResNet with {kind} blocks {tuple(blocks)} per stage, which the zoo does not have")


def options(source: SourceWeights, name: str, given: dict) -> dict:
    found = identify(source)
    if found != name:
        raise ZooError(f"{source.path} holds {found}'s weights, not {name}'s: create {found} with it")
    detected = {"variant": "torchvision"}
    conflicting(detected, given, f"{source.path} (torchvision's layout)")
    return detected


def source_name(layer_name: str, options: dict, source: SourceWeights) -> str:
    if layer_name == "conv1_conv":
        return "conv1"
    if layer_name == "conv1_bn":
        return "bn1"
    if layer_name == "predictions":
        return "fc"
    match = BLOCK_LAYER.fullmatch(layer_name)
    if not match:
        raise ZooError(f"layer {layer_name!r} has no counterpart in torchvision's ResNet")
    stage, block, position, kind = match.groups()
    prefix = f"layer{int(stage) - 1}.{int(block) - 1}"
    if position == "0":  # the projection shortcut
        return f"{prefix}.downsample.{0 if kind == 'conv' else 1}"
    return f"{prefix}.{kind}{position}"


def skip_reason(key: str, model, options: dict) -> str | None:
    if key.startswith("fc.") and "predictions" not in {layer.name for layer in model.layers}:
        return "the classifier, left out with include_top=False"
    return skip_always(key)


CONVERTER = FamilyConverter(
    options=options, source_name=source_name, skip_reason=skip_reason,
    preprocessing=lambda options: TORCH, input_shape=lambda source, options: (224, 224, 3),
)
