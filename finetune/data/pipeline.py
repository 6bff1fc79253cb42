"""Input pipelines: a data spec resolved to batched tf.data streams sized for a zoo model.

Sources (`finetune.data.source`: TFDS datasets and class folders) give undecoded items per split;
here they are shuffled, decoded, fitted to the model's input (channels, size), kept in memory when
small, batched, augmented and preprocessed.

The geometric augmentation of training (random-resized-crop, flips) is drawn per image on the
image as it is stored, not on a shrunk copy: for files, on the original size read from the JPEG
header, and only the crop is decoded (`finetune.data.decoding`). Validation and test images of
files go through the evaluation transform the same way. Images kept in memory (`cache`) are the
resized ones, and the crops are drawn on those.

With `data_service`, the training stream's reading, decoding and cropping run on tf.data service
workers (`finetune.data.service`); the trainer batches, augments colours and preprocesses.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf

from finetune import files
from finetune.data import decoding, service
from finetune.data import images as image_files
from finetune.data.folders import folder_source
from finetune.data.source import (AUTOTUNE, Source, cap, carve_fold, carve_validation, keep_small_items_in_memory,
                                  labels_of, read_and_decode)
from finetune.data.specs import DataSpec, parse_spec, resolve_data_dir
from finetune.data.tfds_sources import tfds_source
from zoo.errors import ZooError
from zoo.eval_transform import SQUASH, EvalTransform
from zoo.layers import eval_transform, preprocessing_layer

log = logging.getLogger(__name__)

# cache=None keeps the decoded, resized uint8 images in memory when all splits together take at most
# this much: decoding then happens once, not every epoch (LeNet-5 on zoo_shapes/32 waited on PNG
# decoding for ~40% of each epoch: scripts/bench_input.py).
AUTO_CACHE_BYTES = 512 * 2**20
STATISTICS_SAMPLE = 2000  # training images the mean/std and PCA statistics are estimated from
STATISTICS_PIXEL_STRIDE = 7  # every 7th pixel of those is plenty
LABEL_MODES = ("int", "categorical")
# Each operation of the pipeline on one thread: the pipeline already runs as many images and batches
# at once as there are cores, and an operation that spreads one image over all of them (the
# evaluation transform's matrix products) only makes the others wait: 1.9x the validation stream's
# images/s on 2 cores (scripts/bench_input.py photos).
STREAM_OPTIONS = tf.data.Options()
STREAM_OPTIONS.threading.max_intra_op_parallelism = 1
BALANCE_MODES = ("oversample", "undersample")


def open_source(spec: DataSpec, data_dir, download, seed, labels=None) -> Source:
    if spec.kind == "folder":
        return folder_source(spec, seed, labels)
    if labels is not None:
        raise ZooError(f"--labels names the labels of a folder of images, not of {spec}")
    return tfds_source(spec, resolve_data_dir(data_dir), download)


def labelled_spec(spec: str | None, labels) -> str | None:
    """The data spec, or the label file's folder when only a label file is given."""
    if spec is None and labels is not None:
        return str(Path(labels).expanduser().parent)
    return spec


def fit_image(image, image_size, evaluation: EvalTransform | None = None):
    """A decoded image converted to the model's channels (gray <-> RGB, alpha dropped) and resized
    to (H, W), as uint8: cheap to cache and to shuffle, and exact for images already at size.
    With `evaluation`, resized and centre cropped by that transform (`zoo.layers.eval_transform`)
    instead of squashed."""
    height, width, channels = image_size
    image = tf.convert_to_tensor(image)
    if image.shape.rank == 2:
        image = image[..., None]
    present = image.shape[-1]
    if present is None:
        raise ZooError("images of unknown channel count; decode them with a fixed number of channels")
    if present in (2, 4):  # gray or RGB with alpha: the alpha channel goes
        image = image[..., : present - 1]
        present -= 1
    if channels == 1 and present == 3:
        image = tf.image.rgb_to_grayscale(image)
    elif channels == 3 and present == 1:
        image = tf.image.grayscale_to_rgb(image)
    if image.dtype != tf.uint8:
        image = tf.image.convert_image_dtype(image, tf.uint8, saturate=True)
    if evaluation is not None:  # whole numbers in [0, 255] already
        image = tf.cast(eval_transform.apply(image, evaluation, (height, width)), tf.uint8)
    elif image.shape[0] != height or image.shape[1] != width:  # known only for fixed-size sources
        resized = tf.image.resize(image, (height, width), antialias=True)
        image = tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)
    return tf.ensure_shape(image, (height, width, channels))


