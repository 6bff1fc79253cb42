"""Matching a weight file to a built model: every layer checked before any weight is assigned.

A model keeps every weight of the file, except that a classifier of another size is re-initialized
and a first convolution for another number of input channels is adapted (as timm does). Anything
else that does not fit raises ZooError naming the first layer and both shapes (or, for integer or
boolean arrays where float weights belong, the key and its dtype); weights are only assigned once
every layer has been checked, so no half-loaded model is ever returned.
"""

from __future__ import annotations

import logging

import keras
import numpy as np

from zoo.errors import ZooError
from zoo.weights.files import CLASSIFIER_LAYER, WeightFile, arrays_by_layer_name, leaf_layers, read_weight_file

logger = logging.getLogger(__name__)


def adapt_input_conv(kernel: np.ndarray, channels: int) -> np.ndarray:
    """A first-convolution kernel (h, w, in, out) for `channels` input channels, as timm does.

    For one channel the RGB filters are summed (a gray image then gives the response its RGB
    copy would); otherwise the filters are tiled and scaled by in/channels, which keeps the response
    to a gray image (1 -> 3: the gray filter repeated, divided by 3).
    """
    source_channels = kernel.shape[2]
    if channels == source_channels:
        return kernel
    if channels == 1:
        return kernel.sum(axis=2, keepdims=True)
    repeats = -(-channels // source_channels)
    tiled = np.tile(kernel, (1, 1, repeats, 1))[:, :, :channels, :]
    return (tiled * (source_channels / channels)).astype(kernel.dtype)


def _shape_text(shapes) -> str:
    return ", ".join(str(tuple(shape)) for shape in shapes) or "none"


def _source_key(weight_file: WeightFile, layer_name: str, index: int = 0) -> str | None:
    """The key an array converted from another library's file came from, else None."""
    keys = (weight_file.source_keys or {}).get(layer_name)
    return keys[index] if keys and index < len(keys) else None


def _origin(weight_file: WeightFile, layer_name: str, index: int = 0) -> str:
    """ " (from KEY)" for arrays converted from another library's file, else nothing."""
    key = _source_key(weight_file, layer_name, index)
    return f" (from {key})" if key else ""


def _mismatch(weight_file: WeightFile, model, layer, file_arrays) -> ZooError:
    expected = [tuple(variable.shape) for variable in layer.weights]
    found = [tuple(array.shape) for array in file_arrays]
    if len(expected) == len(found):
        index = next(index for index, (want, have) in enumerate(zip(expected, found)) if want != have)
        origin = _origin(weight_file, layer.name, index)
        detail = (f"its {layer.weights[index].name} has shape {found[index]} in the file{origin} and "
                  f"{expected[index]} in the model")
    else:
        detail = f"it has weights of shapes {_shape_text(found)} in the file and {_shape_text(expected)} in the model"
    hint = ""
    if isinstance(layer, keras.layers.GroupNormalization):
        hint = ("; the file was trained with another normalization: group normalization (norm='group') has no "
                "moving statistics, so build the model with norm='batch' or 'frozen' for these weights")
    elif len(expected[0]) == 2:
        hint = "; a dense top fixes the input size: use the weights' input size, or include_top=False"
    return ZooError(f"{weight_file.path} does not fit layer {layer.name!r} of {model.name}: {detail}{hint}")


def _check_dtypes(weight_file: WeightFile, model, layer, file_arrays) -> None:
    """Refuses integer and boolean arrays where the layer holds floats: cast to float32 they would
    load without a word and the model would output nonsense (an int8 state dict gives NaN)."""
    for index, (variable, array) in enumerate(zip(layer.weights, file_arrays)):
        dtype = np.asarray(array).dtype
        if keras.backend.is_float_dtype(variable.dtype) and dtype.kind != "f":
            key = _source_key(weight_file, layer.name, index) or f"{layer.name}/{variable.name}"
            raise ZooError(
                f"{weight_file.path}: {key} holds {dtype} values where layer {layer.name!r} of {model.name} takes "
                f"float weights (its {variable.name}); cast to floats they would make a model that outputs nonsense: "
                f"save the weights as floats (in PyTorch, tensor.float()) and load that file")


def plan_assignment(model, weight_file: WeightFile) -> tuple[list[tuple[object, list[np.ndarray]]], list[str]]:
    """Checks every layer of `model` against the file; returns (layer, arrays) to assign, and notes.

    Raises ZooError at the first layer that cannot take the file's weights. Weight-free layers,
    a classifier of another size (left freshly initialized) and a first convolution for another
    number of input channels (adapted) are the only differences allowed; extra layers in the file
    are allowed only when the model has no top and they are dense layers (the file's top).
    """
    arrays_by_name = arrays_by_layer_name(weight_file, model)
    weighted = list(leaf_layers(model))
    names = {layer.name for layer in weighted}
    has_top = CLASSIFIER_LAYER in names
    plan, notes = [], []
    for position, layer in enumerate(weighted):
        expected = [tuple(variable.shape) for variable in layer.weights]
        arrays = arrays_by_name.get(layer.name)
        if arrays is None:
            if layer.name == CLASSIFIER_LAYER:
                notes.append(f"{CLASSIFIER_LAYER}: not in the file, randomly initialized")
                continue
            hint = " or one without the classifier top (use include_top=False)" if has_top else ""
            raise ZooError(
                f"{weight_file.path} has no weights for layer {layer.name!r} of {model.name}: it is a "
                f"file for another architecture{hint}"
            )
        _check_dtypes(weight_file, model, layer, arrays)
        found = [tuple(np.shape(array)) for array in arrays]
        if found == expected:
            plan.append((layer, arrays))
        elif (position == 0 and len(found) == len(expected) and len(found[0]) == 4
              and found[0][:2] + found[0][3:] == expected[0][:2] + expected[0][3:] and found[1:] == expected[1:]):
            plan.append((layer, [adapt_input_conv(arrays[0], expected[0][2]), *arrays[1:]]))
            notes.append(f"{layer.name}: filters adapted from {found[0][2]} to {expected[0][2]} input channels")
        elif (layer.name == CLASSIFIER_LAYER and len(found) == len(expected)
              and found[0][:-1] == expected[0][:-1]):
            notes.append(f"{layer.name}: re-initialized for {expected[0][-1]} classes (the file has {found[0][-1]})")
        else:
            raise _mismatch(weight_file, model, layer, arrays)
    extras = [name for name, arrays in arrays_by_name.items() if name not in names]
    for name in extras:
        if has_top or arrays_by_name[name][0].ndim != 2:
            raise ZooError(
                f"{weight_file.path} has weights for a layer {name!r}{_origin(weight_file, name)} (shapes "
                f"{_shape_text(array.shape for array in arrays_by_name[name])}) that {model.name} lacks: "
                f"it is a file for another architecture"
            )
    if extras:
        notes.append(f"left out the file's top ({', '.join(extras)})")
    return plan, notes


def assign(model, weight_file: WeightFile) -> list[str]:
    plan, notes = plan_assignment(model, weight_file)
    for layer, arrays in plan:
        layer.set_weights(arrays)
    for note in notes:
        logger.info("%s: %s", model.name, note)
    return notes


def load_weights(model, path) -> list[str]:
    """Loads a weights file into a built zoo model, all or nothing; returns notes on what was adapted."""
    return assign(model, read_weight_file(path))
