"""LiteRT (TensorFlow Lite) conversion of the uint8-pixels model (`finetune.serving.pixels`),
quantized or not.

Keras converts (`model.export(format="litert")`, the TFLite converter on a SavedModel of the
model) and passes the converter settings through:

- the model is limited to LiteRT's built-in operations: the LiteRT interpreter has no TensorFlow
  ("Flex") operations, so a model needing them would convert but not run;
- float16: float16 weights, dequantized where the kernels compute in float32 (TFLite's
  post-training float16 quantization);
- int8: full-integer post-training quantization calibrated on the given images: int8 weights and
  activations, the uint8 input and float32 probabilities kept as they are, and float kernels only
  where an operation has no int8 one.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.lite.python.convert_phase import ConverterError  # tf.lite does not re-export it

from finetune.quiet import native_stderr_silenced
from zoo.errors import ZooError

CALIBRATION_BATCH = 1  # the converter's calibrator runs its representative samples as given


def converter_settings(quantize: str, calibration: np.ndarray | None = None) -> dict:
    """The TFLite converter settings of a quantization choice, as `model.export` passes them on."""
    builtins = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}
    if quantize == "float16":
        return {"optimizations": [tf.lite.Optimize.DEFAULT],
                "target_spec": {**builtins, "supported_types": [tf.float16]}}
    if quantize == "int8":
        def representative_dataset():
            for start in range(0, len(calibration), CALIBRATION_BATCH):
                yield [calibration[start:start + CALIBRATION_BATCH]]

        return {"optimizations": [tf.lite.Optimize.DEFAULT], "representative_dataset": representative_dataset,
                "target_spec": builtins}
    return {"target_spec": builtins}


def convert(model, input_signature, quantize: str = "none", calibration: np.ndarray | None = None) -> bytes:
    """The LiteRT flatbuffer of a Keras model taking uint8 pixels.

    Args:
        model: the pixels model (`finetune.serving.pixels.pixels_model`).
        input_signature: its one input spec, batch dimension None (LiteRT resizes it per call).
        quantize: "none", "float16" or "int8".
        calibration: uint8 images for int8 calibration.
    """
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "model.tflite"
        try:
            with native_stderr_silenced():  # the converter prints its quantization settings natively
                model.export(str(path), format="litert", input_signature=input_signature, verbose=False,
                             **converter_settings(quantize, calibration))
        except ConverterError as error:
            raise ZooError(f"LiteRT cannot convert {model.name}: {_reason(error)}") from None
        return path.read_bytes()


def _reason(error: Exception) -> str:
    """The converter's reason in one line: the TensorFlow operations LiteRT lacks, else its last error."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    missing = [line for line in lines if line.startswith("TF Select ops:")]
    if missing:
        return f"it has no built-in kernels for {missing[0].split(':', 1)[1].strip()}"
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["unknown error"])[-1][:300]