def decode_items(source: Source, items: tf.data.Dataset, image_size,
                 evaluation: EvalTransform | None = None) -> tf.data.Dataset:
    """(item, target) -> (uint8 image fitted to `image_size`, target), decoding in parallel."""
    fitted = items.map(lambda item, target: (fit_image(source.decode(item), image_size, evaluation), target),
                       num_parallel_calls=AUTOTUNE)
    if source.files:
        # A last guard for files changed since they were checked. Only there: over a stream whose
        # reader itself fails (a TFDS file gone), ignore_errors would retry forever.
        fitted = fitted.ignore_errors(log_warning=True)
    return fitted


def with_seeds(items: tf.data.Dataset, seed: int) -> tf.data.Dataset:
    """(item, target) -> (item, target, seed int64 [2]): a fresh seed per example and per epoch,
    drawn from `seed`, for the stateless random ops of the per-image augmentation."""
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip(items, seeds).map(lambda example, pair: (*example, pair))


@dataclasses.dataclass(frozen=True)
class Geometry:
    """The per-image geometric augmentation of training: random-resized-crop over `crop_area`
    (min, max fraction of the image), horizontal flips."""

    crop_area: tuple[float, float] | None = None
    flip: bool = False

    @property
    def active(self) -> bool:
        return self.crop_area is not None or self.flip


def decode_files(paths: tf.data.Dataset, image_size, unreadable: decoding.UnreadableFiles,
                 evaluation: EvalTransform | None = None, geometry: Geometry = Geometry(),
                 exact: bool = False) -> tf.data.Dataset:
    """(path, target, seed) -> (uint8 image fitted to `image_size`, target): each file read once,
    left out and recorded by `unreadable` when cut short, decoded where the crop or the evaluation
    transform reads it (`finetune.data.decoding`). `exact`: a squash always antialiased, as PIL's
    (validation and test), not only past 2x shrinking (training)."""
    size = tuple(image_size[:2])

    def decoded(path, target, seed):
        contents = tf.io.read_file(path)
        complete = unreadable.record(path, decoding.looks_complete(contents))

        def decode():
            if evaluation is not None:
                return tf.cast(decoding.decode_for_evaluation(contents, evaluation, size), tf.uint8)
            return decoding.decode_cropped(contents, size, seed, geometry.crop_area, geometry.flip,
                                           antialias=True if exact else None)

        image = tf.cond(complete, decode, lambda: tf.zeros((*size, 3), tf.uint8))
        return fit_image(image, image_size), target, complete

    def kept(image, target, complete):
        return complete

    def without_flag(image, target, complete):
        return image, target

    # One map reads, checks (recording what is cut short) and decodes, and flags each image for a plain
    # filter after it;
    # ignore_errors: a last guard for damage only decoding finds, and files changed since they were checked
    stream = paths.map(decoded, num_parallel_calls=AUTOTUNE).ignore_errors(log_warning=True)
    return stream.filter(kept).map(without_flag)


def augment_geometry(images: tf.data.Dataset, image_size, geometry: Geometry) -> tf.data.Dataset:
    """(decoded image, target, seed) -> (uint8 image cropped, fitted to `image_size` and flipped, target)."""
    size = tuple(image_size[:2])

    def cropped(image, target, seed):
        image = fit_image(decoding.crop_decoded(image, size, seed, geometry.crop_area), image_size)
        return decoding.crop_decoded(image, size, seed, flip=geometry.flip), target

    return images.map(cropped, num_parallel_calls=AUTOTUNE)


def image_statistics(images: tf.data.Dataset, max_images: int = STATISTICS_SAMPLE) -> dict:
    """Per-channel "mean"/"std" of pixels in [0, 255], and for RGB "pca_eigval"/"pca_eigvec" (columns,
    largest first) of pixels in [0, 1], AlexNet's lighting noise; from the first `max_images` of a
    stream of uint8 [H, W, C] images. Empty for an empty stream."""
    pixels = []
    for batch in images.take(max_images).batch(256):
        batch = batch.numpy()
        pixels.append(batch.reshape(-1, batch.shape[-1])[::STATISTICS_PIXEL_STRIDE])
    if not pixels:
        return {}
    pixels = np.concatenate(pixels).astype(np.float64)
    statistics = {"mean": pixels.mean(axis=0).tolist(), "std": pixels.std(axis=0).tolist()}
    if pixels.shape[1] == 3:
        eigval, eigvec = np.linalg.eigh(np.cov((pixels / 255.0).T))
        order = np.argsort(eigval)[::-1]
        statistics["pca_eigval"] = np.maximum(eigval[order], 0.0).tolist()
        statistics["pca_eigvec"] = eigvec[:, order].tolist()
    return statistics


