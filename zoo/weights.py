"""Pretrained weights into zoo models: ImageNet tags, Keras Applications files and the zoo's own files.

    >>> model = zoo.create("resnet50", weights="imagenet")                # keras.applications' weights
    >>> model = zoo.create("resnet50", weights="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    ...                    include_top=False, input_shape=(160, 160, 1))  # any size; gray input
    >>> model = zoo.create("lenet5", weights="run/best.keras", num_classes=3)

Files read, matched to the model layer by layer:
- legacy HDF5 weight files as keras.applications publishes them (``*_tf_dim_ordering_tf_kernels*.h5``)
  and legacy whole-model ``.h5`` files, keyed by layer name (read with h5py: no code runs);
- the zoo's own ``.keras`` models, loaded with ``safe_mode=True`` (a Lambda layer is refused);
- Keras 3 ``.weights.h5`` files of zoo models, keyed by Keras's saving paths (``conv2d_1``).

A model keeps every weight of the file, except that a classifier of another size is re-initialized
and a first convolution for another number of input channels is adapted (as timm does). Anything
else that does not fit raises ZooError naming the first layer and both shapes; weights are only
assigned once every layer has been checked, so no half-loaded model is ever returned.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import tempfile
import urllib.parse

import h5py
import keras
import numpy as np
from keras.src.applications import resnet as keras_resnet
from keras.src.applications import vgg16 as keras_vgg16
from keras.src.applications import vgg19 as keras_vgg19
from keras.src.backend import config as keras_config
from keras.src.legacy.saving.legacy_h5_format import load_attributes_from_hdf5_group, save_weights_to_hdf5_group
from keras.src.utils.file_utils import validate_file
from keras.src.utils.naming import to_snake_case

from zoo import registry
from zoo.errors import ZooError
from zoo.preprocessing import CAFFE, TF_SYMMETRIC
from zoo.registry import ModelSpec, PretrainedWeights

logger = logging.getLogger(__name__)

# zoo.models.common.classifier names the final layer so, as keras.applications does
CLASSIFIER_LAYER = "predictions"
IMAGENET_INPUT_SHAPE = (224, 224, 3)
IMAGENET_CLASSES = 1000


# --- Where keras.applications publishes ImageNet weights -------------------------------------------

def _keras_resnet_files(name: str) -> tuple[str, str, str, str]:
    stem = f"{keras_resnet.BASE_WEIGHTS_PATH}{name}_weights_tf_dim_ordering_tf_kernels"
    top_hash, notop_hash = keras_resnet.WEIGHTS_HASHES[name]
    return f"{stem}.h5", top_hash, f"{stem}_notop.h5", notop_hash


# (top url, top md5, notop url, notop md5); keras.applications passes the VGG hashes to get_file
# inline, so only those four strings are repeated here
_KERAS_FILES = {
    "vgg16": (keras_vgg16.WEIGHTS_PATH, "64373286793e3c8b2b4e3219cbf3544b",
              keras_vgg16.WEIGHTS_PATH_NO_TOP, "6d6bbae143d832006294945121d1f1fc"),
    "vgg19": (keras_vgg19.WEIGHTS_PATH, "cbe5617147190e668d6c5d5026f83318",
              keras_vgg19.WEIGHTS_PATH_NO_TOP, "253f8cb515780f3b799900260a226db6"),
    **{name: _keras_resnet_files(name) for name in
       ("resnet50", "resnet101", "resnet152", "resnet50v2", "resnet101v2", "resnet152v2")},
}
# top-1 / top-5 ImageNet validation accuracy, from the keras.applications documentation
_IMAGENET_ACCURACY = {
    "vgg16": (71.3, 90.1), "vgg19": (71.3, 90.0), "resnet50": (74.9, 92.1), "resnet101": (76.4, 92.8),
    "resnet152": (76.6, 93.1), "resnet50v2": (76.0, 93.0), "resnet101v2": (77.2, 93.8),
    "resnet152v2": (78.0, 94.2),
}


def imagenet_weights(model_name: str) -> dict[str, PretrainedWeights]:
    """A spec's `weights` entry: keras.applications' ImageNet weights, where it publishes them."""
    if model_name not in _KERAS_FILES:
        return {}
    top_url, top_hash, notop_url, notop_hash = _KERAS_FILES[model_name]
    top1, top5 = _IMAGENET_ACCURACY[model_name]
    return {
        "imagenet": PretrainedWeights(
            tag="imagenet",
            description=f"ImageNet-1k weights of keras.applications (top-1 {top1}%, top-5 {top5}%)",
            # the weights carry the convention they were trained with: caffe BGR means for v1, [-1, 1] for v2
            preprocessing=TF_SYMMETRIC if model_name.endswith("v2") else CAFFE,
            input_shape=IMAGENET_INPUT_SHAPE,
            num_classes=IMAGENET_CLASSES,
            top_url=top_url, top_hash=top_hash, notop_url=notop_url, notop_hash=notop_hash,
            class_names="imagenet",
        )
    }


# --- Downloads through the Keras cache ---------------------------------------------------------------

def keras_cache_dir() -> str:
    """The folder keras.utils.get_file keeps its downloads under (files go to its `models/`).

    $KERAS_HOME is read at each call (Keras reads it once, at import), else ~/.keras. It is created
    as Keras does at import, since get_file, like this, falls back to /tmp/.keras when it is not writable.
    """
    home = os.path.expanduser(os.environ.get("KERAS_HOME") or keras_config.keras_home())
    try:
        os.makedirs(home, exist_ok=True)
    except OSError:
        pass  # not ours to create: the fallback below applies
    if not os.access(home, os.W_OK):
        home = os.path.join(tempfile.gettempdir(), ".keras")
    return home


def fetch_keras_file(url: str, file_hash: str | None, what: str) -> str:
    """The local path of a file Keras publishes: from the Keras cache, else downloaded by get_file.

    Raises ZooError, naming the file and the folder to put it in, when it is neither cached nor
    downloadable (offline); and when a cached copy does not match its hash.
    """
    file_name = os.path.basename(urllib.parse.urlsplit(url).path)
    cache_dir = keras_cache_dir()
    cached = os.path.join(cache_dir, "models", file_name)
    if os.path.exists(cached):
        # get_file would delete a mismatching copy and download it again; a user's file gets a word instead
        if file_hash and not validate_file(cached, file_hash):
            raise ZooError(
                f"{cached} is not the expected {what} (its hash is not {file_hash}); delete it to "
                f"download it again, or replace it with the file from {url}"
            )
        return cached
    try:
        return keras.utils.get_file(file_name, url, cache_dir=cache_dir, cache_subdir="models", file_hash=file_hash)
    except Exception as error:  # get_file raises bare Exceptions for network failures
        raise ZooError(
            f"could not download the {what} {file_name} ({error}). Without network, fetch {url} "
            f"elsewhere and put it at {cached} (set KERAS_HOME to use another cache folder)"
        ) from None


def fetch_pretrained(pretrained: PretrainedWeights, include_top: bool) -> str:
    """The local path of a pretrained weights file, with or without the classifier top."""
    url, file_hash = (pretrained.top_url, pretrained.top_hash) if include_top else (
        pretrained.notop_url, pretrained.notop_hash)
    if url is None:
        top = "with" if include_top else "without"
        raise ZooError(f"the {pretrained.tag} weights have no file {top} the classifier top")
    return fetch_keras_file(url, file_hash, f"{pretrained.tag} weights file")


# --- Reading weight files ----------------------------------------------------------------------------

@dataclasses.dataclass
class WeightFile:
    """The arrays of a weights file, per layer, in the file's order.

    ``layers`` is keyed by layer name, except in Keras 3 ``.weights.h5`` files, which store no layer
    names: there the keys are Keras's saving paths (``conv2d_1``) and ``by_saving_path`` is set.
    """

    path: str
    layers: dict[str, list[np.ndarray]]
    by_saving_path: bool = False
    input_shape: tuple[int, int, int] | None = None

    @property
    def num_classes(self) -> int | None:
        """The classifier's size, where the file has one (in saving-path files: the last dense layer)."""
        if not self.by_saving_path:
            classifier = CLASSIFIER_LAYER if CLASSIFIER_LAYER in self.layers else None
        else:
            dense = {int(match.group(1) or 0): key for key in self.layers
                     if (match := re.fullmatch(r"dense(?:_(\d+))?", key))}
            classifier = dense[max(dense)] if dense else None
        return int(self.layers[classifier][0].shape[-1]) if classifier else None


