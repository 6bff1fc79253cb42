"""A dataset as per-split streams of (undecoded item, label): file paths or encoded bytes.

Every source gives, per split, its items unshuffled, and how to decode one. Shuffling happens on
those items, so that a shuffle buffer holds bytes rather than decoded images; validation splits
are carved out of train (seeded) where a source has none, or rotated through k folds for
cross-validation.

Sources of files keep their items (paths and labels) as arrays too, and carve and cap those: the
splits are then made of in-memory tensors alone, which a tf.data service worker splits by example
(`distributed_epoch`). Split by position inside the stream instead (`enumerate`, `take`), each
worker would count positions in its own share and the validation split would leak into training.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import tensorflow as tf

from finetune import files as file_names
from finetune.data.decoding import decode
from zoo.errors import ZooError

AUTOTUNE = tf.data.AUTOTUNE


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
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] | None = None  # file sources: role -> (paths, labels)


def read_and_decode(path):
    return decode(tf.io.read_file(path))


def file_items(paths, labels) -> tuple[np.ndarray, np.ndarray]:
    """A split of files as arrays: paths (bytes, as the file system names them) and int32 labels."""
    return np.array(file_names.path_bytes(paths), dtype=object), np.asarray(labels, dtype=np.int32)


def file_source(arrays: dict[str, tuple[np.ndarray, np.ndarray]], class_names, skipped, description: str,
                decode_item=read_and_decode) -> Source:
    """A source of (path, label) items from per-split arrays (`file_items`)."""
    source = Source({}, {}, decode_item, list(class_names), list(skipped), description, files=True, arrays={})
    for role, (paths, labels) in arrays.items():
        set_arrays(source, role, paths, labels)
    return source


def set_arrays(source: Source, role: str, paths: np.ndarray, labels: np.ndarray) -> None:
    source.arrays[role] = (paths, labels)
    source.sizes[role] = len(paths)
    source.splits[role] = tf.data.Dataset.from_tensor_slices((tf.constant(paths.tolist(), tf.string),
                                                              tf.constant(labels, tf.int32)))


def _split(source: Source, role: str, pool, held_out: np.ndarray, held_out_role: str) -> None:
    """`pool` (a stream, or arrays) split by the mask into `role` (False) and `held_out_role` (True)."""
    if isinstance(pool, tuple):
        paths, labels = pool
        set_arrays(source, role, paths[~held_out], labels[~held_out])
        set_arrays(source, held_out_role, paths[held_out], labels[held_out])
        return
    source.splits[role], source.splits[held_out_role] = split_by_mask(pool, held_out)
    source.sizes[held_out_role] = int(held_out.sum())
    source.sizes[role] = len(held_out) - source.sizes[held_out_role]


def split_by_mask(dataset: tf.data.Dataset, held_out: np.ndarray) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """(kept, held out): the examples of `dataset` whose position is False / True in `held_out`."""
    mask = tf.constant(held_out)

    # Named functions: AutoGraph cannot tell apart several lambdas on one line.
    def held_out_example(index, example):
        return mask[index]

    def kept_example(index, example):
        return tf.logical_not(mask[index])

    def without_index(index, example):
        return example

    indexed = dataset.enumerate()
    return indexed.filter(kept_example).map(without_index), indexed.filter(held_out_example).map(without_index)


def carve_validation(source: Source, fraction: float, seed: int) -> None:
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
    pool = source.arrays["train"] if source.arrays else source.splits["train"]
    _split(source, "train", pool, held_out, "validation")


def labels_of(dataset: tf.data.Dataset) -> np.ndarray:
    """The labels of a (item, label) stream, without decoding its items."""
    labels = dataset.map(lambda item, label: label, num_parallel_calls=AUTOTUNE).batch(4096)
    return np.concatenate([batch for batch in labels.as_numpy_iterator()] or [np.zeros(0, np.int32)])


def fold_of_each(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Stratified k-fold assignment: each class's examples shuffled (seeded) and dealt round the
    folds, each class starting where the last left off, so folds differ in size by one at most."""
    assignment = np.empty(len(labels), dtype=np.int64)
    rng = np.random.default_rng(seed)
    start = 0
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        assignment[members] = (start + np.arange(len(members))) % folds
        start = (start + len(members)) % folds
    return assignment


def carve_fold(source: Source, folds: int, fold: int, seed: int) -> None:
    """K-fold cross-validation: the training examples, with the source's own validation split pooled
    in, dealt into `folds` stratified folds; fold `fold` (from 0) validates, the others train. The
    test split is untouched."""
    if not 0 <= fold < folds:
        raise ZooError(f"fold must be in 0..{folds - 1}, got {fold}")
    if source.arrays:
        pooled = [source.arrays.pop(role) for role in ("train", "validation") if role in source.arrays]
        pool = tuple(np.concatenate(parts) for parts in zip(*pooled))
        labels = pool[1]
    else:
        pool = source.splits["train"]
        if "validation" in source.splits:
            pool = pool.concatenate(source.splits["validation"])
        labels = labels_of(pool)
    source.splits.pop("validation", None)
    source.sizes.pop("validation", None)
    if len(labels) < folds:
        raise ZooError(f"{source.description}: {len(labels)} training example(s) cannot make {folds} folds")
    held_out = fold_of_each(labels, folds, seed) == fold
    _split(source, "train", pool, held_out, "validation")


def keep_small_items_in_memory(source: Source) -> None:
    """Caches a small source's undecoded items, so that every epoch after the first fills its shuffle
    buffer from memory rather than by parsing TFRecords (a pause of ~0.3 s per epoch on zoo_shapes/32)."""
    if source.small:
        source.splits = {role: items.cache() for role, items in source.splits.items()}


def cap(source: Source, max_examples: int | None) -> None:
    if max_examples is None:
        return
    if max_examples < 1:
        raise ZooError(f"max_examples must be at least 1, got {max_examples}")
    for role in source.splits:
        if source.arrays:
            paths, labels = source.arrays[role]
            set_arrays(source, role, paths[:max_examples], labels[:max_examples])
        else:
            source.splits[role] = source.splits[role].take(max_examples)
            source.sizes[role] = min(source.sizes[role], max_examples)
