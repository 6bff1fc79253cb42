"""The names of everything the kit writes, and the one way it writes a file: whole or not at all.

A run folder (classification and captioning alike)::

    config.json      every setting of the run ("task": "classification" or "captioning")
    classes.json     classifiers: class names, input shape and preprocessing, for serving
    captioner.json   captioners: the model's config, vocabulary included
    history.csv      one row per completed epoch
    metrics.json     the final evaluation (and the diagnosis of the curves)
    best.keras       the model of the best validation loss; last.keras: of the last epoch
    checkpoints/     model, optimizers and epoch together: what --resume continues from
    logs/            TensorBoard scalars (logs/train, logs/validation)
    curves.png, confusion.png, samples.png

An export (TF Serving's layout, BASE/NAME/VERSION)::

    saved_model.pb, variables/, assets/labels.txt, assets.extra/model.keras, assets.extra/zoo.json
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
import zipfile
from pathlib import Path

from zoo.errors import ZooError

# -- a run folder -------------------------------------------------------------------------------------
CONFIG = "config.json"
CLASSES = "classes.json"
CAPTIONER_CONFIG = "captioner.json"
HISTORY = "history.csv"
METRICS = "metrics.json"
BEST = "best.keras"
LAST = "last.keras"
RUN_MODELS = (BEST, LAST)  # what serving loads from a run folder, best first
CHECKPOINTS = "checkpoints"
LOGS = "logs"
CURVES = "curves.png"
CONFUSION = "confusion.png"
SAMPLES = "samples.png"
PREDICTIONS_CSV = "predictions.csv"
PREDICTIONS_JSON = "predictions.json"
ENSEMBLE = "ensemble.json"

# -- an export -----------------------------------------------------------------------------------------
SAVED_MODEL = "saved_model.pb"
LABELS = "labels.txt"  # in an export's assets/: one class name per line, in output order
EXPORT_EXTRA = Path("assets.extra")  # TF Serving ignores it: the Keras model and the kit's metadata
EXPORT_KERAS_COPY = EXPORT_EXTRA / "model.keras"
EXPORT_METADATA = EXPORT_EXTRA / "zoo.json"


def path_bytes(paths) -> list[bytes]:
    """File paths as the bytes the file system holds, for TensorFlow string tensors: a name that
    is not valid UTF-8 (Python keeps its bytes as surrogates) reaches the file it names."""
    return [os.fsencode(path) for path in paths]


def printable(text) -> str:
    """A file name (or a name made from one) as text any terminal or UTF-8 file can take: bytes
    that are not UTF-8 show as U+FFFD."""
    return os.fsencode(str(text)).decode("utf8", "replace")


def cannot_write(path, error: OSError) -> ZooError:
    """A failed write as the error a user can act on (a full disk, a read-only folder...)."""
    reason = error.strerror or str(error)
    if error.errno == errno.ENOSPC:
        reason += ": free some space or write elsewhere"
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason += ": pick a folder you can write to"
    return ZooError(f"cannot write {path}: {reason}")


def write_atomically(path, text: str | bytes) -> None:
    """Writes a file through a temporary sibling and a rename: readers see the old or the new file,
    and a failure (a full disk, an interrupt) leaves no temporary file behind."""
    path = Path(path)
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        mode = "wb" if isinstance(text, bytes) else "w"
        with os.fdopen(handle, mode, **({} if isinstance(text, bytes) else {"encoding": "utf8"})) as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise cannot_write(path, error) from None
        raise


def write_json(path, values) -> None:
    write_atomically(path, json.dumps(values, indent=2, sort_keys=True) + "\n")


def save_model_atomically(model, path, extra_entries: dict[str, str] | None = None) -> None:
    """model.save to a temporary file in the same folder, then a rename.

    `extra_entries` (name -> text) are added to the `.keras` archive first; Keras ignores entries it
    does not know (the zoo records the weights' preprocessing and class names so).
    """
    path = Path(path)
    temporary = None
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".keras")
        os.close(handle)
        model.save(temporary)
        if extra_entries:
            with zipfile.ZipFile(temporary, "a") as archive:
                for name, text in extra_entries.items():
                    archive.writestr(name, text)
        os.replace(temporary, path)
    except BaseException as error:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise cannot_write(path, error) from None
        raise
