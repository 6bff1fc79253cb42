"""Input pipelines: one data spec string, resolved to tf.data streams sized for a zoo model.

A data spec is one of
- ``builtin:NAME[/CONFIG]`` (and the default, None: ``builtin:zoo_shapes``): the project's own
  datasets, real TFDS builders generated locally on first use (``finetune.datasets``);
- ``tfds:NAME[/CONFIG][:SPLIT]``: any TFDS dataset, prepared in ``data_dir`` (the argument, else
  ``$ZOO_DATA_DIR``, else TFDS's default), downloaded when ``download`` is true. SPLIT (TFDS
  syntax, e.g. ``train[:10%]``) replaces the training split; validation is then carved from it;
- a folder of class subfolders of images (JPEG/PNG/BMP/GIF), optionally under ``train/``,
  ``val/`` (or ``validation/``) and ``test/``. Every file is checked before training
  (``finetune.images``): unreadable ones are skipped and reported, never met mid-epoch.

Each source gives, per split, a stream of (undecoded item, label): a file path or encoded bytes.
Shuffling happens on those, so that the shuffle buffer holds bytes rather than decoded images.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf

from finetune import images as image_files
from zoo.errors import ZooError

log = logging.getLogger(__name__)

DEFAULT_SPEC = "builtin:zoo_shapes"
DEFAULT_CAPTIONS_SPEC = "builtin:zoo_shape_captions"
SPEC_KINDS = ("builtin", "tfds")
VALIDATION_NAMES = ("validation", "val", "valid", "dev")
SMALL_DATASET_BYTES = 250 * 2**20  # TFDS's own auto-cache limit: below it, encoded examples stay in memory
# cache=None keeps the decoded, resized uint8 images in memory when all splits together take at most
# this much: decoding then happens once, not every epoch (LeNet-5 on zoo_shapes/32 waited on PNG
# decoding for ~40% of each epoch: scripts/bench_input.py).
AUTO_CACHE_BYTES = 512 * 2**20
STATISTICS_SAMPLE = 2000  # training images the mean/std and PCA statistics are estimated from
STATISTICS_PIXEL_STRIDE = 7  # every 7th pixel of those is plenty
LABEL_MODES = ("int", "categorical")
AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """A parsed data spec: kind "builtin", "tfds" or "folder"; name (with /CONFIG) or folder path; split."""

    kind: str
    name: str
    split: str | None = None

    def __str__(self) -> str:
        if self.kind == "folder":
            return self.name
        return f"{self.kind}:{self.name}" + (f":{self.split}" if self.split else "")


def parse_spec(spec: str | None, default: str = DEFAULT_SPEC) -> DataSpec:
    """Reads a data spec string (see the module docstring); None means `default`."""
    spec = default if spec is None else str(spec).strip()
    if not spec:
        raise ZooError("the data spec is empty; give builtin:NAME, tfds:NAME[/CONFIG][:SPLIT] or a folder")
    for kind in SPEC_KINDS:
        if spec.startswith(kind + ":"):
            name, _, split = spec[len(kind) + 1:].partition(":")
            if not name or name.startswith("/") or name.endswith("/") or name.count("/") > 1:
                raise ZooError(f"bad data spec {spec!r}: expected {kind}:NAME[/CONFIG][:SPLIT]")
            return DataSpec(kind, name, split or None)
    if ":" in spec.split("/")[0] and not Path(spec).exists():
        raise ZooError(f"bad data spec {spec!r}: use builtin:NAME, tfds:NAME[/CONFIG][:SPLIT] or a folder path")
    return DataSpec("folder", spec)


def resolve_data_dir(data_dir: str | None) -> str | None:
    """Where TFDS data lives: the argument, else $ZOO_DATA_DIR, else None (TFDS's default)."""
    return data_dir or os.environ.get("ZOO_DATA_DIR") or None


# -- sources: per split, unbatched (undecoded item, label) streams and how to decode an item ------

@dataclasses.dataclass
class Source:
    splits: dict[str, tf.data.Dataset]  # role ("train", "validation", "test") -> (item, label), unshuffled
    sizes: dict[str, int]
    decode: Callable  # item -> uint8 image [H, W, C]
    class_names: list[str]
    skipped: list[str]
    description: str
    small: bool = False  # its undecoded items fit in memory: keep them there after the first epoch
    files: bool = False  # its items are file paths, checked before training but read later


def _tfds_builder(spec: DataSpec, data_dir: str | None):
    import tensorflow_datasets as tfds

    from finetune.datasets import BUILTIN_DATASETS  # registers them, so tfds:zoo_shapes works too

    base = spec.name.split("/")[0]
    if spec.kind == "builtin" and base not in BUILTIN_DATASETS:
        close = difflib.get_close_matches(base, list(BUILTIN_DATASETS), n=2, cutoff=0.5)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise ZooError(f"unknown built-in dataset {base!r}.{hint} Built-in: {', '.join(sorted(BUILTIN_DATASETS))}")
    try:
        return tfds.builder(spec.name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as error:
        close = difflib.get_close_matches(base, tfds.list_builders(with_community_datasets=False), n=3)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise ZooError(f"unknown TFDS dataset {base!r}.{hint} See `tfds.list_builders()`.") from error
    except ValueError as error:  # an unknown config
        configs = [config.name for config in getattr(tfds.builder_cls(base), "BUILDER_CONFIGS", [])]
        if configs:
            raise ZooError(f"{spec}: {base} has no config {spec.name.partition('/')[2]!r}; its configs: "
                           f"{', '.join(configs)}") from None
        raise ZooError(f"{spec}: {error}") from None


def _prepare(builder, spec: DataSpec, download: bool) -> None:
    """Makes sure the builder's data is on disk: built-ins are generated (no network involved);
    other TFDS datasets are downloaded only when `download` is true."""
    if builder.is_prepared():
        return
    if spec.kind == "builtin":
        log.info("Generating %s into %s (once)", spec, builder.data_dir)
        builder.download_and_prepare()
        return
    if not download:
        raise ZooError(f"{spec} is not prepared in {builder.data_dir} and downloads are off: prepare it on a "
                       f"machine with network (`tfds build {spec.name} --data_dir DIR`) and copy DIR here, "
                       f"pass --data-dir or set ZOO_DATA_DIR to a folder holding it, or allow downloads")
    try:
        builder.download_and_prepare()
    except Exception as error:  # network failures come in many types
        raise ZooError(f"could not download {spec} ({type(error).__name__}: {str(error)[:200]}); with no network, "
                       f"prepare it elsewhere and pass --data-dir, or use --no-download with prepared data") from None


def _undecoded_reader(builder, image_key: str):
    """(`as_dataset` decoders that leave the images encoded, the decoder to apply later in the pipeline)."""
    import tensorflow_datasets as tfds

    feature = builder.info.features[image_key]
    if isinstance(feature, tfds.features.Image):
        return {image_key: tfds.decode.SkipDecoding()}, feature.decode_example
    return None, tf.identity  # not an encoded image: TFDS hands over the pixels


def _read_split(builder, split: str, decoders):
    """A TFDS split in its stored order, images left as `decoders` says; no TFDS auto-cache, as
    `_keep_small_items_in_memory` caches after the validation split is carved out instead."""
    import tensorflow_datasets as tfds

    return builder.as_dataset(split=split, shuffle_files=False, decoders=decoders,
                              read_config=tfds.ReadConfig(try_autocache=False))


def _is_small(info) -> bool:
    return bool(info.dataset_size) and info.dataset_size <= SMALL_DATASET_BYTES


def _split_names(spec: DataSpec, available: set[str]) -> dict[str, str]:
    """Which TFDS split plays which role."""
    if spec.split:
        return {"train": spec.split}
    if "train" not in available:
        raise ZooError(f"{spec} has no train split (it has {', '.join(sorted(available))}); name one: "
                       f"{spec.kind}:{spec.name}:SPLIT")
    names = {"train": "train"}
    validation = next((name for name in VALIDATION_NAMES if name in available), None)
    if validation:
        names["validation"] = validation
    if "test" in available:
        names["test"] = "test"
    return names


def _split_size(info, spec: DataSpec, split: str) -> int:
    try:
        return info.splits[split].num_examples
    except (KeyError, ValueError) as error:
        raise ZooError(f"{spec}: no split {split!r} ({error}); it has {', '.join(sorted(info.splits.keys()))}"
                       ) from None


def _tfds_source(spec: DataSpec, data_dir: str | None, download: bool) -> Source:
    builder = _tfds_builder(spec, data_dir)
    info = builder.info  # known before the data is prepared: check it first
    image_key, label_key = info.supervised_keys if info.supervised_keys else ("image", "label")
    if image_key not in info.features:
        raise ZooError(f"{spec} has no {image_key!r} feature to classify")
    if label_key not in info.features or not hasattr(info.features[label_key], "names"):
        hint = "; for captions use load_captions (`zoo caption`)" if "caption" in str(label_key) else ""
        raise ZooError(f"{spec} has no class labels to train a classifier on{hint}")
    _prepare(builder, spec, download)
    decoders, decode = _undecoded_reader(builder, image_key)
    splits, sizes = {}, {}
    for role, split in _split_names(spec, set(info.splits.keys())).items():
        sizes[role] = _split_size(info, spec, split)
        dataset = _read_split(builder, split, decoders)
        splits[role] = dataset.map(lambda example: (example[image_key], tf.cast(example[label_key], tf.int32)),
                                   num_parallel_calls=AUTOTUNE)
    return Source(splits, sizes, decode, list(info.features[label_key].names), [], str(spec), _is_small(info))


def _read_and_decode(path):
    return image_files.decode(tf.io.read_file(path))


def _folder_source(spec: DataSpec, seed: int) -> Source:
    root = Path(spec.name).expanduser()
    if not root.exists():
        hint = ""
        if "/" not in spec.name and "\\" not in spec.name:
            hint = f"; for a dataset write tfds:{spec.name} or builtin:NAME"
        raise ZooError(f"no such folder: {root}{hint}")
    if not root.is_dir():
        raise ZooError(f"{root} is a file: a data folder holds one subfolder of images per class")
    layout = image_files.scan_folder(root)
    splits, sizes = {}, {}
    for role, (paths, labels) in layout.splits.items():
        # A seeded order, so that capped runs see every class and nothing depends on file names.
        order = np.random.default_rng(seed).permutation(len(paths))
        sizes[role] = len(paths)
        splits[role] = tf.data.Dataset.from_tensor_slices((
            tf.constant([paths[index] for index in order], tf.string),
            tf.constant([labels[index] for index in order], tf.int32),
        ))
    if layout.skipped:
        log.warning(image_files.summarize_skipped(layout.skipped, root))
    return Source(splits, sizes, _read_and_decode, layout.class_names, [path for path, _ in layout.skipped],
                  str(root), files=True)


def _open_source(spec: DataSpec, data_dir, download, seed) -> Source:
    if spec.kind == "folder":
        return _folder_source(spec, seed)
    return _tfds_source(spec, resolve_data_dir(data_dir), download)


def _carve_validation(source: Source, fraction: float, seed: int) -> None:
    """A seeded random validation split out of train, for sources that have none."""
    if "validation" in source.splits:
        return
    if not 0 < fraction < 1:
        raise ZooError(f"validation_fraction must be between 0 and 1 (exclusive), got {fraction}")
    total = source.sizes["train"]
    count = max(1, int(round(total * fraction)))
    if total - count < 1:
        raise ZooError(f"{source.description}: {total} training example(s) are too few to hold out a validation "
                       f"split; add images or give a validation split")
    held_out = np.zeros(total, dtype=bool)
    held_out[np.random.default_rng(seed).permutation(total)[:count]] = True
    mask = tf.constant(held_out)
    # Named functions: AutoGraph cannot tell apart several lambdas on one line.
    def held_out_example(index, example):
        return mask[index]

    def kept_example(index, example):
        return tf.logical_not(mask[index])

    def without_index(index, example):
        return example

    indexed = source.splits["train"].enumerate()
    source.splits["validation"] = indexed.filter(held_out_example).map(without_index)
    source.splits["train"] = indexed.filter(kept_example).map(without_index)
    source.sizes["validation"], source.sizes["train"] = count, total - count


def _keep_small_items_in_memory(source: Source) -> None:
    """Caches a small source's undecoded items, so that every epoch after the first fills its shuffle
    buffer from memory rather than by parsing TFRecords (a pause of ~0.3 s per epoch on zoo_shapes/32)."""
    if source.small:
        source.splits = {role: items.cache() for role, items in source.splits.items()}


def _cap(source: Source, max_examples: int | None) -> None:
    if max_examples is None:
        return
    if max_examples < 1:
        raise ZooError(f"max_examples must be at least 1, got {max_examples}")
    for role in source.splits:
        source.splits[role] = source.splits[role].take(max_examples)
        source.sizes[role] = min(source.sizes[role], max_examples)


# -- images -----------------------------------------------------------------------------------------

def fit_image(image, image_size):
    """A decoded image converted to the model's channels (gray <-> RGB, alpha dropped) and resized
    to (H, W), as uint8: cheap to cache and to shuffle, and exact for images already at size."""
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
    if image.shape[0] != height or image.shape[1] != width:  # known only for fixed-size sources
        resized = tf.image.resize(image, (height, width), antialias=True)
        image = tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)
    return tf.ensure_shape(image, (height, width, channels))


def _decoded(source: Source, items: tf.data.Dataset, image_size) -> tf.data.Dataset:
    """(item, target) -> (uint8 image fitted to `image_size`, target), decoding in parallel."""
    fitted = items.map(lambda item, target: (fit_image(source.decode(item), image_size), target),
                       num_parallel_calls=AUTOTUNE)
    if source.files:
        # A last guard for files changed since they were checked. Only there: over a stream whose
        # reader itself fails (a TFDS file gone), ignore_errors would retry forever.
        fitted = fitted.ignore_errors(log_warning=True)
    return fitted


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


# -- classification ---------------------------------------------------------------------------------

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
    _train_images: tf.data.Dataset  # uint8, decoded and resized, unshuffled, before augmentation
    _train_labels: tf.data.Dataset  # int labels of the same examples, images left undecoded

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @functools.cached_property
    def statistics(self) -> dict:
        """Pixel statistics of the training split only (see `image_statistics`), computed on first use."""
        return image_statistics(self._train_images)

    @functools.cached_property
    def class_weights(self) -> dict[int, float]:
        """Balanced class weights from the training labels, for `model.fit(class_weight=...)`."""
        labels = np.concatenate([batch.numpy() for batch in self._train_labels.batch(4096)] or [np.zeros(0, int)])
        return _balanced_weights(labels, self.num_classes)


def _check_image_size(image_size) -> tuple[int, int, int]:
    try:
        size = tuple(int(value) for value in image_size)
    except (TypeError, ValueError):
        size = ()
    if len(size) != 3 or size[-1] not in (1, 3) or min(size[:2]) < 1:
        raise ZooError(f"image_size must be (height, width, channels) with 1 or 3 channels, got {image_size}")
    return size


def decoded_bytes(sizes: dict[str, int], image_size) -> int:
    """Memory that every split's decoded, resized uint8 images take together."""
    height, width, channels = image_size
    return sum(sizes.values()) * height * width * channels


def load_data(spec: str | None = None, *, image_size, batch_size: int = 32, preprocessing=None, augment=None,
              validation_fraction: float = 0.2, seed: int = 0, data_dir: str | None = None, download: bool = True,
              cache: bool | None = None, drop_remainder: bool = False, shuffle_buffer: int = 10000,
              max_examples: int | None = None, label_mode: str = "int") -> DataBundle:
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
    """
    if label_mode not in LABEL_MODES:
        raise ZooError(f"label_mode must be 'int' or 'categorical', not {label_mode!r}")
    if batch_size < 1:
        raise ZooError(f"batch_size must be at least 1, got {batch_size}")
    image_size = _check_image_size(image_size)
    source = _open_source(parse_spec(spec), data_dir, download, seed)
    if len(source.class_names) < 2:
        raise ZooError(f"{source.description} has {len(source.class_names)} class(es): a classifier needs at least two")
    _carve_validation(source, validation_fraction, seed)
    _cap(source, max_examples)
    if cache is None:
        cache = decoded_bytes(source.sizes, image_size) <= AUTO_CACHE_BYTES
    if not cache:  # with `cache`, the decoded images are kept instead
        _keep_small_items_in_memory(source)
    if source.sizes.get("train", 0) == 0:
        raise ZooError(f"{source.description} has no training examples")
    num_classes = len(source.class_names)
    normalize = preprocessing.for_channels(image_size[-1]).layer() if preprocessing is not None else None

    def decoded(items):
        return _decoded(source, items, image_size)

    def finish(images, training):
        def to_model(batch_images, labels):
            if label_mode == "categorical":
                labels = tf.one_hot(labels, num_classes)
            return tf.cast(batch_images, tf.float32), labels

        batches = images.batch(batch_size, drop_remainder=drop_remainder and training).map(to_model)
        if training and augment is not None:
            batches = batches.map(augment, num_parallel_calls=AUTOTUNE)
        if normalize is not None:
            batches = batches.map(lambda batch_images, labels: (normalize(batch_images), labels),
                                  num_parallel_calls=AUTOTUNE)
        return batches.prefetch(AUTOTUNE)

    def shuffled(dataset, role):
        buffer = min(shuffle_buffer, max(source.sizes[role], 1))
        return dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)

    streams = {}
    for role, items in source.splits.items():
        training = role == "train" and shuffle_buffer > 0
        if cache:
            images = decoded(items).cache()
            images = shuffled(images, role) if training else images
        else:  # shuffle paths or encoded bytes, not decoded images
            images = decoded(shuffled(items, role) if training else items)
        streams[role] = finish(images, role == "train")
    sizes = {role: source.sizes[role] for role in ("train", "validation", "test") if role in source.sizes}
    described = ", ".join(f"{role} {size}" for role, size in sizes.items())
    return DataBundle(
        train=streams["train"], validation=streams["validation"], test=streams.get("test"),
        class_names=list(source.class_names), sizes=sizes,
        description=f"{source.description} ({num_classes} classes; {described})",
        skipped=source.skipped,
        _train_images=decoded(source.splits["train"]).map(lambda image, label: image),
        _train_labels=source.splits["train"].map(lambda item, label: label),
    )


def read_statistics(spec: str | None = None, *, image_size, validation_fraction: float = 0.2, seed: int = 0,
                    data_dir: str | None = None, download: bool = True, max_examples: int | None = None) -> dict:
    """The training split's pixel statistics (`DataBundle.statistics`) of a data spec, without training."""
    return load_data(spec, image_size=image_size, validation_fraction=validation_fraction, seed=seed,
                     data_dir=data_dir, download=download, max_examples=max_examples, shuffle_buffer=0).statistics


def load_images(paths, image_size, preprocessing=None, batch_size: int = 64):
    """Reads image files to predict on, checked like training data.

    Returns (images float32 [N, H, W, C], the paths read, skipped (path, reason) pairs); images are
    in [0, 255], or preprocessed when `preprocessing` (a zoo.preprocessing.Preprocessing) is given.
    """
    image_size = _check_image_size(image_size)
    paths = [str(path) for path in paths]
    checked = image_files.check_files(paths)
    if checked.skipped:
        log.warning(image_files.summarize_skipped(checked.skipped, "the given images"))
    if not checked.paths:
        return np.zeros((0, *image_size), np.float32), [], checked.skipped
    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(checked.paths, tf.string))
    dataset = dataset.map(lambda path: fit_image(_read_and_decode(path), image_size), num_parallel_calls=AUTOTUNE)
    images = np.concatenate([batch.numpy() for batch in dataset.batch(batch_size)]).astype(np.float32)
    if preprocessing is not None:
        images = np.asarray(preprocessing.for_channels(image_size[-1]).layer()(images))
    return images, [paths[index] for index in checked.indices], checked.skipped


