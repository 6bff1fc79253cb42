"""The data a trained model was made with: its run's data spec, seed and validation split, for
evaluating it and for calibrating its quantized exports on the run's own images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from finetune import files
from finetune.data.pipeline import DataBundle, load_data
from finetune.training.runfolder import RunFolder
from zoo.errors import ZooError


def run_settings(source) -> dict | None:
    """The data settings of the run behind `source`: a run folder's config.json; an ensemble
    folder's first member's (ensemble.json lists them, and they share their data); None for a
    bare `.keras` file or a folder that says nothing of its data."""
    folder = Path(source)
    if (folder / files.CONFIG).is_file():
        return RunFolder(folder, writes=False).read_json(files.CONFIG)
    if (folder / files.ENSEMBLE).is_file():
        members = RunFolder(folder, writes=False).read_json(files.ENSEMBLE).get("members") or []
        first = Path(members[0]["source"]) if members else None
        if first is not None and (first / files.CONFIG).is_file():
            return RunFolder(first, writes=False).read_json(files.CONFIG)
    return None


def load_run_data(source, image_size, *, data=None, preprocessing=None, batch_size: int = 64,
                  max_examples: int | None = None, required: bool = False,
                  shuffle_training: bool = False, evaluation=None) -> DataBundle:
    """The run's own data (or `data`), split as the run split it; validation and test in order.

    Args:
        source: a run folder, an ensemble folder or a `.keras` file.
        image_size: (height, width, channels) of the model.
        data: a data spec that replaces the run's.
        preprocessing: applied to the images; None keeps pixels in [0, 255].
        max_examples: at most this many examples per split (default: the run's own cap).
        required: refuse, rather than fall back on the built-in shapes, when neither `data` nor the
            run names the data.
        shuffle_training: shuffle the training split by the run's seed (folders list their
            images class by class, so its first images are all of one class).
        evaluation: how validation and test images are resized and cropped (`load_data`).
    """
    settings = run_settings(source)
    if settings is None:
        if required and data is None:
            raise ZooError(f"{source} does not say what data it was trained on: pass the data (--data SPEC)")
        settings = {}
    return load_data(
        data if data is not None else settings.get("data"), image_size=image_size, batch_size=batch_size,
        preprocessing=preprocessing, seed=settings.get("seed") or 0,
        validation_fraction=settings.get("validation_fraction") or 0.2, data_dir=settings.get("data_dir"),
        download=settings.get("download", True), labels=settings.get("labels") if data is None else None,
        folds=settings.get("folds") if data is None else None, fold=settings.get("fold") if data is None else None,
        max_examples=max_examples if max_examples is not None else settings.get("max_examples"),
        evaluation=evaluation, **({} if shuffle_training else {"shuffle_buffer": 0}))


def first_pixels(batches, count: int) -> np.ndarray:
    """Up to `count` images of a stream of (images, labels) batches in [0, 255], as uint8 pixels."""
    taken, total = [], 0
    for images, _ in batches:
        taken.append(np.asarray(images).astype(np.uint8))
        total += len(taken[-1])
        if total >= count:
            break
    return np.concatenate(taken)[:count]