def _balanced_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """n / (classes x count) per class, as sklearn's "balanced"; 0 for a class without examples."""
    counts = np.bincount(labels.astype(np.int64), minlength=num_classes)
    total = counts.sum()
    return {index: float(total / (num_classes * count)) if count else 0.0 for index, count in enumerate(counts)}


@dataclasses.dataclass
class DataBundle:
    """The splits of a dataset as batched tf.data streams of (images float32 [B,H,W,C], labels)."""

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset | None
    class_names: list[str]
    sizes: dict[str, int]
    description: str
    skipped: list[str]
    # uint8, decoded and resized, unshuffled, before augmentation; made on first use, as building a
    # decoding stream (tracing its functions) takes a few tenths of a second
    _train_images: Callable[[], tf.data.Dataset]
    _train_labels: tf.data.Dataset  # int labels of the same examples, images left undecoded
    unreadable: decoding.UnreadableFiles | None = None  # files the streams left out as they met them

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @functools.cached_property
    def statistics(self) -> dict:
        """Pixel statistics of the training split only (see `image_statistics`), computed on first use."""
        return image_statistics(self._train_images())

    @functools.cached_property
    def class_weights(self) -> dict[int, float]:
        """Balanced class weights from the training labels, for `model.fit(class_weight=...)`."""
        labels = np.concatenate([batch.numpy() for batch in self._train_labels.batch(4096)] or [np.zeros(0, int)])
        return _balanced_weights(labels, self.num_classes)


def check_image_size(image_size) -> tuple[int, int, int]:
    try:
        size = tuple(int(value) for value in image_size)
    except (TypeError, ValueError):
        size = ()
    if len(size) != 3 or size[-1] not in (1, 3) or min(size[:2]) < 1:
        raise ZooError(f"image_size must be (height, width, channels) with 1 or 3 channels, got {image_size}")
    return size


def _of_class(wanted: int):
    def keep(item, label):
        return tf.equal(label, wanted)

    return keep


def balanced(items: tf.data.Dataset, mode: str, num_classes: int, seed: int, decode) -> tuple[tf.data.Dataset, int]:
    """Training epochs that draw every class equally often: per class, its examples decoded (and
    cached) by `decode`, shuffled and repeated, mixed by `sample_from_datasets` with equal weights.
    Returns the stream and its epoch size: the training split's size when oversampling, the number
    of classes times the rarest class's count when undersampling (the course notes' "label shuffle"
    for class-imbalanced data; Keras's class weights are the other remedy)."""
    if mode not in BALANCE_MODES:
        raise ZooError(f"balance must be one of {', '.join(BALANCE_MODES)}, not {mode!r}")
    counts = np.bincount(labels_of(items), minlength=num_classes)
    present = [label for label in range(num_classes) if counts[label]]
    per_class = [decode(items.filter(_of_class(label))).repeat() for label in present]
    mixed = tf.data.Dataset.sample_from_datasets(per_class, weights=[1.0 / len(present)] * len(present), seed=seed)
    epoch_size = int(counts.sum()) if mode == "oversample" else len(present) * int(counts[present].min())
    return mixed.take(epoch_size), epoch_size


def decoded_bytes(sizes: dict[str, int], image_size) -> int:
    """Memory that every split's decoded, resized uint8 images take together."""
    height, width, channels = image_size
    return sum(sizes.values()) * height * width * channels


