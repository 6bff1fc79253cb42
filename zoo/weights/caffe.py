"""Caffe `.caffemodel` files read into numpy arrays without Caffe, from the protobuf wire format.

A `.caffemodel` is a serialized `NetParameter` (caffe.proto). Only a handful of its fields matter
here, so they are decoded directly (varints and length-delimited fields) instead of compiling
caffe.proto: the layers, in either layer format, and each layer's blobs.

- NetParameter: `layer` = 100 (LayerParameter), the older `layers` = 2 (V1LayerParameter).
- LayerParameter: name 1, type 2 (a string), blobs 7.
- V1LayerParameter: name 4, type 5 (an enum), blobs 6; the oldest files nest a V0LayerParameter
  in field 1 (name 1, type 2 as a string, blobs 50).
- BlobProto: num 1, channels 2, height 3, width 4 (the 4-D shape of old files), data 5 (packed
  float32), shape 7 (BlobShape: dim 1, packed int64), double_data 8.

The wire format is read without copies (memoryviews of the file's bytes), each field's length is
checked against what is left of its message, each field's wire type against the one caffe.proto
gives it, and a blob's shape against the values it holds, so a damaged or hostile file is refused
with at most a few times its size in memory.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from zoo.errors import ZooError
from zoo.weights.untrusted import reading

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5
MAX_LAYERS = 100_000  # a BVLC net has tens; the deepest Caffe ResNets about a thousand
MAX_BLOBS = 64  # per layer: weights, bias, BatchNorm's mean, variance and factor
MAX_DIMENSIONS = 32
MAX_DIMENSION = 2**62

# caffe.proto's V1LayerParameter.LayerType values for the layers the zoo's nets have
V1_LAYER_TYPES = {
    3: "Concat", 4: "Convolution", 5: "Data", 6: "Dropout", 8: "Flatten", 14: "InnerProduct", 15: "LRN",
    17: "Pooling", 18: "ReLU", 20: "Softmax", 21: "SoftmaxWithLoss", 1: "Accuracy", 22: "Split",
}


@dataclasses.dataclass
class CaffeLayer:
    name: str
    type: str
    blobs: list[np.ndarray]


class WireFormatError(ValueError):
    """The bytes are not the protobuf message they should be."""


def _varint(data: memoryview, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(data):
            raise WireFormatError("a varint runs past the end")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7
        if shift > 63:
            raise WireFormatError("a varint is longer than 10 bytes")


def fields(data: memoryview):
    """(field number, wire type, value) of a message: ints for varints, memoryviews otherwise."""
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireFormatError("field number 0")
        if wire_type == VARINT:
            value, position = _varint(data, position)
        elif wire_type == FIXED64:
            value, position = data[position:position + 8], position + 8
        elif wire_type == FIXED32:
            value, position = data[position:position + 4], position + 4
        elif wire_type == LENGTH_DELIMITED:
            length, position = _varint(data, position)
            value, position = data[position:position + length], position + length
        else:
            raise WireFormatError(f"wire type {wire_type} (groups) does not occur in caffe.proto")
        if position > len(data):
            raise WireFormatError("a field runs past the end")
        yield number, wire_type, value


def _dimensions(value: memoryview, dims: list[int]) -> None:
    """Adds a packed run of int64 dimensions to `dims`, refusing more than MAX_DIMENSIONS."""
    position = 0
    while position < len(value):
        number, position = _varint(value, position)
        _add_dimension(dims, number)


def _add_dimension(dims: list[int], number: int) -> None:
    if len(dims) >= MAX_DIMENSIONS or number >= MAX_DIMENSION:
        raise WireFormatError(f"a blob shape has more than {MAX_DIMENSIONS} dimensions or one of {number:,}")
    dims.append(number)


def _blob(message: memoryview) -> np.ndarray:
    legacy_shape = {1: 0, 2: 0, 3: 0, 4: 0}
    shape: list[int] = []
    chunks, doubles, unpacked = [], [], bytearray()
    for number, wire_type, value in fields(message):
        if number in legacy_shape and wire_type == VARINT:
            legacy_shape[number] = value
        elif number in (5, 8) and wire_type == LENGTH_DELIMITED:
            width = 4 if number == 5 else 8
            if len(value) % width:
                raise WireFormatError(f"a blob's data is {len(value)} bytes, not a whole number of {width}-byte values")
            (chunks if number == 5 else doubles).append(np.frombuffer(value, dtype="<f4" if number == 5 else "<f8"))
        elif number == 5 and wire_type == FIXED32:  # an unpacked repeated float: 5 bytes on the wire, 4 here
            unpacked += value
        elif number == 7 and wire_type == LENGTH_DELIMITED:
            for dim_number, dim_type, dims in fields(value):
                if dim_number == 1 and dim_type == LENGTH_DELIMITED:
                    _dimensions(dims, shape)
                elif dim_number == 1 and dim_type == VARINT:
                    _add_dimension(shape, dims)
    if unpacked:
        chunks.append(np.frombuffer(bytes(unpacked), dtype="<f4"))
    parts = chunks or doubles
    data = np.concatenate(parts).astype(np.float32, copy=False) if parts else np.zeros(0, np.float32)
    if not shape:
        shape = [legacy_shape[number] for number in (1, 2, 3, 4)]
    if any(side >= MAX_DIMENSION for side in shape) or math.prod(shape) != data.size:
        raise WireFormatError(f"a blob of shape {shape} holds {data.size:,} values")
    return data.reshape(shape)


def _text(value: memoryview) -> str:
    return bytes(value).decode("utf8", errors="replace")


def _layer(message: memoryview, v1: bool) -> CaffeLayer:
    name_field, type_field, blobs_field = (4, 5, 6) if v1 else (1, 2, 7)
    name, kind, blobs = "", "", []
    for number, wire_type, value in fields(message):
        if number == name_field and wire_type == LENGTH_DELIMITED:
            name = _text(value)
        elif number == type_field and wire_type == (VARINT if v1 else LENGTH_DELIMITED):
            kind = V1_LAYER_TYPES.get(value, f"V1 type {value}") if v1 else _text(value)
        elif number == blobs_field and wire_type == LENGTH_DELIMITED:
            blobs.append(_blob(value))
        elif v1 and number == 1 and wire_type == LENGTH_DELIMITED:  # a nested V0LayerParameter
            for v0_number, v0_type, v0_value in fields(value):
                if v0_number == 1 and v0_type == LENGTH_DELIMITED:
                    name = _text(v0_value)
                elif v0_number == 2 and v0_type == LENGTH_DELIMITED:
                    kind = _text(v0_value)
                elif v0_number == 50 and v0_type == LENGTH_DELIMITED:
                    blobs.append(_blob(v0_value))
        if len(blobs) > MAX_BLOBS:
            raise WireFormatError(f"a layer has more than {MAX_BLOBS} blobs")
    return CaffeLayer(name, kind, blobs)


def read_caffe_layers(path: str) -> list[CaffeLayer]:
    """Every layer of a `.caffemodel` in file order (both layer formats), with its blobs."""
    with reading(path, "Caffe model"):
        with open(path, "rb") as file:
            data = memoryview(file.read())
        layers = []
        try:
            for number, wire_type, value in fields(data):
                if number in (2, 100) and wire_type == LENGTH_DELIMITED:
                    if len(layers) == MAX_LAYERS:
                        raise WireFormatError(f"it has more than {MAX_LAYERS:,} layers")
                    layers.append(_layer(value, v1=number == 2))
        except WireFormatError as error:
            raise ZooError(f"{path} is not a Caffe model ({error})") from None
    if not layers or not any(layer.blobs for layer in layers):
        raise ZooError(f"{path} is not a Caffe model with weights (no layer holds blobs)")
    return layers


def caffe_arrays(layers: list[CaffeLayer]) -> dict[str, np.ndarray]:
    """The blobs as named arrays: LAYER.weight and LAYER.bias (further blobs: LAYER.blob2, ...)."""
    arrays = {}
    for layer in layers:
        for index, blob in enumerate(layer.blobs):
            if index == 0 and layer.type == "InnerProduct" and blob.ndim == 4:
                blob = blob.reshape(blob.shape[-2:])  # old files keep (1, 1, out, in)
            elif index == 1:
                blob = blob.reshape(-1)  # old files keep biases as (1, 1, 1, out)
            arrays[f"{layer.name}.{('weight', 'bias')[index] if index < 2 else f'blob{index}'}"] = blob
    return arrays