# -- captions ---------------------------------------------------------------------------------------

@dataclasses.dataclass
class CaptionBundle:
    """Unbatched (image float32 [H,W,C] in [0, 255], captions tf.string [R]) per split."""

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset | None
    sizes: dict[str, int]
    description: str
    skipped: list[str] = dataclasses.field(default_factory=list)


def _caption_folder_source(spec: DataSpec) -> Source:
    folder = image_files.caption_folder(Path(spec.name).expanduser())
    if folder.skipped:
        log.warning(image_files.summarize_skipped(folder.skipped, spec.name))
    captions = tf.ragged.constant(folder.captions, dtype=tf.string)
    train = tf.data.Dataset.from_tensor_slices((tf.constant(folder.paths, tf.string), captions))
    return Source({"train": train}, {"train": len(folder.paths)}, _read_and_decode, [],
                  [path for path, _ in folder.skipped], str(spec), files=True)


def _caption_tfds_source(spec: DataSpec, data_dir, download) -> Source:
    builder = _tfds_builder(spec, resolve_data_dir(data_dir))
    info = builder.info
    if "captions" not in info.features:
        raise ZooError(f"{spec} has no captions; captioning takes builtin:zoo_shape_captions, "
                       f"tfds:coco_captions or a folder of images with a captions file")
    _prepare(builder, spec, download)
    decoders, decode = _undecoded_reader(builder, "image")

    def image_and_captions(example):
        captions = example["captions"]
        if isinstance(captions, dict):  # coco_captions: a sequence of {"id", "text"}
            captions = captions["text"]
        return example["image"], captions

    splits, sizes = {}, {}
    for role, name in _split_names(spec, set(info.splits.keys())).items():
        dataset = _read_split(builder, name, decoders)
        splits[role] = dataset.map(image_and_captions, num_parallel_calls=AUTOTUNE)
        sizes[role] = _split_size(info, spec, name)
    return Source(splits, sizes, decode, [], [], str(spec), _is_small(info))


