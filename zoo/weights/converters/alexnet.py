"""AlexNet from BVLC's Caffe models (bvlc_alexnet, bvlc_reference_caffenet) and torchvision's file.

Caffe: ``conv1`` ... ``conv5``, ``fc6``, ``fc7``, ``fc8``; both nets have the same blobs, so the
order of the weight-free layers in the file tells them apart (CaffeNet pools before its LRNs).
torchvision: ``features.{0,3,6,8,10}`` and ``classifier.{1,4,6}`` ("one weird trick" net).
"""

from __future__ import annotations

from zoo.errors import ZooError
from zoo.preprocessing import CAFFE_BVLC_ALEXNET, TORCH
from zoo.weights.converters.mapping import FamilyConverter, conflicting, skip_always
from zoo.weights.sources import CAFFE, SourceWeights

CAFFE_NAMES = {**{f"conv{index}": f"conv{index}" for index in range(1, 6)}, "fc6": "fc6", "fc7": "fc7",
               "predictions": "fc8"}
TORCHVISION_NAMES = {"conv1": "features.0", "conv2": "features.3", "conv3": "features.6", "conv4": "features.8",
                     "conv5": "features.10", "fc6": "classifier.1", "fc7": "classifier.4",
                     "predictions": "classifier.6"}
TOP_SOURCE_NAMES = {"fc6", "fc7", "fc8", "classifier.1", "classifier.4", "classifier.6"}


def _caffe_variant(source: SourceWeights, given: dict) -> str:
    """bvlc (LRN before each pool) or caffenet (pool before LRN), from the order of the layers."""
    kinds = [kind for _, kind in source.layer_types() if kind in ("LRN", "Pooling")]
    if kinds:
        return "caffenet" if kinds[0] == "Pooling" else "bvlc"
    if given.get("variant") in ("bvlc", "caffenet"):
        return given["variant"]
    raise ZooError(f"{source.path} keeps only the layers with weights, so it does not say whether it is BVLC's "
                   f"AlexNet or CaffeNet: pass variant='bvlc' or variant='caffenet'")


def options(source: SourceWeights, name: str, given: dict) -> dict:
    arrays = source.arrays
    if source.format == CAFFE and "conv1.weight" in arrays:
        detected = {"variant": _caffe_variant(source, given),
                    # towers: conv2 sees half of conv1's 96 channels per group
                    "towers": 2 if arrays["conv2.weight"].shape[1] * 2 == arrays["conv1.weight"].shape[0] else 1}
    elif "features.0.weight" in arrays and "features.10.weight" in arrays:
        detected = {"variant": "torchvision", "towers": 1}
    else:
        raise ZooError(f"{source.path} is neither a BVLC Caffe AlexNet nor torchvision's alexnet file")
    conflicting(detected, given, f"{source.path} ({detected['variant']}'s net)")
    return detected


def source_name(layer_name: str, options: dict, source: SourceWeights) -> str:
    names = TORCHVISION_NAMES if options["variant"] == "torchvision" else CAFFE_NAMES
    if layer_name not in names:
        raise ZooError(f"layer {layer_name!r} has no counterpart in the {options['variant']} AlexNet")
    return names[layer_name]


def skip_reason(key: str, model, options: dict) -> str | None:
    if key.rsplit(".", 1)[0] in TOP_SOURCE_NAMES and "predictions" not in {layer.name for layer in model.layers}:
        return "the fully connected top, left out with include_top=False"
    return skip_always(key)


CONVERTER = FamilyConverter(
    options=options, source_name=source_name, skip_reason=skip_reason,
    preprocessing=lambda options: TORCH if options["variant"] == "torchvision" else CAFFE_BVLC_ALEXNET,
    input_shape=lambda source, options: (224, 224, 3) if options["variant"] == "torchvision" else (227, 227, 3),
)