def load_model_file(path: str) -> keras.Model:
    """Loads a `.keras` model with safe_mode=True, so the file cannot run code.

    Keras refuses Lambda layers and serialized Python functions in safe mode; only the zoo's
    registered layers and Keras's own can be rebuilt.
    """
    registry.list_models()  # registers the zoo's custom layers before anything is deserialized
    if not str(path).endswith(".keras"):
        raise ZooError(f"{path} is not a .keras model file")
    if not os.path.isfile(path):
        raise ZooError(f"no such file: {path}")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:
        message = str(error)
        if "safe_mode" in message or "Lambda" in message:
            raise ZooError(
                f"refusing to load {path}: it contains Python code (a Lambda layer or function) that "
                f"would run on load. Rebuild the model without Lambda layers"
            ) from None
        raise ZooError(f"cannot load {path} as a Keras model: {message.splitlines()[0] if message else error!r}") from None


def _leaf_layers(model):
    """The layers that hold weights, looking inside nested models."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        elif layer.weights:
            yield layer


def _read_keras_model(path: str) -> WeightFile:
    model = load_model_file(path)
    layers = {layer.name: layer.get_weights() for layer in _leaf_layers(model)}
    return WeightFile(path, layers, input_shape=tuple(model.input_shape[1:]))


def _read_legacy_h5(group, path: str) -> WeightFile:
    layers = {}
    for name in load_attributes_from_hdf5_group(group, "layer_names"):
        name = name.decode("utf8") if isinstance(name, bytes) else name
        weight_names = load_attributes_from_hdf5_group(group[name], "weight_names")
        if len(weight_names):
            layers[name] = [np.asarray(group[name][weight]) for weight in weight_names]
    return WeightFile(path, layers)


def save_legacy_weights(model, path) -> str:
    """Writes a model's weights as a legacy HDF5 file keyed by layer name, the Keras Applications format."""
    with h5py.File(path, "w") as file:
        save_weights_to_hdf5_group(file, model)
    return os.fspath(path)


