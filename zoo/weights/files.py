"""Keras weight files read into arrays per layer, all with nothing executed:

- legacy HDF5 weight files as keras.applications publishes them (``*_tf_dim_ordering_tf_kernels*.h5``)
  and legacy whole-model ``.h5`` files, keyed by layer name (read with h5py);
- the zoo's own ``.keras`` models, loaded with ``safe_mode=True`` (a Lambda layer is refused);
- Keras 3 ``.weights.h5`` files of zoo models, keyed by Keras's saving paths (``conv2d_1``).

Files from anywhere are read within bounds: HDF5 files through `zoo.weights.hdf5` (nothing outside
the file is followed, declared sizes are checked), `.keras` archives member by member
(`zoo.weights.archives`) before Keras opens them.
"""

from __future__ import annotations

import dataclasses
import os
import re
import zipfile

import h5py
import keras
import numpy as np

from zoo.errors import ZooError
from zoo.weights.archives import check_member, member_file, open_archive, read_json_member, read_member
from zoo.weights.hdf5 import child, names_attribute, open_weights, read_array
from zoo.weights.untrusted import MAX_JSON_BYTES, MESSAGE_TEXT_LENGTH, Budget, brief, check_name, describe_value

# zoo.models.common.classifier names the final layer so, as keras.applications does
CLASSIFIER_LAYER = "predictions"
# An entry the zoo adds to a `.keras` archive it imports pretrained weights into (Keras ignores
# entries it does not know): the model's options, the weights' preprocessing and class names.
WEIGHTS_METADATA = "zoo_weights.json"
KERAS_CONFIG, KERAS_WEIGHTS = "config.json", "model.weights.h5"  # members of a `.keras` archive (Keras's names)
# what each entry of a weights record is, as `zoo.weights.pretrained.ResolvedWeights.record` writes it
RECORD_TYPES = {"model": str, "weights": str, "source": (str, type(None)), "options": (dict, type(None)),
                "preprocessing": (dict, type(None)), "class_names": (list, str, type(None))}
PREPROCESSING_ENTRIES = ("name", "mean", "std", "channel_order")  # zoo.preprocessing.Preprocessing's fields


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
    # converted files (zoo.weights.converters): layer name -> the source keys of its arrays, for errors
    source_keys: dict[str, list[str]] | None = None

    @property
    def num_classes(self) -> int | None:
        """The classifier's size, where the file has one (in saving-path files: the last dense layer)."""
        if not self.by_saving_path:
            classifier = CLASSIFIER_LAYER if CLASSIFIER_LAYER in self.layers else None
        else:
            dense = {int(match.group(1) or 0): key for key in self.layers
                     if (match := re.fullmatch(r"dense(?:_(\d+))?", key))}
            classifier = dense[max(dense)] if dense else None
        arrays = self.layers[classifier] if classifier else []
        return int(arrays[0].shape[-1]) if arrays and np.ndim(arrays[0]) else None


def load_model_file(path: str) -> keras.Model:
    """Loads a `.keras` model with safe_mode=True, so the file cannot run code.

    Keras refuses Lambda layers and serialized Python functions in safe mode; only the zoo's
    registered layers and Keras's own can be rebuilt. The archive is checked first
    (`check_keras_archive`), so that Keras never reads a bomb or follows a link out of the file.
    """
    if not str(path).endswith(".keras"):
        raise ZooError(f"{path} is not a .keras model file")
    if not os.path.isfile(path):
        raise ZooError(f"no such file: {path}")
    if not zipfile.is_zipfile(path):
        raise ZooError(f"{path} is not a whole .keras archive (truncated or damaged): copy or save it again")
    check_keras_archive(path)
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - whatever Keras raises on a file, the user gets one line
        raise _keras_refusal(path, error) from None


