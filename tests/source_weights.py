"""Seeded random weights of other libraries' nets, and Caffe files written with protobuf itself.

Shared by tests/test_pretrained.py and scripts/check_converters.py: the script draws a source
net's weights with `random_arrays`, loads them into the PyTorch (or torch-functional Caffe) net and
keeps the net's outputs as a fixture; the tests draw the same arrays from the same seed, key names
and shapes, with numpy alone, and check the zoo's conversion against those outputs.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

FIXTURES = Path(__file__).parent / "fixtures"
CONVERTER_FIXTURES = FIXTURES / "converters"


RESIDUAL_BATCH_NORM = re.compile(r"(layer\d+\.\d+)\.bn(\d)\.weight")


def _last_batch_norms_of_residual_branches(shapes) -> set[str]:
    """The gamma keys of each ResNet block's last BatchNorm (bn2 of a basic block, bn3 of a bottleneck)."""
    last: dict[str, int] = {}
    for key in shapes:
        if match := RESIDUAL_BATCH_NORM.fullmatch(key):
            last[match.group(1)] = max(last.get(match.group(1), 0), int(match.group(2)))
    return {f"{block}.bn{index}.weight" for block, index in last.items()}


def random_arrays(shapes: dict[str, list[int]], seed: int, output_scale: float = 1.0) -> dict[str, np.ndarray]:
    """Arrays for a source's keys, in order: He-uniform kernels, small biases, and BatchNorm with
    non-trivial statistics (gamma and variance in [0.5, 1.5], mean in [-0.2, 0.2]).

    Random BatchNorm statistics do not normalize anything, so each residual block would add its
    input's size again and a ResNet-152's outputs would reach 1e12, every probability 0 or 1. As
    zero-init-residual does in training, the last BatchNorm of each residual branch gets a small
    gamma (0.05 to 0.15), which keeps the outputs where probabilities tell converters apart.
    For the same reason the classifier's kernel (the last) is divided by `output_scale`, which the
    script picks so that the logits spread by about 2.
    """
    rng = np.random.default_rng(seed)
    residual_ends = _last_batch_norms_of_residual_branches(shapes)
    kernels = [key for key, shape in shapes.items() if len(shape) >= 2]
    scales = {kernels[-1]: output_scale} if kernels else {}

    def uniform(low, high, shape):
        return (low + (high - low) * rng.random(shape, dtype=np.float32)).astype(np.float32)

    arrays = {}
    for key, shape in shapes.items():
        shape = tuple(shape)
        prefix = key.rsplit(".", 1)[0]
        batch_norm = f"{prefix}.running_mean" in shapes
        if key.endswith("num_batches_tracked"):
            arrays[key] = np.array(100, dtype=np.int64)
        elif key in residual_ends:
            arrays[key] = uniform(0.05, 0.15, shape)
        elif key.endswith("running_var") or (batch_norm and key.endswith(".weight")):
            arrays[key] = uniform(0.5, 1.5, shape)
        elif key.endswith("running_mean"):
            arrays[key] = uniform(-0.2, 0.2, shape)
        elif len(shape) == 1:
            arrays[key] = uniform(-0.1, 0.1, shape)
        else:
            bound = math.sqrt(6.0 / math.prod(shape[1:])) / scales.get(key, 1.0)
            arrays[key] = uniform(-bound, bound, shape)
    return arrays