def load_captions(spec: str | None = None, *, image_size, batch_size: int = 32, seed: int = 0,
                  data_dir: str | None = None, download: bool = True, max_examples: int | None = None,
                  validation_fraction: float = 0.1) -> CaptionBundle:
    """Images with all their reference captions: `builtin:zoo_shape_captions` (default), a
    Flickr8k-style folder (images plus captions.csv `image,caption` or captions.txt / *.token
    `image#n<TAB>caption`), or `tfds:coco_captions` (prepared data).

    Args:
        image_size: an int (square RGB) or (height, width, channels).
        batch_size: unused: the captioner batches (image, caption) pairs itself.
        seed: the validation split carved out of train when the source has none.
    """
    del batch_size
    size = _check_image_size((image_size, image_size, 3) if isinstance(image_size, int) else image_size)
    parsed = parse_spec(spec, default=DEFAULT_CAPTIONS_SPEC)
    if parsed.kind == "folder":
        source = _caption_folder_source(parsed)
    else:
        source = _caption_tfds_source(parsed, data_dir, download)
    _carve_validation(source, validation_fraction, seed)
    _cap(source, max_examples)
    _keep_small_items_in_memory(source)

    def pixels(dataset):
        return _decoded(source, dataset, size).map(lambda image, captions: (tf.cast(image, tf.float32), captions))

    streams = {role: pixels(dataset) for role, dataset in source.splits.items()}
    sizes = {role: source.sizes[role] for role in ("train", "validation", "test") if role in source.sizes}
    return CaptionBundle(streams["train"], streams["validation"], streams.get("test"), sizes,
                         source.description, source.skipped)