def check_keras_archive(path: str) -> None:
    """Checks a `.keras` archive before Keras reads it: member names and sizes (JSON members at most
    MAX_JSON_BYTES, all of them within the file's budget), and its weights' HDF5 file as a whole."""
    budget = Budget(path)
    with open_archive(path, "Keras model") as archive:
        for info in archive.infolist():
            check_member(info, path, budget, MAX_JSON_BYTES if info.filename.endswith(".json") else None)
            if info.filename.endswith(".json"):
                read_member(archive, info.filename, path)  # its CRC
        if KERAS_WEIGHTS in archive.namelist():
            with member_file(archive, KERAS_WEIGHTS, path) as member, open_weights(path, member, budget):
                pass


def _keras_reason(message: str) -> str:
    """The first sentence of what Keras says is wrong: where objects failed to load, the first
    one's error rather than Keras's count of them; where a layer could not be rebuilt, the
    innermost error rather than the configs around it."""
    marker = "Example error message for object"
    if marker in message:
        example = message.split(marker, 1)[1]
        message = example.split(":", 1)[-1].split("List of objects that could not be loaded")[0]
    message = message.rsplit("Exception encountered:", 1)[-1]
    sentences = re.split(r"(?<=\.)\s+", " ".join(message.split()))
    reason = sentences[0]
    for sentence in sentences[1:]:  # as many whole sentences as fit in a line ("... must match. variable.shape=...")
        if len(reason) + 1 + len(sentence) > MESSAGE_TEXT_LENGTH:
            break
        reason += " " + sentence
    return brief(reason.rstrip(".")) or "Keras gives no reason"


def _keras_refusal(path: str, error: Exception) -> ZooError:
    """One line for what Keras raised on a file: code refused, another safe-mode refusal, or else."""
    message = str(error)
    if "Lambda" in message or "lambda" in message:
        return ZooError(f"refusing to load {path}: it contains Python code (a Lambda layer or function) that would "
                        f"run on load. Rebuild the model without Lambda layers")
    if "safe_mode" in message or "safe mode" in message:
        return ZooError(f"refusing to load {path}: Keras's safe mode refuses it ({_keras_reason(message)})")
    if isinstance(error, RecursionError):
        return ZooError(f"cannot load {path} as a Keras model: its config nests deeper than any model's does")
    reason = _keras_reason(message) if message.strip() else type(error).__name__
    return ZooError(f"cannot load {path} as a Keras model: {reason}")


def read_keras_metadata(path) -> dict | None:
    """The zoo's record of the weights in a `.keras` archive (WEIGHTS_METADATA), or None; a record
    whose entries are not of the types `zoo import` writes is refused (it comes from a file)."""
    path = os.fspath(path)
    metadata = read_json_member(path, WEIGHTS_METADATA, "weights record")
    if not isinstance(metadata, dict):
        return None
    for key, types in RECORD_TYPES.items():
        if key in metadata and not isinstance(metadata[key], types):
            raise _damaged_record(path, key, metadata[key])
    preprocessing = metadata.get("preprocessing")
    if preprocessing is not None and not set(PREPROCESSING_ENTRIES[:3]) <= set(preprocessing):
        raise _damaged_record(path, "preprocessing", preprocessing)
    for key, value in (preprocessing or {}).items():
        if key in ("mean", "std"):  # a value per channel
            valid = isinstance(value, list) and 0 < len(value) <= 4 and all(
                isinstance(each, (int, float)) and not isinstance(each, bool) for each in value)
        else:
            valid = key in PREPROCESSING_ENTRIES and isinstance(value, str)
        if not valid:
            raise _damaged_record(path, f"preprocessing.{brief(key, 40)}", value)
    names = metadata.get("class_names")
    if isinstance(names, list) and not all(isinstance(each, str) for each in names):
        raise _damaged_record(path, "class_names", names)
    return metadata


def _damaged_record(path: str, key: str, value) -> ZooError:
    return ZooError(f"{path}: its weights record ({WEIGHTS_METADATA}) has {key} = {describe_value(value)}, which "
                    f"`zoo import` never writes: the file is damaged; import the weights again")


