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
from zoo.weights.archives import open_archive
from zoo.weights.caffe import CaffeLayer, caffe_arrays, read_caffe_layers
from zoo.weights.pytorch import looks_like_legacy_pickle, read_pytorch_checkpoint
from zoo.weights.untrusted import MAX_JSON_BYTES, brief, check_name, describe_value, reading

PYTORCH, SAFETENSORS, CAFFE, KERAS_MODEL, HDF5 = "pytorch", "safetensors", "caffe", "keras", "hdf5"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"
# safetensors' dtypes that numpy lacks (safetensors.numpy cannot make arrays of them)
NON_NUMPY_SAFETENSORS_DTYPES = ("BF16", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F6_E2M3",
                                "F6_E3M2", "F4")
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


def _safetensors_header_size(head: bytes) -> int | None:
    """The header length a safetensors file starts with, where the JSON header follows it."""
    return struct.unpack("<Q", head[:8])[0] if len(head) >= 10 and head[8:9] == b"{" else None


def kind_of(path: str) -> str:
    """The format of a weights file from its first bytes: pytorch, safetensors, caffe, keras or hdf5."""
    with reading(path, "weights file"):
        with open(path, "rb") as file:
            head = file.read(16)
        size = os.path.getsize(path)
        if head.startswith(HDF5_SIGNATURE):
            return HDF5
        if zipfile.is_zipfile(path):
            with open_archive(path, "weights file") as archive:
                names = archive.namelist()
            if "config.json" in names and any(name.endswith(".weights.h5") for name in names):
                return KERAS_MODEL
            if any(name.endswith("data.pkl") for name in names):
                return PYTORCH
            raise ZooError(f"{path} is a zip archive but neither a .keras model nor a PyTorch checkpoint")
        if head.startswith(ZIP_SIGNATURE) and not str(path).endswith(".keras"):
            raise ZooError(f"{path} starts as a zip archive (a .keras model or PyTorch checkpoint) but is truncated or "
                           f"damaged: download or copy it again")
        header_size = _safetensors_header_size(head)
        if header_size is not None and 2 <= header_size <= size - 8:
            return SAFETENSORS
        if header_size is not None and head[9:10] == b'"':
            raise ZooError(f"{path} is a truncated or damaged safetensors file: its first 8 bytes declare a header of "
                           f"{header_size:,} bytes in a {size:,}-byte file")
        if str(path).endswith(".safetensors"):
            raise ZooError(f"{path} is not a safetensors file: it does not start with a header's length and a JSON "
                           f"table (a truncated or damaged download?)")
        if looks_like_legacy_pickle(head):
            return PYTORCH
        if str(path).endswith(".keras"):
            raise ZooError(f"{path} is not a whole .keras archive (truncated or damaged): copy or save it again")
        return CAFFE  # the last guess: read_caffe_layers says so when the bytes are not a Caffe model


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file; its header is checked first (size, JSON, dtypes numpy has)
    and then read by safetensors itself, which checks the offsets against the file."""
    with open(path, "rb") as file:
        header_size = struct.unpack("<Q", file.read(8))[0]
        if header_size > MAX_JSON_BYTES:
            raise ZooError(f"refusing to read {path}: its header declares {header_size:,} bytes, more than the "
                           f"{MAX_JSON_BYTES:,} a safetensors header ever needs")
        try:
            header = json.loads(file.read(header_size))
        except RecursionError:
            raise ZooError(f"{path} is not a readable safetensors file: its header nests too deep") from None
        except ValueError as error:
            raise ZooError(f"{path} is not a readable safetensors file: its header is not JSON ({brief(error)})") from None
    if not isinstance(header, dict):
        raise ZooError(f"{path} is not a readable safetensors file: its header is {describe_value(header)}, not a table")
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        check_name(key, path, "a tensor name")
        dtype = entry.get("dtype") if isinstance(entry, dict) else None
        if dtype in NON_NUMPY_SAFETENSORS_DTYPES:
            raise ZooError(f"{path}: its tensor {key} is {dtype}, which numpy cannot represent; save the weights as "
                           f"float32 (tensor.float()) to load them")
    try:
        return dict(safetensors.numpy.load_file(path))
    except (safetensors.SafetensorError, ValueError, TypeError, KeyError, AttributeError) as error:
        raise ZooError(f"{path} is not a readable safetensors file ({brief(error)})") from None


def read_source_weights(path: str) -> SourceWeights:
    """Reads a PyTorch, safetensors or Caffe file, detected from its content."""
    kind = kind_of(path)
    if kind == PYTORCH:
        source = SourceWeights(path, PYTORCH, read_pytorch_checkpoint(path))
    elif kind == SAFETENSORS:
        with reading(path, "safetensors file"):
            source = SourceWeights(path, SAFETENSORS, _read_safetensors(path))
    elif kind == CAFFE:
        try:
            layers = read_caffe_layers(path)
        except ZooError:
            if str(path).endswith(".caffemodel"):
                raise
            raise ZooError(f"{path} is not a weights file: give a .keras model, Keras .weights.h5 or .h5 weights, "
                           f"a PyTorch checkpoint, a safetensors file or a Caffe .caffemodel") from None
        source = SourceWeights(path, CAFFE, caffe_arrays(layers), layers)
    else:
        raise ZooError(f"{path} is a Keras file, not a PyTorch, safetensors or Caffe one")
    for name in [*source.arrays, *(layer.name for layer in source.caffe_layers)]:
        check_name(name, path, "a tensor or layer name")
    return source