def load_data(spec: str | None = None, *, image_size, batch_size: int = 32, preprocessing=None, augment=None,
              validation_fraction: float = 0.2, seed: int = 0, data_dir: str | None = None, download: bool = True,
              cache: bool | None = None, drop_remainder: bool = False, shuffle_buffer: int = 10000,
              max_examples: int | None = None, label_mode: str = "int", labels=None, folds: int | None = None,
              fold: int | None = None, balance: str | None = None,
              evaluation: EvalTransform | None = None, random_crop: tuple[float, float] | None = None,
              random_flip: bool = False, data_service: str | None = None) -> DataBundle:
    """Resolves `spec` and returns batched train/validation/test streams sized for a model.

    Args:
        spec: a data spec (module docstring); None means the built-in shapes.
        image_size: (height, width, channels) the model takes; channels 1 or 3.
        batch_size: the global batch size.
        preprocessing: a zoo.preprocessing.Preprocessing applied last; None keeps pixels in [0, 255].
        augment: fn(images, labels) -> (images, labels) for training batches, on pixels in [0, 255].
        validation_fraction: held out of train, by `seed`, when the source has no validation split.
        seed: the validation split, the order of folders' files and the training shuffle.
        data_dir: where TFDS data is (see `resolve_data_dir`).
        download: allow TFDS downloads; off, only prepared data is used (built-ins are still generated).
        cache: keep decoded, resized uint8 images in memory (augmentation stays random per epoch);
            None (the default) does so when they fit in AUTO_CACHE_BYTES.
        drop_remainder: drop the last, partial training batch.
        shuffle_buffer: 0 turns shuffling off (e.g. for evaluation or exact comparisons).
        max_examples: at most this many examples per split.
        label_mode: "int" or "categorical" (one-hot, as mixup and label smoothing need).
        labels: a CSV of image file names and labels for a folder spec (found by itself when the
            folder holds labels.csv or train.csv; `finetune.data.label_files`). With no spec, its
            folder is the data.
        folds, fold: k-fold cross-validation: the training data (with any validation split of the
            source) in `folds` stratified folds, fold `fold` (from 0) for validation; test untouched.
        balance: None, or the class balance of training epochs: "oversample" (epochs as long as
            the training split, each class drawn equally often, rare ones repeated) or
            "undersample" (epochs of as many examples of each class as the rarest has).
        evaluation: how validation and test images are resized and cropped to the input (the
            evaluation transform of the weights' source, `zoo.eval_transform`); None, or a squash,
            resizes them as training images are before augmentation (`fit_image`).
        random_crop: (min, max) area of training images' random-resized-crops, as fractions of the
            image (aspect ratios 3/4 to 4/3, torchvision's `RandomResizedCrop`), drawn on the image
            as stored (module docstring); None: no crop.
        random_flip: flip training images left-right at random.
        data_service: the address of a tf.data service dispatcher ("grpc://host:port"): the training
            stream's reading and decoding run on its workers, each example once per epoch
            (`finetune.data.service`); the other streams stay local.
    """
    if label_mode not in LABEL_MODES:
        raise ZooError(f"label_mode must be 'int' or 'categorical', not {label_mode!r}")
    if batch_size < 1:
        raise ZooError(f"batch_size must be at least 1, got {batch_size}")
    image_size = check_image_size(image_size)
    geometry = Geometry(check_crop_area(random_crop), bool(random_flip))
    source = open_source(parse_spec(labelled_spec(spec, labels)), data_dir, download, seed, labels)
    if len(source.class_names) < 2:
        raise ZooError(f"{source.description} has {len(source.class_names)} class(es): a classifier needs at least two")
    if data_service is not None:
        service.check_usable(source, balance, carved=folds is not None or "validation" not in source.splits
                             or max_examples is not None)
        cache = False  # the workers read every epoch: a cache would live, and die, on them
    if folds is not None:
        carve_fold(source, folds, fold or 0, seed)
    else:
        carve_validation(source, validation_fraction, seed)
    cap(source, max_examples)
    if cache is None:
        cache = decoded_bytes(source.sizes, image_size) <= AUTO_CACHE_BYTES
    if not cache:  # with `cache`, the decoded images are kept instead
        keep_small_items_in_memory(source)
    if source.sizes.get("train", 0) == 0:
        raise ZooError(f"{source.description} has no training examples")
    num_classes = len(source.class_names)
    normalize = preprocessing_layer(preprocessing.for_channels(image_size[-1])) if preprocessing is not None else None

    if evaluation is not None and evaluation.resize_mode == SQUASH:
        evaluation = None

    unreadable = decoding.UnreadableFiles()
    on_workers = decoding.UnreadableFiles(print_only=True)  # a service worker cannot write to the trainer's table

    def decoded(items, role="train", augmented=False, remote=False):
        """(item, target) -> (uint8 image, target); `augmented`: with the training geometry."""
        evaluated = None if role == "train" else evaluation
        if source.files:
            return decode_files(with_seeds(items, seed), image_size, on_workers if remote else unreadable,
                                evaluated, geometry if augmented else Geometry(), exact=role != "train")
        if augmented:  # decoded whole by the source, then cropped
            def decode_one(item, target, pair):
                return source.decode(item), target, pair

            return augment_geometry(with_seeds(items, seed).map(decode_one, num_parallel_calls=AUTOTUNE),
                                    image_size, geometry)
        return decode_items(source, items, image_size, evaluated)

    def finish(images, training):
        def to_model(batch_images, labels):
            if label_mode == "categorical":
                labels = tf.one_hot(labels, num_classes)
            return tf.cast(batch_images, tf.float32), labels

        batches = images.batch(batch_size, drop_remainder=drop_remainder and training)
        batches = batches.map(to_model, num_parallel_calls=AUTOTUNE)
        if training and augment is not None:
            batches = batches.map(augment, num_parallel_calls=AUTOTUNE)
        if normalize is not None:
            batches = batches.map(lambda batch_images, labels: (normalize(batch_images), labels),
                                  num_parallel_calls=AUTOTUNE)
        return batches.prefetch(AUTOTUNE).with_options(STREAM_OPTIONS)

    def shuffled(dataset, role):
        buffer = min(shuffle_buffer, max(source.sizes[role], 1))
        return dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)

    def decoded_and_shuffled(items, role, training):
        augmented = role == "train" and geometry.active
        if cache:
            images = decoded(items, role).cache()
            images = shuffled(images, role) if training else images
            return augment_geometry(with_seeds(images, seed), image_size, geometry) if augmented else images
        items = shuffled(items, role) if training else items  # shuffle paths or bytes, not pixels
        remote = role == "train" and data_service is not None
        images = decoded(items, role, augmented, remote)
        return service.distribute(images, data_service) if remote else images

    streams = {}
    epoch_size = source.sizes["train"]
    for role, items in source.splits.items():
        training = role == "train" and shuffle_buffer > 0
        if role == "train" and balance is not None:
            images, epoch_size = balanced(items, balance, num_classes, seed,
                                          lambda class_items: decoded_and_shuffled(class_items, role, True))
        else:
            images = decoded_and_shuffled(items, role, training)
        streams[role] = finish(images, role == "train")
    sizes = {role: source.sizes[role] for role in ("train", "validation", "test") if role in source.sizes}
    sizes["train"] = epoch_size
    described = ", ".join(f"{role} {size}" for role, size in sizes.items())
    return DataBundle(
        train=streams["train"], validation=streams["validation"], test=streams.get("test"),
        class_names=list(source.class_names), sizes=sizes,
        description=f"{source.description} ({num_classes} classes; {described})",
        skipped=source.skipped,
        _train_images=lambda: decoded(source.splits["train"]).map(lambda image, label: image),
        _train_labels=source.splits["train"].map(lambda item, label: label),
        unreadable=unreadable,
    )