def leaf_layers(model):
    """The layers that hold weights, looking inside nested models."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from leaf_layers(layer)
        elif layer.weights:
            yield layer


def _read_keras_model(path: str) -> WeightFile:
    model = load_model_file(path)
    layers = {layer.name: layer.get_weights() for layer in leaf_layers(model)}
    return WeightFile(path, layers, input_shape=tuple(model.input_shape[1:]))


def _read_legacy_h5(group, path: str) -> WeightFile:
    layers = {}
    for name in names_attribute(group, "layer_names", path):
        layer_group = child(group, name, path)
        weight_names = names_attribute(layer_group, "weight_names", path)
        if weight_names:
            layers[name] = [read_array(child(layer_group, weight, path, h5py.Dataset), path) for weight in weight_names]
    return WeightFile(path, layers)


def save_legacy_weights(model, path) -> str:
    """Writes a model's weights as a legacy HDF5 file keyed by layer name, the Keras Applications
    format (`model.load_weights` of Keras 3 reads it back): per layer a group of datasets named
    ``LAYER/VARIABLE``, and the names in ``layer_names`` / ``weight_names`` attributes."""
    with h5py.File(path, "w") as file:
        file.attrs["layer_names"] = [layer.name.encode("utf8") for layer in model.layers]
        file.attrs["backend"] = keras.backend.backend().encode("utf8")
        file.attrs["keras_version"] = keras.__version__.encode("utf8")
        for layer in model.layers:
            group = file.create_group(layer.name)
            names = [f"{layer.name}/{_variable_name(variable)}" for variable in layer.weights]
            group.attrs["weight_names"] = [name.encode("utf8") for name in names]
            for name, value in zip(names, layer.get_weights()):
                group.create_dataset(name, data=value)
    return os.fspath(path)


def _variable_name(variable) -> str:
    """A variable's name with a ``:0`` suffix, as TF 2 Keras wrote them."""
    name = variable.path.split("/")[-1] if hasattr(variable, "path") else variable.name
    return name if name.endswith(":0") else f"{name}:0"


def _read_keras3_h5(group, path: str) -> WeightFile:
    layers = {}
    layers_group = child(group, "layers", path)
    for key in layers_group:
        layer_group = child(layers_group, check_name(key, path, "a layer name"), path)
        if "vars" not in layer_group:
            continue
        variables = child(layer_group, "vars", path)
        indices = list(variables)
        if not all(index.isdigit() and len(index) < 10 for index in indices):
            raise ZooError(f"{path} is not a Keras weights file: layers/{key}/vars holds "
                           f"{brief(', '.join(indices[:5]))}, not numbered variables")
        if indices:
            layers[key] = [read_array(child(variables, index, path, h5py.Dataset), path)
                           for index in sorted(indices, key=int)]
    return WeightFile(path, layers, by_saving_path=True)


def read_weight_file(path: str) -> WeightFile:
    """Reads a `.keras`, Keras 3 `.weights.h5` or legacy `.h5` file into arrays per layer."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ZooError(f"no such weights file: {path}")
    if path.endswith(".keras"):
        return _read_keras_model(path)
    with open_weights(path) as file:
        group = child(file, "model_weights", path) if "model_weights" in file else file
        if "layer_names" in group.attrs or "layer_names0" in group.attrs:
            return _read_legacy_h5(group, path)
        if "layers" in group:
            return _read_keras3_h5(group, path)
    raise ZooError(f"{path} is an HDF5 file without Keras weights")


def _snake_case(name: str) -> str:
    """A class name as Keras's saving paths spell it ("BatchNormalization" -> "batch_normalization")."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _saving_paths(model) -> dict[str, str]:
    """Layer name -> the key Keras 3 stores its weights under (class name in snake case, numbered)."""
    used: dict[str, int] = {}
    paths = {}
    for layer in model.layers:
        base = _snake_case(type(layer).__name__)
        count = used.get(base, -1) + 1
        used[base] = count
        paths[layer.name] = f"{base}_{count}" if count else base
    return paths


def arrays_by_layer_name(weight_file: WeightFile, model) -> dict[str, list[np.ndarray]]:
    """The file's arrays keyed by the model's layer names; unmatched entries keep their own keys."""
    if not weight_file.by_saving_path:
        return weight_file.layers
    name_of = {key: name for name, key in _saving_paths(model).items()}
    return {name_of.get(key, key): arrays for key, arrays in weight_file.layers.items()}
