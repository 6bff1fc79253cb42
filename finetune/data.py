"""Input pipelines: one data spec string, resolved to tf.data streams sized for a zoo model.

A data spec is one of
- ``builtin:NAME[/CONFIG]`` (and the default, None: ``builtin:zoo_shapes``): the project's own
  datasets, real TFDS builders generated locally (``finetune.datasets``);
- ``tfds:NAME[/CONFIG][:SPLIT]``: any TFDS dataset, prepared in ``data_dir`` (the argument, else
  ``$ZOO_DATA_DIR``, else TFDS's default), downloaded when ``download`` is true;
- a folder of class subfolders of images (JPEG/PNG/BMP/GIF), optionally under ``train/``,
  ``val/`` (or ``validation/``) and ``test/``. Every file is checked before training: unreadable
  ones are skipped and reported, never met mid-epoch.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from finetune import images as image_files
from zoo.errors import ZooError

log = logging.getLogger(__name__)

DEFAULT_SPEC = "builtin:zoo_shapes"
DEFAULT_CAPTIONS_SPEC = "builtin:zoo_shape_captions"
VALIDATION_NAMES = ("validation", "val", "valid", "dev")
STATISTICS_SAMPLE = 2000  # images the mean/std and PCA statistics are estimated from
AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass(frozen=True)
class DataSpec:
    kind: str  # "builtin", "tfds" or "folder"
    name: str  # dataset name (with /CONFIG) or folder path
    split: str | None = None

    def __str__(self) -> str:
        if self.kind == "folder":
            return self.name
        return f"{self.kind}:{self.name}" + (f":{self.split}" if self.split else "")


def parse_spec(spec: str | None, default: str = DEFAULT_SPEC) -> DataSpec:
    """Reads a data spec string (see the module docstring)."""
    spec = default if spec is None else str(spec).strip()
    if not spec:
        raise ZooError("the data spec is empty; give builtin:NAME, tfds:NAME or a folder")
    for kind in ("builtin", "tfds"):
        if spec.startswith(kind + ":"):
            rest = spec[len(kind) + 1:]
            name, _, split = rest.partition(":")
            if not name or name.startswith("/") or name.endswith("/"):
                raise ZooError(f"bad data spec {spec!r}: expected {kind}:NAME[/CONFIG][:SPLIT]")
            return DataSpec(kind, name, split or None)
    if ":" in spec.split("/")[0] and not Path(spec).exists():
        raise ZooError(f"bad data spec {spec!r}: use builtin:NAME, tfds:NAME[/CONFIG][:SPLIT] or a folder path")
    return DataSpec("folder", spec)


def resolve_data_dir(data_dir: str | None) -> str | None:
    return data_dir or os.environ.get("ZOO_DATA_DIR") or None


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
    _train_images: tf.data.Dataset  # decoded and resized, unbatched, before augmentation: for statistics
    _train_labels: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @functools.cached_property
    def statistics(self) -> dict:
        """Per-channel mean/std (pixels in [0, 255]) and the PCA eigen-decomposition of RGB in
        [0, 1] (AlexNet's lighting noise), from the training split only."""
        pixels = []
        for image in self._train_images.take(STATISTICS_SAMPLE):
            pixels.append(image.numpy().reshape(-1, image.shape[-1])[::7])  # every 7th pixel is plenty
        if not pixels:
            return {}
        pixels = np.concatenate(pixels).astype(np.float64)
        statistics = {"mean": pixels.mean(axis=0).tolist(), "std": pixels.std(axis=0).tolist()}
        if pixels.shape[1] == 3:
            eigval, eigvec = np.linalg.eigh(np.cov((pixels / 255.0).T))
            order = np.argsort(eigval)[::-1]
            statistics["pca_eigval"] = eigval[order].tolist()
            statistics["pca_eigvec"] = eigvec[:, order].tolist()
        return statistics

    @functools.cached_property
    def class_weights(self) -> dict[int, float]:
        """Balanced weights (n / (classes x count)) from the training labels."""
        labels = self._train_labels
        counts = np.bincount(labels, minlength=self.num_classes) if labels is not None else np.ones(self.num_classes)
        total = counts.sum()
        return {index: float(total / (self.num_classes * count)) if count else 0.0 for index, count in enumerate(counts)}


# -- sources: each gives unbatched (uint8 image, int label) datasets per split --------------------

@dataclasses.dataclass
class Source:
    splits: dict[str, tf.data.Dataset]  # "train" and maybe "validation", "test"; (image, label), unshuffled
    sizes: dict[str, int]
    class_names: list[str]
    train_labels: np.ndarray | None
    skipped: list[str]
    description: str


def _tfds_builder(spec: DataSpec, data_dir: str | None):
    import tensorflow_datasets as tfds

    if spec.kind == "builtin":
        from finetune.datasets import BUILTIN_DATASETS

        base = spec.name.split("/")[0]
        if base not in BUILTIN_DATASETS:
            raise ZooError(f"unknown built-in dataset {base!r}; built-in: {', '.join(sorted(BUILTIN_DATASETS))}")
    else:
        import finetune.datasets  # noqa: F401  (tfds:zoo_shapes names the built-ins too)
    try:
        return tfds.builder(spec.name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as error:
        import difflib

        close = difflib.get_close_matches(spec.name.split("/")[0], tfds.list_builders(), n=3)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise ZooError(f"unknown TFDS dataset {spec.name!r}.{hint}") from error
    except ValueError as error:  # unknown config
        raise ZooError(f"{spec}: {error}") from None


def _prepare(builder, spec: DataSpec, download: bool) -> None:
    if spec.kind == "builtin":
        if not builder.is_prepared():
            log.info("Generating %s into %s (once)", spec, builder.data_dir)
            builder.download_and_prepare()
        return
    if builder.is_prepared():
        return
    if not download:
        raise ZooError(f"{spec} is not prepared in {builder.data_dir} and downloads are off: prepare it on a "
                       f"machine with network (`tfds build {spec.name} --data_dir DIR`) and copy DIR here, "
                       f"or pass --data-dir/ZOO_DATA_DIR pointing at it")
    try:
        builder.download_and_prepare()
    except Exception as error:  # network failures come in many types
        raise ZooError(f"could not download {spec} ({type(error).__name__}: {str(error)[:200]}); with no network, "
                       f"prepare it elsewhere and pass --data-dir, or use --no-download with prepared data") from None


def _tfds_source(spec: DataSpec, data_dir: str | None, download: bool) -> Source:
    builder = _tfds_builder(spec, data_dir)
    _prepare(builder, spec, download)
    info = builder.info
    image_key, label_key = info.supervised_keys if info.supervised_keys else ("image", "label")
    if label_key not in info.features or not hasattr(info.features[label_key], "names"):
        raise ZooError(f"{spec} has no class labels to train a classifier on")
    class_names = list(info.features[label_key].names)

    def read(split):
        dataset = builder.as_dataset(split=split, shuffle_files=False)
        return dataset.map(lambda example: (example[image_key], tf.cast(example[label_key], tf.int32)),
                           num_parallel_calls=AUTOTUNE)

    available = set(info.splits.keys())
    splits, sizes = {}, {}
    if spec.split:
        names = {"train": spec.split}
    else:
        if "train" not in available:
            raise ZooError(f"{spec} has no train split (it has {', '.join(sorted(available))}); name one: "
                           f"tfds:{spec.name}:SPLIT")
        names = {"train": "train"}
        validation = next((name for name in VALIDATION_NAMES if name in available), None)
        if validation:
            names["validation"] = validation
        if "test" in available:
            names["test"] = "test"
    for role, split in names.items():
        try:
            sizes[role] = info.splits[split].num_examples
        except (KeyError, ValueError) as error:
            raise ZooError(f"{spec}: no split {split!r} ({error}); it has {', '.join(sorted(available))}") from None
        splits[role] = read(split)
    return Source(splits, sizes, class_names, None, [], str(spec))


def _folder_source(spec: DataSpec) -> Source:
    root = Path(spec.name).expanduser()
    if not root.exists():
        raise ZooError(f"no such folder: {root}")
    if not root.is_dir():
        raise ZooError(f"{root} is not a folder: a data folder holds one subfolder of images per class")
    layout = image_files.scan_folder(root)
    splits, sizes = {}, {}
    for role, (paths, labels) in layout.splits.items():
        sizes[role] = len(paths)
        splits[role] = tf.data.Dataset.from_tensor_slices(
            (tf.constant(paths, tf.string), tf.constant(labels, tf.int32))
        ).map(lambda path, label: (image_files.decode(tf.io.read_file(path)), label), num_parallel_calls=AUTOTUNE)
    if layout.skipped:
        shown = ", ".join(f"{Path(path).name} ({reason})" for path, reason in layout.skipped[:5])
        more = f" and {len(layout.skipped) - 5} more" if len(layout.skipped) > 5 else ""
        log.warning("Skipped %d unreadable files in %s: %s%s", len(layout.skipped), root, shown, more)
    return Source(splits, sizes, layout.class_names, np.asarray(layout.splits["train"][1]),
                  [path for path, _ in layout.skipped], str(root))


def _open_source(spec: DataSpec, data_dir, download) -> Source:
    if spec.kind == "folder":
        return _folder_source(spec)
    return _tfds_source(spec, resolve_data_dir(data_dir), download)


def _carve_validation(source: Source, fraction: float, seed: int) -> None:
    """A seeded random validation split out of train, for sources that have none."""
    if "validation" in source.splits:
        return
    if not 0 < fraction < 1:
        raise ZooError(f"validation_fraction must be in (0, 1), got {fraction}")
    total = source.sizes["train"]
    count = max(1, int(round(total * fraction)))
    if total - count < 1:
        raise ZooError(f"{source.description}: {total} training examples are too few to hold out a validation split")
    held_out = np.zeros(total, dtype=bool)
    held_out[np.random.default_rng(seed).permutation(total)[:count]] = True
    mask = tf.constant(held_out)

    def held(index, example):
        return mask[index]

    def kept(index, example):
        return tf.logical_not(mask[index])

    def drop_index(index, example):
        return example

    indexed = source.splits["train"].enumerate()
    source.splits["validation"] = indexed.filter(held).map(drop_index)
    source.splits["train"] = indexed.filter(kept).map(drop_index)
    source.sizes["validation"], source.sizes["train"] = count, total - count
    if source.train_labels is not None:
        source.train_labels = source.train_labels[~held_out]


def _cap(source: Source, max_examples: int | None) -> None:
    if not max_examples:
        return
    for role in source.splits:
        source.splits[role] = source.splits[role].take(max_examples)
        source.sizes[role] = min(source.sizes[role], max_examples)
    if source.train_labels is not None:
        source.train_labels = source.train_labels[:max_examples]


def fit_image(image, image_size):
    """Channel conversion (gray <-> RGB, alpha dropped) and resize to (H, W), as float32 in [0, 255]."""
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
    image = tf.image.resize(tf.cast(image, tf.float32), (height, width), antialias=True)
    return tf.ensure_shape(tf.clip_by_value(image, 0.0, 255.0), (height, width, channels))


def load_data(spec: str | None = None, *, image_size, batch_size: int = 32, preprocessing=None, augment=None,
              validation_fraction: float = 0.2, seed: int = 0, data_dir: str | None = None, download: bool = True,
              cache: bool = False, drop_remainder: bool = False, shuffle_buffer: int = 10000,
              max_examples: int | None = None, label_mode: str = "int") -> DataBundle:
    """Resolves `spec` and returns batched train/validation/test streams sized for a model.

    Args:
        spec: a data spec (module docstring); None means the built-in shapes.
        image_size: (height, width, channels) the model takes; channels 1 or 3.
        batch_size: the global batch size.
        preprocessing: a zoo.preprocessing.Preprocessing applied last; None keeps pixels in [0, 255].
        augment: fn(images, labels) -> (images, labels) for training batches, on pixels in [0, 255].
        validation_fraction: held out of train, by `seed`, when the source has no validation split.
        cache: keep decoded, resized images in memory (augmentation stays random per epoch).
        shuffle_buffer: 0 turns shuffling off (e.g. for evaluation or exact comparisons).
        max_examples: at most this many examples per split.
        label_mode: "int" or "categorical" (one-hot, as mixup and label smoothing need).
    """
    if label_mode not in ("int", "categorical"):
        raise ZooError(f"label_mode must be 'int' or 'categorical', not {label_mode!r}")
    image_size = tuple(int(value) for value in image_size)
    if len(image_size) != 3 or image_size[-1] not in (1, 3):
        raise ZooError(f"image_size must be (height, width, 1 or 3), got {image_size}")
    parsed = parse_spec(spec)
    source = _open_source(parsed, data_dir, download)
    if len(source.class_names) < 2:
        raise ZooError(f"{source.description} has {len(source.class_names)} class(es): a classifier needs at least two")
    _carve_validation(source, validation_fraction, seed)
    _cap(source, max_examples)
    if source.sizes.get("train", 0) == 0:
        raise ZooError(f"{source.description} has no training examples")
    num_classes = len(source.class_names)
    normalize = preprocessing.for_channels(image_size[-1]).layer() if preprocessing is not None else None

    def sized(dataset):
        return dataset.map(lambda image, label: (fit_image(image, image_size), label), num_parallel_calls=AUTOTUNE)

    def finish(dataset, training):
        if label_mode == "categorical":
            dataset = dataset.map(lambda image, label: (image, tf.one_hot(label, num_classes)),
                                  num_parallel_calls=AUTOTUNE)
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder and training)
        if training and augment is not None:
            dataset = dataset.map(augment, num_parallel_calls=AUTOTUNE)
        if normalize is not None:
            dataset = dataset.map(lambda images, labels: (normalize(images), labels), num_parallel_calls=AUTOTUNE)
        return dataset.prefetch(AUTOTUNE)

    streams = {}
    for role, dataset in source.splits.items():
        dataset = sized(dataset)
        if cache:
            dataset = dataset.map(lambda image, label: (tf.cast(tf.round(image), tf.uint8), label)).cache().map(
                lambda image, label: (tf.cast(image, tf.float32), label))
        if role == "train" and shuffle_buffer:
            dataset = dataset.shuffle(min(shuffle_buffer, max(source.sizes[role], 1)), seed=seed,
                                      reshuffle_each_iteration=True)
        streams[role] = finish(dataset, role == "train")
    described = ", ".join(f"{role} {size}" for role, size in source.sizes.items())
    return DataBundle(
        train=streams["train"], validation=streams["validation"], test=streams.get("test"),
        class_names=list(source.class_names), sizes=dict(source.sizes),
        description=f"{source.description} ({num_classes} classes; {described})",
        skipped=source.skipped, _train_images=sized(source.splits["train"]).map(lambda image, label: image),
        _train_labels=source.train_labels,
    )


# -- captions ---------------------------------------------------------------------------------

@dataclasses.dataclass
class CaptionBundle:
    """Unbatched (image float32 [H,W,C] in [0, 255], captions tf.string [R]) per split."""

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset | None
    sizes: dict[str, int]
    description: str
    skipped: list[str] = dataclasses.field(default_factory=list)


def load_captions(spec: str | None = None, *, image_size, batch_size: int = 32, seed: int = 0,
                  data_dir: str | None = None, download: bool = True, max_examples: int | None = None,
                  validation_fraction: float = 0.1) -> CaptionBundle:
    """Images with all their reference captions: `builtin:zoo_shape_captions` (default), a
    Flickr8k-style folder (images plus captions.csv `image,caption` or captions.txt / *.token
    `image#n<TAB>caption`), or `tfds:coco_captions` (prepared data)."""
    del batch_size  # the captioner batches (image, caption) pairs itself
    size = (image_size, image_size, 3) if isinstance(image_size, int) else tuple(image_size)
    parsed = parse_spec(spec, default=DEFAULT_CAPTIONS_SPEC)
    if parsed.kind == "folder":
        source = image_files.caption_folder(Path(parsed.name).expanduser())
        splits = {"train": tf.data.Dataset.from_tensor_slices((source.paths, source.captions)).map(
            lambda path, captions: (image_files.decode(tf.io.read_file(path)), captions), num_parallel_calls=AUTOTUNE)}
        sizes = {"train": len(source.paths)}
        description, skipped = str(parsed), source.skipped
    else:
        builder = _tfds_builder(parsed, resolve_data_dir(data_dir))
        _prepare(builder, parsed, download)
        info = builder.info
        splits, sizes = {}, {}
        for role, names in (("train", ("train",)), ("validation", VALIDATION_NAMES), ("test", ("test",))):
            name = next((candidate for candidate in names if candidate in info.splits), None)
            if name is None:
                continue
            dataset = builder.as_dataset(split=name, shuffle_files=False)
            splits[role] = dataset.map(_caption_example, num_parallel_calls=AUTOTUNE)
            sizes[role] = info.splits[name].num_examples
        description, skipped = str(parsed), []
    caption_source = Source(splits, sizes, ["captions"], None, skipped, description)
    if "validation" not in splits:
        _carve_validation(caption_source, validation_fraction, seed)
    _cap(caption_source, max_examples)
    resized = {role: dataset.map(lambda image, captions: (fit_image(image, size), captions),
                                 num_parallel_calls=AUTOTUNE)
               for role, dataset in caption_source.splits.items()}
    return CaptionBundle(resized["train"], resized["validation"], resized.get("test"), dict(caption_source.sizes),
                         description, skipped)


def _caption_example(example):
    captions = example["captions"]
    if isinstance(captions, dict):  # coco_captions: {"captions": {"text": [...]}}
        captions = captions["text"]
    return example["image"], captions