def check_crop_area(area) -> tuple[float, float] | None:
    if area is None:
        return None
    try:
        low, high = (float(value) for value in area)
    except (TypeError, ValueError):
        low = high = -1.0
    if not 0 < low <= high <= 1:
        raise ZooError(f"random_crop must be (min, max) fractions of the image area with 0 < min <= max <= 1, "
                       f"got {area}")
    return low, high


def read_statistics(spec: str | None = None, *, image_size, validation_fraction: float = 0.2, seed: int = 0,
                    data_dir: str | None = None, download: bool = True, max_examples: int | None = None,
                    labels=None) -> dict:
    """The training split's pixel statistics (`DataBundle.statistics`) of a data spec, without training."""
    return load_data(spec, image_size=image_size, validation_fraction=validation_fraction, seed=seed,
                     data_dir=data_dir, download=download, max_examples=max_examples, shuffle_buffer=0,
                     labels=labels).statistics


def load_images(paths, image_size, preprocessing=None, batch_size: int = 64):
    """Reads image files to predict on, checked like training data.

    Returns (images float32 [N, H, W, C], the paths read, skipped (path, reason) pairs); images are
    in [0, 255], or preprocessed when `preprocessing` (a zoo.preprocessing.Preprocessing) is given.
    """
    image_size = check_image_size(image_size)
    paths = [str(path) for path in paths]
    checked = image_files.check_files(paths, decode=True)  # nothing may be dropped later: decode now
    if checked.skipped:
        log.warning(image_files.summarize_skipped(checked.skipped, "the given images"))
    if not checked.paths:
        return np.zeros((0, *image_size), np.float32), [], checked.skipped
    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(files.path_bytes(checked.paths), tf.string))
    dataset = dataset.map(lambda path: fit_image(read_and_decode(path), image_size), num_parallel_calls=AUTOTUNE)
    images = np.concatenate([batch.numpy() for batch in dataset.batch(batch_size)]).astype(np.float32)
    if preprocessing is not None:
        images = np.asarray(preprocessing_layer(preprocessing.for_channels(image_size[-1]))(images))
    return images, [paths[index] for index in checked.indices], checked.skipped
