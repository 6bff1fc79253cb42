"""The model every ONNX and LiteRT export is converted from: uint8 pixels in, probabilities out.

Both formats carry one plain tensor function, so the export's input is the simplest one a caller
in any language can build (NHWC uint8 images of any one size per batch, any batch size) and the
model's evaluation transform (resize and centre crop to its input, `zoo.layers.eval_transform`),
preprocessing and softmax are inside it. Decoding image files stays with the caller: neither
format has JPEG/PNG decoding among its portable operations.
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from finetune.serving.loading import LoadedModel
from zoo.layers import preprocessing_layer
from zoo.layers.eval_transform import EvalResizeCrop

INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"


def pixels_model(loaded: LoadedModel) -> keras.Model:
    """`loaded`'s model behind its evaluation transform and preprocessing: uint8 [N, any height,
    any width, channels] -> float32 [N, classes]."""
    height, width, channels = loaded.input_shape
    pixels = keras.Input(shape=(None, None, channels), dtype="uint8", name=INPUT_NAME)
    fitted = EvalResizeCrop(loaded.evaluation.to_dict(), (height, width), name="eval_resize_crop")(pixels)
    probabilities = loaded.model(preprocessing_layer(loaded.preprocessing)(fitted), training=False)
    # a dict output names the LiteRT signature's output; ONNX names it after conversion
    return keras.Model(pixels, {OUTPUT_NAME: probabilities}, name=f"{loaded.model.name}_pixels")


def pixels_signature(loaded: LoadedModel) -> list[tf.TensorSpec]:
    """The export's one input: uint8 images of any one size per batch, any batch size."""
    return [tf.TensorSpec([None, None, None, loaded.input_shape[-1]], tf.uint8, name=INPUT_NAME)]


def describe(loaded: LoadedModel, export_format: str, quantize: str) -> dict:
    """What travels with an ONNX or LiteRT export: task, input, evaluation transform and
    preprocessing (already inside the graph, for the record), class names and how it was made."""
    height, width, channels = loaded.input_shape
    return {
        "task": "classification", "format": export_format, "quantize": quantize, "model": loaded.model.name,
        "input": {"name": INPUT_NAME, "dtype": "uint8", "shape": [None, None, None, channels],
                  "layout": "NHWC", "range": [0, 255], "model_input": [height, width, channels]},
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": [None, len(loaded.class_names)]},
        "evaluation": loaded.evaluation.to_dict(), "evaluation_description": loaded.evaluation.describe(height, width),
        "preprocessing": loaded.preprocessing.to_dict(), "preprocessing_in_graph": True,
        "class_names": list(loaded.class_names), "source": str(Path(loaded.keras_path).resolve()),
    }
