"""The conversion every family shares: a source's arrays laid out for a built zoo model.

A family converter says which source name each Keras layer takes its weights from and which source
keys are left out on purpose; `convert` walks the model's layers in order and takes, for each:

- Conv2D: ``PREFIX.weight`` (out, in/groups, kh, kw) -> kernel (kh, kw, in/groups, out), and
  ``PREFIX.bias`` where the layer has a bias;
- BatchNormalization: weight, bias, running_mean, running_var -> gamma, beta, moving mean and
  variance (``num_batches_tracked`` is training bookkeeping, skipped);
- Dense: ``PREFIX.weight`` (out, in) -> (in, out); after a Flatten of an (h, w, c) map the input
  order goes from PyTorch's and Caffe's (c, h, w) to Keras's (h, w, c); a 4-D weight (a fully
  connected layer stored as a convolution, as timm's VGG head is) is the same reordering.

Every source key must be used or skipped on purpose, so a file for another architecture fails on
its first key with no place in the model; shapes are checked when the result is assigned
(`zoo.weights.assign`), which names the source key too. Nothing is assigned here.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import keras
import numpy as np

from zoo.errors import ZooError
from zoo.preprocessing import Preprocessing
from zoo.weights.files import WeightFile
from zoo.weights.sources import SourceWeights

BATCH_NORM_KEYS = ("weight", "bias", "running_mean", "running_var")


@dataclasses.dataclass(frozen=True)
class FamilyConverter:
    """How one family's source files map onto its zoo models.

    Args:
        options: (source, spec name, options the caller gave) -> the family options the file needs;
            raises ZooError when the file is for another model or contradicts a given option.
        source_name: (Keras layer name, options, source) -> the source name holding its weights.
        skip_reason: (source key, model, options) -> why the key is left out, or None if it must be used.
        preprocessing: options -> the pixel convention the weights were trained with.
        input_shape: (source, options) -> the input the weights were trained at, or None.
    """

    options: Callable[[SourceWeights, str, dict], dict]
    source_name: Callable[[str, dict, SourceWeights], str]
    skip_reason: Callable[[str, object, dict], str | None]
    preprocessing: Callable[[dict], Preprocessing]
    input_shape: Callable[[SourceWeights, dict], tuple | None]


def shape_text(array: np.ndarray) -> str:
    return str(tuple(int(side) for side in array.shape))


def conflicting(detected: dict, given: dict, what: str) -> None:
    """Refuses options the caller gave that contradict what the file needs."""
    for key, value in detected.items():
        if key in given and given[key] != value:
            raise ZooError(f"{what} needs {key}={value!r}, not {key}={given[key]!r}: leave {key} out, or pass {value!r}")


class _Arrays:
    """A source's arrays taken by name, each once."""

    def __init__(self, source: SourceWeights, model):
        self.source, self.model = source, model
        self.remaining = dict(source.arrays)

    def take(self, key: str, layer) -> np.ndarray:
        if key not in self.remaining:
            raise ZooError(f"{self.source.path} has no {key} for layer {layer.name!r} of {self.model.name}: it is "
                           f"a file for another architecture")
        return np.asarray(self.remaining.pop(key))


def _dense_kernel(weight: np.ndarray, feature_shape, key: str, layer, path: str) -> np.ndarray:
    if weight.ndim not in (2, 4):
        raise ZooError(f"{path}: {key} has shape {shape_text(weight)}, not that of a fully connected layer")
    outputs = weight.shape[0]
    if weight.ndim == 4:  # a fully connected layer stored as a convolution over the whole map
        return weight.transpose(2, 3, 1, 0).reshape(-1, outputs)
    if feature_shape is None or None in feature_shape or np.prod(feature_shape[:2]) == 1:
        return weight.T
    height, width, channels = (int(side) for side in feature_shape)
    if weight.shape[1] != height * width * channels:
        raise ZooError(
            f"{path}: {key} has shape {shape_text(weight)} but layer {layer.name!r} flattens a "
            f"{height}x{width}x{channels} map ({height * width * channels} values): build the model at the "
            f"input size the weights were trained at, or with include_top=False"
        )
    return weight.reshape(outputs, channels, height, width).transpose(2, 3, 1, 0).reshape(-1, outputs)


def _layer_arrays(layer, prefix: str, arrays: _Arrays, feature_shape) -> tuple[list[np.ndarray], list[str]]:
    if isinstance(layer, keras.layers.BatchNormalization):
        keys = [f"{prefix}.{name}" for name in BATCH_NORM_KEYS]
        return [arrays.take(key, layer) for key in keys], keys
    keys = [f"{prefix}.weight"] + ([f"{prefix}.bias"] if getattr(layer, "use_bias", False) else [])
    weight = arrays.take(keys[0], layer)
    if isinstance(layer, keras.layers.Conv2D):
        if weight.ndim != 4:
            raise ZooError(f"{arrays.source.path}: {keys[0]} has shape {shape_text(weight)}, not that of a "
                           f"convolution, for layer {layer.name!r} of {arrays.model.name}")
        kernel = weight.transpose(2, 3, 1, 0)
    elif isinstance(layer, keras.layers.Dense):
        kernel = _dense_kernel(weight, feature_shape, keys[0], layer, arrays.source.path)
    else:
        raise ZooError(f"no conversion for {type(layer).__name__} layer {layer.name!r}")
    return [kernel] + [arrays.take(key, layer).reshape(-1) for key in keys[1:]], keys


def convert(model, source: SourceWeights, converter: FamilyConverter, options: dict) -> WeightFile:
    """The source's arrays per layer of `model`, converted to Keras layouts, with the source keys each
    came from. Raises ZooError at the first layer without its key and the first key left over."""
    arrays = _Arrays(source, model)
    layers, origins = {}, {}
    feature_shape = None
    for layer in model.layers:
        if isinstance(layer, keras.layers.Flatten):
            feature_shape = tuple(layer.input.shape[1:])
        if not layer.weights:
            continue
        prefix = converter.source_name(layer.name, options, source)
        layers[layer.name], origins[layer.name] = _layer_arrays(layer, prefix, arrays, feature_shape)
        if isinstance(layer, keras.layers.Dense):
            feature_shape = None
    for key, array in arrays.remaining.items():
        if converter.skip_reason(key, model, options) is None:
            raise ZooError(
                f"{source.path} has {key} (shape {shape_text(array)}), which has no place in {model.name}: it is a "
                f"file for another architecture"
            )
    return WeightFile(source.path, layers, source_keys=origins)


def skip_always(key: str) -> str | None:
    """Source keys no zoo layer holds."""
    if key.endswith("num_batches_tracked"):
        return "BatchNorm's step counter"
    return None
