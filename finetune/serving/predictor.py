"""Predicting on image files with any SOURCE: a `.keras` file, a run folder, an exported SavedModel,
or an ONNX or LiteRT export run in its own runtime."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import tensorflow as tf

from finetune import files
from finetune.serving.classifier import Classifier, decode_image
from finetune.serving.loading import default_class_names, load_model, read_labels
from finetune.serving.runtimes import find_portable_model, open_model
from finetune.serving.staging import find_saved_model
from zoo.errors import ZooError
from zoo.eval_transform import SQUASH_BILINEAR

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Prediction:
    """The top classes of one image, most probable first."""

    image: str
    classes: list[str]
    scores: list[float]


class Predictor:
    """Classifies image files with a model from any SOURCE."""

    def __init__(self, probabilities_of, class_names: list[str], description: str, warnings=()):
        self._probabilities_of = probabilities_of  # tf.string [N] -> numpy float32 [N, classes]
        self.class_names = class_names
        self.description = description
        self.warnings = list(warnings)

    def probabilities(self, encoded_images: list[bytes]) -> np.ndarray:
        return self._probabilities_of(tf.constant(encoded_images, dtype=tf.string))

    def predict_files(self, paths, top_k: int = 5, batch_size: int = 32):
        """Top-k classes per readable image; returns (predictions, skipped) with skipped as (path, reason)."""
        readable, skipped = [], []
        for path in paths:
            reason = _unreadable_reason(path)
            if reason:
                skipped.append((str(path), reason))
            else:
                readable.append(str(path))
        predictions = []
        top_k = max(1, min(top_k, len(self.class_names)))
        for start in range(0, len(readable), batch_size):
            batch = readable[start:start + batch_size]
            probabilities = self.probabilities([Path(path).read_bytes() for path in batch])
            for path, row in zip(batch, probabilities):
                best = np.argsort(-row, kind="stable")[:top_k]
                predictions.append(Prediction(path, [self.class_names[i] for i in best], [float(row[i]) for i in best]))
        return predictions, skipped


def _unreadable_reason(path) -> str | None:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        return error.strerror or str(error)
    try:
        tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
        return "not a readable JPEG, PNG, GIF, BMP or WebP image"
    return None


def load_predictor(source, labels=None) -> Predictor:
    """A predictor for a `.keras` file, a run folder, an exported SavedModel or an ONNX or LiteRT
    export (a .onnx or .tflite file, or its export folder)."""
    portable = find_portable_model(source)
    if portable is not None:
        return _portable_predictor(*portable, labels)
    saved_model = find_saved_model(source)
    if saved_model is None:
        loaded = load_model(source, labels)
        classifier = Classifier(loaded)
        classify = tf.function(classifier.classify_encoded, input_signature=classifier.encoded_signature())
        return Predictor(lambda images: classify(images)["probabilities"].numpy(), loaded.class_names, str(source),
                         loaded.warnings)
    try:
        serving = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
    except (OSError, ValueError, KeyError, tf.errors.OpError) as error:
        raise ZooError(f"cannot load the SavedModel in {saved_model}: {error}") from None
    if labels is not None:
        class_names = read_labels(labels)
    elif (saved_model / "assets" / files.LABELS).is_file():
        class_names = read_labels(saved_model / "assets" / files.LABELS)
    else:
        raise ZooError(f"{saved_model} has no assets/{files.LABELS}; pass --labels FILE")
    num_classes = serving.structured_outputs["probabilities"].shape[-1]
    _check_class_count(saved_model, num_classes, class_names)
    return Predictor(lambda images: serving(images=images)["probabilities"].numpy(), class_names, str(saved_model))


def _check_class_count(source, num_classes: int | None, class_names: list[str]) -> None:
    if num_classes is not None and num_classes != len(class_names):
        raise ZooError(f"{source} has {num_classes} outputs but {len(class_names)} class names were given")


def _portable_predictor(path: Path, export_format: str, labels=None) -> Predictor:
    """An ONNX or LiteRT model run in its runtime on images decoded here, as the uint8 pixels it
    takes: each at its own size, which the model resizes and crops itself (or, for an export made
    before it did, squashed to its fixed input size). Class names: `labels`, else labels.txt beside
    it, else the model's metadata."""
    runtime = open_model(path, export_format)
    warnings: list[str] = []
    if labels is not None:
        class_names = read_labels(labels)
    elif (path.parent / files.LABELS).is_file():
        class_names = read_labels(path.parent / files.LABELS)
    elif "class_names" in runtime.metadata:
        class_names = [str(name) for name in runtime.metadata["class_names"]]
    elif runtime.num_classes is not None:
        class_names = default_class_names(runtime.num_classes, warnings)
    else:
        raise ZooError(f"{path} says nothing of its classes: pass --labels FILE")
    for warning in warnings:
        logger.warning(warning)
    _check_class_count(path, runtime.num_classes, class_names)
    channels = runtime.input_shape[-1]
    if None not in runtime.input_shape:  # a fixed input: squash every image to it, as such exports expected
        input_shape = tuple(runtime.input_shape)
        decode = tf.function(lambda images: decoded_pixels(images, input_shape))

        def probabilities_of(images):
            return runtime.probabilities(decode(images).numpy())
    else:
        def probabilities_of(images):
            return np.concatenate([runtime.probabilities(decode_whole(image, channels)[np.newaxis])
                                   for image in images.numpy()])

    return Predictor(probabilities_of, class_names, str(path), warnings)


def decode_whole(encoded: bytes, channels: int) -> np.ndarray:
    """One encoded image file -> uint8 pixels [height, width, channels] at its own size."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    return (tf.image.rgb_to_grayscale(image) if channels == 1 else image).numpy()


def decoded_pixels(images, input_shape):
    """Encoded image files (tf.string [N]) -> uint8 pixels [N, *input_shape], squashed to the size
    of a fixed-input export (decoded and resized as the SavedModel's serving_default squashes them)."""
    def one(encoded):
        return tf.cast(decode_image(encoded, input_shape, SQUASH_BILINEAR), tf.uint8)

    return tf.map_fn(one, images, fn_output_signature=tf.TensorSpec(input_shape, tf.uint8))
