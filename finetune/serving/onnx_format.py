"""ONNX conversion of the uint8-pixels model (`finetune.serving.pixels`), quantized or not.

Keras writes the ONNX graph (`model.export(format="onnx")`, through tf2onnx); this module names its
batch dimension, quantizes it with ONNX Runtime's own tools and adds the kit's metadata as the
model's metadata properties (`onnxruntime.InferenceSession(...).get_modelmeta().custom_metadata_map`).

- float16: `onnxruntime.transformers.float16` converts weights and arithmetic, keeping the uint8
  input and the float32 output;
- int8: static post-training quantization (`onnxruntime.quantization.quantize_static`), calibrated
  on the given images: the QDQ format with int8 activations and weights, the combination ONNX
  Runtime's quantization guide names as the first choice on CPUs, with weights per channel.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
from pathlib import Path

import numpy as np

from finetune.serving.extras import missing_extra
from finetune.serving.pixels import INPUT_NAME

try:  # the `export` extra
    import onnx
    from onnxruntime import quantization
    from onnxruntime.transformers import float16
except ImportError:
    onnx = quantization = float16 = None
TF2ONNX_INSTALLED = importlib.util.find_spec("tf2onnx") is not None  # Keras converts through it

BATCH_DIMENSION = "batch"
IMAGE_DIMENSIONS = ("height", "width")
CALIBRATION_BATCH = 32


class _Calibration:
    """Feeds calibration images in batches; ONNX Runtime takes any object with `get_next` as its
    CalibrationDataReader."""

    def __init__(self, images: np.ndarray):
        self._batches = iter(np.array_split(images, max(1, -(-len(images) // CALIBRATION_BATCH))))

    def get_next(self):
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: batch}


def convert(model, input_signature, quantize: str = "none", calibration: np.ndarray | None = None):
    """The ONNX model (an `onnx.ModelProto`) of a Keras model taking uint8 pixels.

    Args:
        model: the pixels model (`finetune.serving.pixels.pixels_model`).
        input_signature: its one input spec, batch dimension None.
        quantize: "none", "float16" or "int8".
        calibration: uint8 images for int8 calibration.
    """
    if onnx is None or not TF2ONNX_INSTALLED:
        raise missing_extra("ONNX export")
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "float.onnx"
        model.export(str(path), format="onnx", input_signature=input_signature, verbose=False)
        converted = onnx.load(str(path))
        _name_batch_dimension(converted)
        if quantize == "float16":
            converted = float16.convert_float_to_float16(converted, keep_io_types=True)
        elif quantize == "int8":
            onnx.save(converted, str(path))
            converted = _quantize_int8(path, Path(scratch), calibration)
    return converted


def _name_batch_dimension(model) -> None:
    """tf2onnx names the dynamic dimensions `unk__N`; callers read `batch` (and the input's
    `height` and `width`, any size) better."""
    named = [(value, (BATCH_DIMENSION, *IMAGE_DIMENSIONS)) for value in model.graph.input]
    named += [(value, (BATCH_DIMENSION,)) for value in model.graph.output]
    for value, names in named:
        for dimension, name in zip(value.type.tensor_type.shape.dim, names):
            if dimension.HasField("dim_param") or not dimension.HasField("dim_value"):
                dimension.dim_param = name


def _quantize_int8(path: Path, scratch: Path, calibration: np.ndarray):
    prepared, quantized = scratch / "prepared.onnx", scratch / "int8.onnx"
    # shape inference and graph clean-up first, as ONNX Runtime's quantization guide asks
    quantization.quant_pre_process(str(path), str(prepared))
    quantization.quantize_static(
        str(prepared), str(quantized), _Calibration(calibration), quant_format=quantization.QuantFormat.QDQ,
        per_channel=True, activation_type=quantization.QuantType.QInt8, weight_type=quantization.QuantType.QInt8)
    return onnx.load(str(quantized))


def with_metadata(model, metadata: dict) -> bytes:
    """The serialized model with `metadata` as metadata properties, each value as JSON."""
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=json.dumps(value))
    return model.SerializeToString()


def read_metadata(properties: dict[str, str]) -> dict:
    """The kit's metadata back from an ONNX model's metadata properties (others are kept as text)."""
    metadata = {}
    for key, value in properties.items():
        try:
            metadata[key] = json.loads(value)
        except ValueError:
            metadata[key] = value
    return metadata
