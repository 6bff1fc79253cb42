"""TFDS datasets as sources: the builder found (and prepared) by spec, splits read undecoded."""

from __future__ import annotations

import contextlib
import difflib
import logging
import shutil
from pathlib import Path

import filelock
import tensorflow as tf
import tensorflow_datasets as tfds

from finetune.data.datasets import BUILTIN_DATASETS  # registers them, so tfds:zoo_shapes works too
from finetune.data.source import AUTOTUNE, Source
from finetune.data.specs import DataSpec
from zoo.errors import ZooError

log = logging.getLogger(__name__)

VALIDATION_NAMES = ("validation", "val", "valid", "dev")
SMALL_DATASET_BYTES = 250 * 2**20  # TFDS's own auto-cache limit: below it, encoded examples stay in memory
LOCK_NOTICE_SECONDS = 2.0  # how long to wait for another preparer before saying so


def tfds_builder(spec: DataSpec, data_dir: str | None):
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


def prepare(builder, spec: DataSpec, download: bool):
    """Makes sure the builder's data is on disk and returns the builder to read it with: built-ins
    are generated (no network involved); other TFDS datasets are downloaded only when `download`
    is true.

    Preparation holds a lock file beside the data, so that processes sharing a data folder (the
    workers of a multi-worker run, runs started together) prepare it once: the others wait, then
    read what the first one wrote. TFDS writes into an `incomplete.*` folder and renames it when
    done; one left by an interrupted preparation is removed before preparing again.
    """
    if _is_prepared(builder):
        return builder
    with _preparation_lock(builder, spec):
        if _is_prepared(builder):  # prepared by another process while this one waited
            # A fresh builder: this one's info was read before the data existed (no split sizes).
            return tfds.builder(spec.name, data_dir=str(builder.data_dir_root))
        _remove_interrupted_preparations(builder)
        _download_and_prepare(builder, spec, download)
    return builder


def _is_prepared(builder) -> bool:
    # TFDS's own check warns of a missing dataset_info.json when the folder does not exist yet.
    return builder.data_path.exists() and builder.is_prepared()


def _lock_path(builder) -> Path:
    version_folder = Path(builder.data_dir)
    return version_folder.parent / f".{version_folder.name}.lock"


@contextlib.contextmanager
def _preparation_lock(builder, spec: DataSpec):
    """The data's lock file, held while preparing; waits (saying so) while another process holds it."""
    path = _lock_path(builder)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(path)
        try:
            lock.acquire(timeout=LOCK_NOTICE_SECONDS)
        except filelock.Timeout:
            log.warning("Waiting for another process to finish preparing %s in %s", spec, builder.data_dir)
            lock.acquire()
    except OSError as error:
        raise ZooError(f"cannot prepare {spec} in {path.parent}: {error.strerror or error}; pass --data-dir "
                       f"(or set ZOO_DATA_DIR) to a folder you can write to") from None
    try:
        yield
    finally:
        lock.release()


def _remove_interrupted_preparations(builder) -> None:
    """Removes the `incomplete.*` folders of this dataset version: under the lock, nobody is writing
    them, so they are what a killed preparation left."""
    version_folder = Path(builder.data_dir)
    for leftover in version_folder.parent.glob(f"{tfds.core.constants.INCOMPLETE_PREFIX}*_{version_folder.name}"):
        log.info("Removing %s, left by an interrupted preparation", leftover)
        shutil.rmtree(leftover, ignore_errors=True)


def _download_and_prepare(builder, spec: DataSpec, download: bool) -> None:
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


def undecoded_reader(builder, image_key: str):
    """(`as_dataset` decoders that leave the images encoded, the decoder to apply later in the pipeline)."""
    feature = builder.info.features[image_key]
    if isinstance(feature, tfds.features.Image):
        return {image_key: tfds.decode.SkipDecoding()}, feature.decode_example
    return None, tf.identity  # not an encoded image: TFDS hands over the pixels


def read_split(builder, split: str, decoders):
    """A TFDS split in its stored order, images left as `decoders` says; no TFDS auto-cache, as
    `_keep_small_items_in_memory` caches after the validation split is carved out instead."""
    return builder.as_dataset(split=split, shuffle_files=False, decoders=decoders,
                              read_config=tfds.ReadConfig(try_autocache=False))


def is_small(info) -> bool:
    return bool(info.dataset_size) and info.dataset_size <= SMALL_DATASET_BYTES


def split_names(spec: DataSpec, available: set[str]) -> dict[str, str]:
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


def split_size(info, spec: DataSpec, split: str) -> int:
    try:
        return info.splits[split].num_examples
    except (KeyError, ValueError) as error:
        raise ZooError(f"{spec}: no split {split!r} ({error}); it has {', '.join(sorted(info.splits.keys()))}"
                       ) from None


def tfds_source(spec: DataSpec, data_dir: str | None, download: bool) -> Source:
    builder = tfds_builder(spec, data_dir)
    info = builder.info  # known before the data is prepared: check it first
    image_key, label_key = info.supervised_keys if info.supervised_keys else ("image", "label")
    if image_key not in info.features:
        raise ZooError(f"{spec} has no {image_key!r} feature to classify")
    if label_key not in info.features or not hasattr(info.features[label_key], "names"):
        hint = "; for captions use load_captions (`zoo caption`)" if "caption" in str(label_key) else ""
        raise ZooError(f"{spec} has no class labels to train a classifier on{hint}")
    builder = prepare(builder, spec, download)
    info = builder.info  # with the split sizes of the prepared data
    decoders, decode = undecoded_reader(builder, image_key)
    splits, sizes = {}, {}
    for role, split in split_names(spec, set(info.splits.keys())).items():
        sizes[role] = split_size(info, spec, split)
        dataset = read_split(builder, split, decoders)
        splits[role] = dataset.map(lambda example: (example[image_key], tf.cast(example[label_key], tf.int32)),
                                   num_parallel_calls=AUTOTUNE)
    return Source(splits, sizes, decode, list(info.features[label_key].names), [], str(spec), is_small(info))
