"""A dataset as per-split streams of (undecoded item, label): file paths or encoded bytes.

Every source gives, per split, its items unshuffled, and how to decode one. Shuffling happens on
those items, so that a shuffle buffer holds bytes rather than decoded images; validation splits
are carved out of train (seeded) where a source has none.
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
