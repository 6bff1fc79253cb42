"""Converters from other libraries' weight files to the zoo's models, one module per family.

`convert_source(spec, source, model, options)` lays out a `SourceWeights` for a built model;
`source_options(spec, source, given)` are the family options (the variant) the file needs.
"""

from __future__ import annotations

from zoo.errors import ZooError
from zoo.weights.converters import alexnet, googlenet, resnet, vgg
from zoo.weights.converters.mapping import FamilyConverter, convert
from zoo.weights.files import WeightFile
from zoo.weights.sources import SourceWeights

CONVERTERS: dict[str, FamilyConverter] = {
    "alexnet": alexnet.CONVERTER, "googlenet": googlenet.CONVERTER, "resnet": resnet.CONVERTER, "vgg": vgg.CONVERTER,
}


def converter_for(spec) -> FamilyConverter:
    if spec.family not in CONVERTERS:
        families = ", ".join(sorted(CONVERTERS))
        raise ZooError(f"{spec.name} cannot load PyTorch, safetensors or Caffe files: only the {families} "
                       f"families have converters")
    return CONVERTERS[spec.family]


def source_options(spec, source: SourceWeights, given: dict) -> dict:
    """The family options `source` needs (e.g. {"variant": "torchvision"}); ZooError if it is a file
    for another model or contradicts an option in `given`."""
    return converter_for(spec).options(source, spec.name, given)


def convert_source(spec, source: SourceWeights, model, options: dict) -> WeightFile:
    """The source's arrays laid out for `model` (built with `options`), not yet assigned."""
    return convert(model, source, converter_for(spec), options)


__all__ = ["CONVERTERS", "converter_for", "convert_source", "source_options"]
