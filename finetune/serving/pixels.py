"""The model every ONNX and LiteRT export is converted from: uint8 pixels in, probabilities out.

Both formats carry one plain tensor function, so the export's input is the simplest one a caller
in any language can build (NHWC uint8 images at the model's input size, any batch size) and the
model's preprocessing and softmax are inside it. Decoding image files stays with the caller: neither
format has JPEG/PNG decoding among its portable operations.
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from finetune.serving.loading import LoadedModel
from zoo.layers import preprocessing_layer

INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"


def pixels_model(loaded: LoadedModel) -> keras.Model:
    """`loaded`'s model behind its preprocessing: uint8 [N, height, width, channels] -> float32 [N, classes]."""
    pixels = keras.Input(shape=loaded.input_shape, dtype="uint8", name=INPUT_NAME)
    probabilities = loaded.model(preprocessing_layer(loaded.preprocessing)(pixels), training=False)
    # a dict output names the LiteRT signature's output; ONNX names it after conversion
    return keras.Model(pixels, {OUTPUT_NAME: probabilities}, name=f"{loaded.model.name}_pixels")


def pixels_signature(loaded: LoadedModel) -> list[tf.TensorSpec]:
    """The export's one input: uint8 images at the model's size, any batch size."""
    return [tf.TensorSpec([None, *loaded.input_shape], tf.uint8, name=INPUT_NAME)]


def describe(loaded: LoadedModel, export_format: str, quantize: str) -> dict:
    """What travels with an ONNX or LiteRT export: task, input, preprocessing (already inside the
    graph, for the record), class names and how it was made."""
    height, width, channels = loaded.input_shape
    return {
        "task": "classification", "format": export_format, "quantize": quantize, "model": loaded.model.name,
        "input": {"name": INPUT_NAME, "dtype": "uint8", "shape": [None, height, width, channels],
                  "layout": "NHWC", "range": [0, 255]},
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": [None, len(loaded.class_names)]},
        "preprocessing": loaded.preprocessing.to_dict(), "preprocessing_in_graph": True,
        "class_names": list(loaded.class_names), "source": str(Path(loaded.keras_path).resolve()),
    }
