"""Weight files of other libraries, recognized by their content whatever their name, read into
named numpy arrays: PyTorch checkpoints, safetensors and Caffe models.

Keras's own formats (`.keras`, `.weights.h5`, legacy `.h5`) are `zoo.weights.files`'s; `kind_of`
tells them apart from these.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
import zipfile

import numpy as np
import safetensors
import safetensors.numpy

from zoo.errors import ZooError
from zoo.weights.caffe import CaffeLayer, caffe_arrays, read_caffe_layers
from zoo.weights.pytorch import looks_like_legacy_pickle, read_pytorch_checkpoint

PYTORCH, SAFETENSORS, CAFFE, KERAS_MODEL, HDF5 = "pytorch", "safetensors", "caffe", "keras", "hdf5"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
SOURCE_FORMATS = (PYTORCH, SAFETENSORS, CAFFE)


@dataclasses.dataclass
class SourceWeights:
    """The arrays of a PyTorch, safetensors or Caffe file, by the source's own names.

    Caffe blobs are named LAYER.weight and LAYER.bias like PyTorch's; `caffe_layers` keeps every
    Caffe layer in file order (the weight-free ones too: their order tells CaffeNet from AlexNet).
    """

    path: str
    format: str
    arrays: dict[str, np.ndarray]
    caffe_layers: list[CaffeLayer] = dataclasses.field(default_factory=list)

    def layer_types(self) -> list[tuple[str, str]]:
        return [(layer.name, layer.type) for layer in self.caffe_layers]


def _is_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    header_size = struct.unpack("<Q", head[:8])[0]
    return 2 <= header_size <= size - 8 and head[8:9] == b"{"


def kind_of(path: str) -> str:
    """The format of a weights file from its first bytes: pytorch, safetensors, caffe, keras or hdf5."""
    with open(path, "rb") as file:
        head = file.read(16)
    if head.startswith(HDF5_SIGNATURE):
        return HDF5
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if "config.json" in names and any(name.endswith(".weights.h5") for name in names):
            return KERAS_MODEL
        if any(name.endswith("data.pkl") for name in names):
            return PYTORCH
        raise ZooError(f"{path} is a zip archive but neither a .keras model nor a PyTorch checkpoint")
    if _is_safetensors(head, os.path.getsize(path)):
        return SAFETENSORS
    if looks_like_legacy_pickle(head):
        return PYTORCH
    return CAFFE  # the last guess: read_caffe_layers says so when the bytes are not a Caffe model


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
    try:
        return dict(safetensors.numpy.load_file(path))
    except KeyError as error:  # a dtype numpy lacks
        raise ZooError(f"{path} holds {error.args[0]} tensors, which numpy cannot represent; save it as "
                       f"float32 (tensor.float()) to load it") from None
    except (safetensors.SafetensorError, ValueError, json.JSONDecodeError) as error:
        raise ZooError(f"{path} is not a readable safetensors file ({error})") from None


def read_source_weights(path: str) -> SourceWeights:
    """Reads a PyTorch, safetensors or Caffe file, detected from its content."""
    kind = kind_of(path)
    if kind == PYTORCH:
        return SourceWeights(path, PYTORCH, read_pytorch_checkpoint(path))
    if kind == SAFETENSORS:
        return SourceWeights(path, SAFETENSORS, _read_safetensors(path))
    if kind == CAFFE:
        layers = read_caffe_layers(path)
        return SourceWeights(path, CAFFE, caffe_arrays(layers), layers)
    raise ZooError(f"{path} is a Keras file, not a PyTorch, safetensors or Caffe one")