def _caffe_messages():
    """BlobShape, BlobProto, LayerParameter, V1LayerParameter and NetParameter with caffe.proto's
    field numbers (only the fields a weights file needs), built with protobuf's own descriptors."""
    file = descriptor_pb2.FileDescriptorProto(name="zoo_test_caffe.proto", package="zoo_test_caffe", syntax="proto2")
    field = descriptor_pb2.FieldDescriptorProto
    optional, repeated = field.LABEL_OPTIONAL, field.LABEL_REPEATED

    def message(name, *fields):
        proto = file.message_type.add(name=name)
        for field_name, number, label, kind, type_name, packed in fields:
            added = proto.field.add(name=field_name, number=number, label=label, type=kind)
            if type_name:
                added.type_name = f".zoo_test_caffe.{type_name}"
            if packed:
                added.options.packed = True

    message("BlobShape", ("dim", 1, repeated, field.TYPE_INT64, None, True))
    message("BlobProto", ("num", 1, optional, field.TYPE_INT32, None, False),
            ("channels", 2, optional, field.TYPE_INT32, None, False),
            ("height", 3, optional, field.TYPE_INT32, None, False),
            ("width", 4, optional, field.TYPE_INT32, None, False),
            # caffe.proto's `repeated float data = 5 [packed = true]` is, on the wire, one length-delimited
            # field of little-endian float32s: declared as bytes here, protobuf writes the same bytes
            # without a Python float per value
            ("data", 5, optional, field.TYPE_BYTES, None, False),
            ("shape", 7, optional, field.TYPE_MESSAGE, "BlobShape", False))
    message("LayerParameter", ("name", 1, optional, field.TYPE_STRING, None, False),
            ("type", 2, optional, field.TYPE_STRING, None, False),
            ("bottom", 3, repeated, field.TYPE_STRING, None, False),
            ("top", 4, repeated, field.TYPE_STRING, None, False),
            ("blobs", 7, repeated, field.TYPE_MESSAGE, "BlobProto", False))
    message("V1LayerParameter", ("bottom", 2, repeated, field.TYPE_STRING, None, False),
            ("top", 3, repeated, field.TYPE_STRING, None, False),
            ("name", 4, optional, field.TYPE_STRING, None, False),
            ("type", 5, optional, field.TYPE_INT32, None, False),
            ("blobs", 6, repeated, field.TYPE_MESSAGE, "BlobProto", False))
    message("NetParameter", ("name", 1, optional, field.TYPE_STRING, None, False),
            ("layers", 2, repeated, field.TYPE_MESSAGE, "V1LayerParameter", False),
            ("layer", 100, repeated, field.TYPE_MESSAGE, "LayerParameter", False))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"zoo_test_caffe.{name}"))
            for name in ("BlobProto", "LayerParameter", "V1LayerParameter", "NetParameter")}


V1_TYPES = {"Convolution": 4, "InnerProduct": 14, "LRN": 15, "Pooling": 17, "ReLU": 18, "Dropout": 6,
            "Softmax": 20, "Concat": 3, "Data": 5}


def write_caffemodel(path, layers: list[tuple[str, str, list[np.ndarray]]], v1: bool = False) -> Path:
    """A .caffemodel of (name, type, blobs) layers: LayerParameter with N-D blob shapes, or the
    older V1LayerParameter with 4-D num/channels/height/width shapes (as the BVLC files have)."""
    messages = _caffe_messages()
    net = messages["NetParameter"](name="zoo_test")
    for name, kind, blobs in layers:
        layer = net.layers.add(name=name, type=V1_TYPES[kind]) if v1 else net.layer.add(name=name, type=kind)
        for blob in blobs:
            proto = layer.blobs.add()
            proto.data = np.asarray(blob, dtype="<f4").tobytes()
            if v1:
                padded = (1,) * (4 - blob.ndim) + tuple(blob.shape)
                proto.num, proto.channels, proto.height, proto.width = padded
            else:
                proto.shape.dim.extend(blob.shape)
    path = Path(path)
    path.write_bytes(net.SerializeToString())
    return path


def caffe_layers_from(arrays: dict[str, np.ndarray], order: list[tuple[str, str]]) -> list:
    """(name, type, blobs) in file order, the blobs of each layer from LAYER.weight and LAYER.bias."""
    return [(name, kind, [arrays[f"{name}.{part}"] for part in ("weight", "bias") if f"{name}.{part}" in arrays])
            for name, kind in order]


def save_fixture(path, *, model, options, file_format, seed, shapes, pixels, probabilities, preprocessing,
                 caffe_order=None, output_scale=1.0) -> None:
    """A converter fixture: what regenerates the source weights, the pixels and the source net's outputs."""
    metadata = {"model": model, "options": options, "format": file_format, "seed": seed, "shapes": shapes,
                "output_scale": output_scale, "preprocessing": preprocessing,
                "caffe_order": caffe_order}
    np.savez_compressed(path, metadata=np.array(json.dumps(metadata)), pixels=pixels,
                        probabilities=probabilities.astype(np.float32))


def load_fixture(path) -> tuple[dict, np.ndarray, np.ndarray]:
    with np.load(path) as data:
        return json.loads(str(data["metadata"])), data["pixels"], data["probabilities"]
