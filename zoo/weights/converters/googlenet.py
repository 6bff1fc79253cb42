"""GoogLeNet from BVLC's Caffe model (bvlc_googlenet) and torchvision's file.

Caffe: ``conv1/7x7_s2``, ``conv2/3x3_reduce``, ``conv2/3x3``, ``inception_3a/{1x1, 3x3_reduce, 3x3,
5x5_reduce, 5x5, pool_proj}`` ..., ``loss3/classifier``, and the auxiliary heads ``loss{1,2}/{conv,
fc, classifier}``. torchvision: ``conv{1,2,3}.{conv,bn}``, ``inception3a.branch1``,
``branch2.{0,1}``, ``branch3.{0,1}``, ``branch4.1`` (each ``.conv`` and ``.bn``), ``fc``; its
auxiliary heads ``aux1``/``aux2`` were not trained with the released weights, so they are skipped
(and a model with auxiliary heads is refused).
"""

from __future__ import annotations

import re

from zoo.errors import ZooError
from zoo.preprocessing import CAFFE_BVLC_GOOGLENET, TF_SYMMETRIC
from zoo.weights.converters.mapping import FamilyConverter, conflicting, skip_always
from zoo.weights.sources import CAFFE, SourceWeights

INCEPTION_LAYER = re.compile(r"inception(\d[a-e])_(1x1|3x3_reduce|3x3|5x5_reduce|5x5|pool_proj)(_bn)?")
AUXILIARY_LAYER = re.compile(r"aux(\d)_(conv|fc|predictions)(_bn)?")
TORCHVISION_BRANCHES = {"1x1": "branch1", "3x3_reduce": "branch2.0", "3x3": "branch2.1",
                        "5x5_reduce": "branch3.0", "5x5": "branch3.1", "pool_proj": "branch4.1"}
TORCHVISION_STEM = {"conv1": "conv1", "conv2_reduce": "conv2", "conv2": "conv3"}
CAFFE_STEM = {"conv1": "conv1/7x7_s2", "conv2_reduce": "conv2/3x3_reduce", "conv2": "conv2/3x3",
              "predictions": "loss3/classifier"}
CAFFE_AUXILIARY = {"conv": "conv", "fc": "fc", "predictions": "classifier"}


def options(source: SourceWeights, name: str, given: dict) -> dict:
    if source.format == CAFFE and "conv1/7x7_s2.weight" in source.arrays:
        detected = {"variant": "bvlc"}
    elif "conv1.conv.weight" in source.arrays and "inception3a.branch1.conv.weight" in source.arrays:
        detected = {"variant": "torchvision"}
        if given.get("auxiliary"):
            raise ZooError(f"{source.path}: torchvision's GoogLeNet weights have no trained auxiliary heads; "
                           f"build it with auxiliary=False")
    else:
        raise ZooError(f"{source.path} is neither BVLC's Caffe GoogLeNet nor torchvision's googlenet file")
    conflicting(detected, given, f"{source.path} ({detected['variant']}'s net)")
    return detected


def _torchvision_name(layer_name: str) -> str:
    base, batch_norm = (layer_name[:-3], True) if layer_name.endswith("_bn") else (layer_name, False)
    if layer_name == "predictions":
        return "fc"
    if base in TORCHVISION_STEM:
        module = TORCHVISION_STEM[base]
    elif match := INCEPTION_LAYER.fullmatch(base):
        module = f"inception{match.group(1)}.{TORCHVISION_BRANCHES[match.group(2)]}"
    else:
        raise ZooError(f"layer {layer_name!r} has no counterpart in torchvision's GoogLeNet")
    return f"{module}.{'bn' if batch_norm else 'conv'}"


def _caffe_name(layer_name: str) -> str:
    if layer_name in CAFFE_STEM:
        return CAFFE_STEM[layer_name]
    if match := INCEPTION_LAYER.fullmatch(layer_name):
        return f"inception_{match.group(1)}/{match.group(2)}"
    if match := AUXILIARY_LAYER.fullmatch(layer_name):
        return f"loss{match.group(1)}/{CAFFE_AUXILIARY[match.group(2)]}"
    raise ZooError(f"layer {layer_name!r} has no counterpart in BVLC's GoogLeNet")


def source_name(layer_name: str, options: dict, source: SourceWeights) -> str:
    return _torchvision_name(layer_name) if options["variant"] == "torchvision" else _caffe_name(layer_name)


def skip_reason(key: str, model, options: dict) -> str | None:
    names = {layer.name for layer in model.layers}
    if key.startswith(("aux1.", "aux2.")):
        return "torchvision's auxiliary heads, not trained in its release"
    if key.startswith(("loss1/", "loss2/")) and "aux1_fc" not in names:
        return "the auxiliary heads, used only in training (build with auxiliary=True to keep them)"
    if key.startswith(("fc.", "loss3/classifier.")) and "predictions" not in names:
        return "the classifier, left out with include_top=False"
    return skip_always(key)


CONVERTER = FamilyConverter(
    options=options, source_name=source_name, skip_reason=skip_reason,
    preprocessing=lambda options: TF_SYMMETRIC if options["variant"] == "torchvision" else CAFFE_BVLC_GOOGLENET,
    input_shape=lambda source, options: (224, 224, 3),
)
