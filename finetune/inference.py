"""From a trained model to predictions: load any source, classify image files.

A SOURCE is one of
- a ``.keras`` file: preprocessing from the zoo spec of ``model.name`` (identity, with a warning,
  for models the zoo does not know); class names from a labels file, else ImageNet's for 1000
  outputs when Keras's class index is cached, else ``class_0, class_1, ...``;
- a run folder: ``config.json`` and/or ``classes.json`` (``model``, ``input_shape``, ``class_names``,
  ``preprocessing``) beside ``best.keras`` (or ``last.keras``);
- an exported SavedModel (``BASE/NAME/VERSION``, or ``BASE/NAME`` for its latest version).

`load_model` is the one reader of the first two, for export and predict alike (models trained with
mixed precision load computing in float32: `float32_model`); `Classifier` is the
one serving computation (decode, channels, resize, preprocessing, model, top-k), which the export
writes into its SavedModel and predict runs directly.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from zoo import registry
from zoo.errors import ZooError
from zoo.preprocessing import Preprocessing
from zoo.weights import load_model_file

logger = logging.getLogger(__name__)

# what a run folder holds (finetune's run writer uses the same names)
RUN_CONFIG = "config.json"
RUN_CLASSES = "classes.json"
RUN_METADATA = (RUN_CONFIG, RUN_CLASSES)  # read in this order, the latter winning
RUN_MODELS = ("best.keras", "last.keras")  # best first
SAVED_MODEL_FILE = "saved_model.pb"
LABELS_FILE = "labels.txt"  # in an export's assets/: one class name per line, in output order

IDENTITY = Preprocessing("identity", mean=(0.0,), std=(1.0,))


@dataclasses.dataclass
class LoadedModel:
    """A Keras classifier with what serving it needs: its preprocessing and class names."""

    model: object  # keras.Model taking preprocessed pixels, ending in softmax
    preprocessing: Preprocessing
    class_names: list[str]
    keras_path: str  # the .keras file it was loaded from
    warnings: list[str] = dataclasses.field(default_factory=list)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(dim) for dim in self.model.input_shape[1:])


def read_labels(path) -> list[str]:
    """Class names from a text file, one per line, in the model's output order."""
    try:
        lines = Path(path).read_text(encoding="utf8").splitlines()
    except OSError as error:
        raise ZooError(f"cannot read the labels file {path}: {error.strerror}") from None
    names = [line.strip() for line in lines]
    while names and not names[-1]:
        names.pop()
    return names


def _output_size(model, source) -> int:
    shape = model.output_shape
    if not isinstance(shape, tuple) or len(shape) != 2:
        raise ZooError(f"{source} is not a classifier: its output has shape {shape}, not (batch, classes)")
    return int(shape[-1])


def _preprocessing_from_spec(model, warnings: list[str]) -> Preprocessing:
    channels = int(model.input_shape[-1])
    if model.name in registry.list_models():
        return registry.get_spec(model.name).preprocessing.for_channels(channels)
    warnings.append(f"{model.name} is not a zoo model and its file says nothing of preprocessing: "
                    f"pixels in [0, 255] go in unchanged")
    return IDENTITY


def default_class_names(num_classes: int, warnings: list[str]) -> list[str]:
    if num_classes == 1000:
        from zoo import imagenet

        names = imagenet.class_names(download=False)
        if names is not None:
            return names
    warnings.append("no class names known: pass --labels FILE (one name per line) to name them")
    return [f"class_{index}" for index in range(num_classes)]


def _is_run_folder(folder: Path) -> bool:
    return folder.is_dir() and any((folder / name).is_file() for name in RUN_METADATA)


def _run_metadata(folder: Path) -> dict:
    """config.json and classes.json of a run folder, merged; classes.json (the run's resolved
    class names, input shape and preprocessing) wins where both say something."""
    metadata: dict = {}
    for name in RUN_METADATA:
        path = folder / name
        if not path.is_file():
            continue
        try:
            values = json.loads(path.read_text(encoding="utf8"))
        except (OSError, ValueError) as error:
            raise ZooError(f"cannot read {path}: {error}") from None
        metadata.update(values if isinstance(values, dict) else {"class_names": values})
    return metadata


def _run_model_path(folder: Path) -> str:
    for name in RUN_MODELS:
        if (folder / name).is_file():
            return str(folder / name)
    raise ZooError(f"{folder} holds no trained model ({' or '.join(RUN_MODELS)}); has the run saved an epoch yet?")