def _read_keras3_h5(group, path: str) -> WeightFile:
    layers = {}
    for key, layer_group in group["layers"].items():
        variables = layer_group.get("vars")
        if variables is not None and len(variables):
            layers[key] = [np.asarray(variables[index]) for index in sorted(variables, key=int)]
    return WeightFile(path, layers, by_saving_path=True)


def read_weight_file(path: str) -> WeightFile:
    """Reads a `.keras`, Keras 3 `.weights.h5` or legacy `.h5` file into arrays per layer."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ZooError(f"no such weights file: {path}")
    if path.endswith(".keras"):
        return _read_keras_model(path)
    try:
        with h5py.File(path, "r") as file:
            group = file["model_weights"] if "model_weights" in file else file
            if "layer_names" in group.attrs or "layer_names0" in group.attrs:
                return _read_legacy_h5(group, path)
            if "layers" in group:
                return _read_keras3_h5(group, path)
    except OSError as error:
        raise ZooError(f"{path} is not a weights file (.keras, .weights.h5 or .h5): {error}") from None
    raise ZooError(f"{path} is an HDF5 file without Keras weights")


def _saving_paths(model) -> dict[str, str]:
    """Layer name -> the key Keras 3 stores its weights under (class name in snake case, numbered)."""
    used: dict[str, int] = {}
    paths = {}
    for layer in model.layers:
        base = to_snake_case(type(layer).__name__)
        count = used.get(base, -1) + 1
        used[base] = count
        paths[layer.name] = f"{base}_{count}" if count else base
    return paths


def _arrays_by_layer_name(weight_file: WeightFile, model) -> dict[str, list[np.ndarray]]:
    """The file's arrays keyed by the model's layer names; unmatched entries keep their own keys."""
    if not weight_file.by_saving_path:
        return weight_file.layers
    name_of = {key: name for name, key in _saving_paths(model).items()}
    return {name_of.get(key, key): arrays for key, arrays in weight_file.layers.items()}


# --- Matching a file to a model ----------------------------------------------------------------------

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


def _mismatch(weight_file: WeightFile, model, layer, file_arrays) -> ZooError:
    expected = [tuple(variable.shape) for variable in layer.weights]
    found = [tuple(array.shape) for array in file_arrays]
    if len(expected) == len(found):
        index = next(index for index, (want, have) in enumerate(zip(expected, found)) if want != have)
        detail = (f"its {layer.weights[index].name} has shape {found[index]} in the file and "
                  f"{expected[index]} in the model")
    else:
        detail = f"it has weights of shapes {_shape_text(found)} in the file and {_shape_text(expected)} in the model"
    hint = ""
    if len(expected[0]) == 2:
        hint = "; a dense top fixes the input size: use the weights' input size, or include_top=False"
    return ZooError(f"{weight_file.path} does not fit layer {layer.name!r} of {model.name}: {detail}{hint}")


def plan_assignment(model, weight_file: WeightFile) -> tuple[list[tuple[object, list[np.ndarray]]], list[str]]:
    """Checks every layer of `model` against the file; returns (layer, arrays) to assign, and notes.

    Raises ZooError at the first layer that cannot take the file's weights. Weight-free layers,
    a classifier of another size (left freshly initialized) and a first convolution for another
    number of input channels (adapted) are the only differences allowed; extra layers in the file
    are allowed only when the model has no top and they are dense layers (the file's top).
    """
    arrays_by_name = _arrays_by_layer_name(weight_file, model)
    weighted = list(_leaf_layers(model))
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
        found = [tuple(array.shape) for array in arrays]
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
                f"{weight_file.path} has weights for a layer {name!r} (shapes "
                f"{_shape_text(array.shape for array in arrays_by_name[name])}) that {model.name} lacks: "
                f"it is a file for another architecture"
            )
    if extras:
        notes.append(f"left out the file's top ({', '.join(extras)})")
    return plan, notes


def _assign(model, weight_file: WeightFile) -> list[str]:
    plan, notes = plan_assignment(model, weight_file)
    for layer, arrays in plan:
        layer.set_weights(arrays)
    for note in notes:
        logger.info("%s: %s", model.name, note)
    return notes


def load_weights(model, path) -> list[str]:
    """Loads a weights file into a built zoo model, all or nothing; returns notes on what was adapted."""
    return _assign(model, read_weight_file(path))


def create_with_weights(spec: ModelSpec, weights: str, *, num_classes, input_shape, include_top, pooling, options):
    """Builds `spec`'s model and loads `weights`: a tag of the spec ("imagenet") or a weights file.

    Unset `num_classes` and `input_shape` follow the weights (the tag's metadata, or the file's
    classifier and input); zoo.create routes here whenever weights are given.
    """
    default_classes = default_shape = None
    if weights in spec.weights:
        pretrained = spec.weights[weights]
        path = fetch_pretrained(pretrained, include_top)
        default_classes, default_shape = pretrained.num_classes, pretrained.input_shape
    elif os.path.exists(weights) or os.sep in weights or weights.endswith((".h5", ".keras")):
        path = weights
    else:
        tags = ", ".join(spec.weights) or "none"
        raise ZooError(
            f"{spec.name} has no weights {weights!r} (its weights: {tags}); pass a tag or a path to a "
            f".keras, .weights.h5 or .h5 file"
        )
    weight_file = read_weight_file(path)
    model = registry.build(
        spec,
        num_classes=num_classes or weight_file.num_classes or default_classes,
        input_shape=input_shape or weight_file.input_shape or default_shape,
        include_top=include_top, pooling=pooling, options=options,
    )
    _assign(model, weight_file)
    return model
