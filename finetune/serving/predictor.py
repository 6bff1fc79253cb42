"""Predicting on image files with any SOURCE: a `.keras` file, a run folder or an exported SavedModel."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import tensorflow as tf

from finetune import files
from finetune.serving.classifier import Classifier
from finetune.serving.loading import load_model, read_labels
from finetune.serving.staging import find_saved_model
from zoo.errors import ZooError


@dataclasses.dataclass
class Prediction:
    """The top classes of one image, most probable first."""

    image: str
    classes: list[str]
    scores: list[float]

class Predictor:
    """Classifies image files with a model from any SOURCE."""

    def __init__(self, classify_encoded, class_names: list[str], description: str, warnings=()):
        self._classify_encoded = classify_encoded  # tf.string [N] -> {"probabilities": [N, classes], ...}
        self.class_names = class_names
        self.description = description
        self.warnings = list(warnings)

    def probabilities(self, encoded_images: list[bytes]) -> np.ndarray:
        outputs = self._classify_encoded(tf.constant(encoded_images, dtype=tf.string))
        return outputs["probabilities"].numpy()

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
    """A predictor for a `.keras` file, a run folder or an exported SavedModel."""
    saved_model = find_saved_model(source)
    if saved_model is None:
        loaded = load_model(source, labels)
        classifier = Classifier(loaded)
        classify = tf.function(classifier.classify_encoded, input_signature=classifier.encoded_signature())
        return Predictor(classify, loaded.class_names, str(source), loaded.warnings)
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
    if num_classes is not None and num_classes != len(class_names):
        raise ZooError(f"{saved_model} has {num_classes} outputs but {len(class_names)} class names were given")
    return Predictor(lambda images: serving(images=images), class_names, str(saved_model))
