"""A dataset as per-split streams of (undecoded item, label): file paths or encoded bytes.

Every source gives, per split, its items unshuffled, and how to decode one. Shuffling happens on
those items, so that a shuffle buffer holds bytes rather than decoded images; validation splits
are carved out of train (seeded) where a source has none, or rotated through k folds for
cross-validation.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import tensorflow as tf

from finetune.data import images as image_files
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


def read_and_decode(path):
    return image_files.decode(tf.io.read_file(path))


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
    source.splits["train"], source.splits["validation"] = split_by_mask(source.splits["train"], held_out)
    source.sizes["validation"], source.sizes["train"] = count, total - count


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
    pool = source.splits["train"]
    if "validation" in source.splits:
        pool = pool.concatenate(source.splits.pop("validation"))
        source.sizes.pop("validation")
    labels = labels_of(pool)
    if len(labels) < folds:
        raise ZooError(f"{source.description}: {len(labels)} training example(s) cannot make {folds} folds")
    held_out = fold_of_each(labels, folds, seed) == fold
    source.splits["train"], source.splits["validation"] = split_by_mask(pool, held_out)
    source.sizes["validation"] = int(held_out.sum())
    source.sizes["train"] = len(labels) - source.sizes["validation"]


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
        source.splits[role] = source.splits[role].take(max_examples)
        source.sizes[role] = min(source.sizes[role], max_examples)