def float32_model(model: keras.Model) -> keras.Model:
    """`model` computing in float32. A model trained with mixed precision keeps its mixed dtype
    policy in its .keras file; its variables are float32 already, so a float32 rebuild with the
    same weights serves on any device (bfloat16 runs emulated, and many times slower, on CPUs
    without native support, and has no kernels on older GPUs)."""
    def is_mixed(layer):
        return layer.dtype_policy.name != "float32" or (
            isinstance(layer, keras.Model) and any(is_mixed(inner) for inner in layer.layers))

    if not any(is_mixed(layer) for layer in model.layers):
        return model

    def rebuild(layer):
        config = layer.get_config()
        config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    # Input layers and nested models take the global policy: float32 while cloning.
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        rebuilt = keras.models.clone_model(model, clone_function=rebuild, recursive=True)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def load_model(source, labels=None) -> LoadedModel:
    """Loads a `.keras` file or a run folder (see the module docstring for where each piece comes from).

    Args:
        source: a `.keras` file or a run folder.
        labels: an optional text file of class names, which overrides any other.
    """
    source = Path(source)
    warnings: list[str] = []
    if _is_run_folder(source):
        keras_path = _run_model_path(source)
        model = float32_model(load_model_file(keras_path))
        metadata = _run_metadata(source)
        preprocessing = (Preprocessing(**{key: tuple(value) if isinstance(value, list) else value
                                          for key, value in metadata["preprocessing"].items()})
                         if "preprocessing" in metadata else _preprocessing_from_spec(model, warnings))
        class_names = metadata.get("class_names")
    elif source.suffix == ".keras":
        keras_path = str(source)
        model = float32_model(load_model_file(keras_path))
        preprocessing = _preprocessing_from_spec(model, warnings)
        class_names = None
    else:
        raise ZooError(f"{source} is neither a .keras file nor a run folder (with {' or '.join(RUN_METADATA)})")
    num_classes = _output_size(model, source)
    if labels is not None:
        class_names = read_labels(labels)
    if class_names is None:
        class_names = default_class_names(num_classes, warnings)
    if len(class_names) != num_classes:
        raise ZooError(f"{source} has {num_classes} outputs but {len(class_names)} class names were given")
    for warning in warnings:
        logger.warning(warning)
    return LoadedModel(model, preprocessing, [str(name) for name in class_names], keras_path, warnings)


class Classifier:
    """The serving computation, in TensorFlow ops: images in; top-k class names, their
    probabilities and all probabilities out.

    Encoded images (JPEG, PNG, GIF, BMP, WebP) are decoded as RGB and converted to the model's
    channels; every image is resized (bilinear) to the model's input, then preprocessed in the graph.
    """

    def __init__(self, loaded: LoadedModel, top_k: int = 5, class_table=None):
        """`class_table` maps class indices (int64) to names; by default one is built in memory."""
        self.model = loaded.model
        self.preprocess = loaded.preprocessing.layer()
        self.height, self.width, self.channels = loaded.input_shape
        self.top_k = max(1, min(int(top_k), len(loaded.class_names)))
        self.class_table = class_table or class_name_table(loaded.class_names)

    def encoded_signature(self):
        return [tf.TensorSpec([None], tf.string, name="images")]

    def pixels_signature(self):
        return [tf.TensorSpec([None, None, None, self.channels], tf.uint8, name="images")]

    def classify_encoded(self, images):
        """A batch of encoded image files (tf.string [N]) -> classes, scores, probabilities."""
        pixels = tf.map_fn(self._decode, images,
                           fn_output_signature=tf.TensorSpec([self.height, self.width, self.channels], tf.float32))
        return self._classify(pixels)

    def classify_pixels(self, images):
        """A batch of uint8 images of one size (N, height, width, channels) -> classes, scores, probabilities."""
        return self._classify(tf.image.resize(tf.cast(images, tf.float32), [self.height, self.width]))

    def _decode(self, encoded):
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), [self.height, self.width])
        if self.channels == 1:
            image = tf.image.rgb_to_grayscale(image)
        return tf.ensure_shape(image, [self.height, self.width, self.channels])

    def _classify(self, pixels):
        probabilities = tf.cast(self.model(self.preprocess(pixels), training=False), tf.float32)
        scores, indices = tf.math.top_k(probabilities, k=self.top_k)
        classes = self.class_table.lookup(tf.cast(indices, tf.int64))
        return {"classes": classes, "scores": scores, "probabilities": probabilities}


def class_name_table(class_names, labels_file=None):
    """A lookup table from class index to name; from `labels_file` (then saved as a SavedModel asset)
    or from the names in memory."""
    if labels_file is not None:
        initializer = tf.lookup.TextFileInitializer(
            str(labels_file), key_dtype=tf.int64, key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
            value_dtype=tf.string, value_index=tf.lookup.TextFileIndex.WHOLE_LINE)
    else:
        initializer = tf.lookup.KeyValueTensorInitializer(
            tf.range(len(class_names), dtype=tf.int64), tf.constant(list(class_names), dtype=tf.string))
    return tf.lookup.StaticHashTable(initializer, default_value="")


# --- Predicting on image files -----------------------------------------------------------------------

@dataclasses.dataclass
class Prediction:
    """The top classes of one image, most probable first."""

    image: str
    classes: list[str]
    scores: list[float]


def find_saved_model(source) -> Path | None:
    """The SavedModel folder `source` names: itself, or the latest numbered version inside it."""
    source = Path(source)
    if (source / SAVED_MODEL_FILE).is_file():
        return source
    if source.is_dir():
        versions = [child for child in source.iterdir()
                    if child.name.isdigit() and (child / SAVED_MODEL_FILE).is_file()]
        if versions:
            return max(versions, key=lambda child: int(child.name))
    return None


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
    elif (saved_model / "assets" / LABELS_FILE).is_file():
        class_names = read_labels(saved_model / "assets" / LABELS_FILE)
    else:
        raise ZooError(f"{saved_model} has no assets/{LABELS_FILE}; pass --labels FILE")
    num_classes = serving.structured_outputs["probabilities"].shape[-1]
    if num_classes is not None and num_classes != len(class_names):
        raise ZooError(f"{saved_model} has {num_classes} outputs but {len(class_names)} class names were given")
    return Predictor(lambda images: serving(images=images), class_names, str(saved_model))
