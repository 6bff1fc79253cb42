"""The run folder: what a run leaves behind, written so that a killed run loses nothing.

Layout: config.json, classes.json, history.csv, metrics.json, best.keras, last.keras,
checkpoints/ (tf.train.Checkpoint of the model, optimizers and epoch, for --resume), logs/
(TensorBoard), plots (curves.png, confusion.png).
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

from zoo.errors import ZooError

HISTORY = "history.csv"
CONFIG = "config.json"
CLASSES = "classes.json"
METRICS = "metrics.json"
BEST = "best.keras"
LAST = "last.keras"
CHECKPOINTS = "checkpoints"
LOGS = "logs"


def write_atomically(path, text: str | bytes) -> None:
    """Writes a file through a temporary sibling and a rename: readers see the old or the new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(text, bytes) else "w"
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, mode) as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json(path, values) -> None:
    write_atomically(path, json.dumps(values, indent=2, sort_keys=True) + "\n")


def save_model_atomically(model, path) -> None:
    """model.save to a temporary file in the same folder, then a rename."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".keras")
    os.close(handle)
    try:
        model.save(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_history(path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def write_history(path, rows: list[dict]) -> None:
    """Rewrites history.csv whole (it is small), atomically, one row per completed epoch."""
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_atomically(path, buffer.getvalue())


def prepare(out: Path, resume: bool) -> Path:
    """Creates the run folder; an existing run is only continued with resume, never overwritten."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ZooError(f"{out} exists and is not a folder; pick another --out")
    existing = out.is_dir() and any(out.iterdir())
    if existing and not resume:
        raise ZooError(f"{out} already holds a run; pass --resume to continue it or pick another --out")
    if resume and not (out / CONFIG).is_file():
        raise ZooError(f"nothing to resume in {out}: it has no {CONFIG}")
    out.mkdir(parents=True, exist_ok=True)
    return out
