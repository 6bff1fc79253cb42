"""The one export stager: every export (a classifier's, an ensemble's, a captioner's) is written to a
hidden sibling folder and renamed into place when complete, in TF Serving's BASE/NAME/VERSION
layout. TF Serving ignores folders whose names are not numbers, so it never sees a partial export,
and an interrupted one (an error, Ctrl-C or SIGTERM) leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Callable

from finetune import files
from zoo.errors import ZooError

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]*"


def next_version(model_dir: Path) -> int:
    """One more than the highest numbered version in `model_dir` (1 for the first)."""
    versions = [int(child.name) for child in model_dir.iterdir() if child.name.isdigit()] if model_dir.is_dir() else []
    return max(versions, default=0) + 1


def default_name(source) -> str:
    """The served model's name: the run folder's name, or the `.keras` file's (the run's for best/last.keras)."""
    source = Path(source).resolve()
    if source.is_dir():
        return source.name
    return source.parent.name if source.name in files.RUN_MODELS else source.stem


@contextlib.contextmanager
def terminated_as_exit():
    """Turns SIGTERM into SystemExit for the block (in the main thread), so that `finally` and
    `except BaseException` clean-ups run when a job scheduler stops the process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def staged_export(base_dir, name: str, version: int | None, write: Callable[[Path], None]) -> Path:
    """Runs `write(folder)` on a hidden staging folder, then renames it to base_dir/name/version.

    Args:
        base_dir: the TF Serving base folder; created if missing.
        name: the served model's name (letters, digits, '.', '_' and '-').
        version: a new version number; None: one more than the highest already there.
        write: fills the folder it is given (a SavedModel and its assets).
    Returns the version's folder.
    """
    if not re.fullmatch(NAME_PATTERN, name):
        raise ZooError(f"{name!r} cannot name a served model: use letters, digits, '.', '_' and '-'")
    model_dir = Path(base_dir) / name
    version = next_version(model_dir) if version is None else int(version)
    if version < 1:
        raise ZooError(f"versions are positive integers, not {version}")
    target = model_dir / str(version)
    if target.exists():
        raise ZooError(f"{target} already exists; pick another --version or leave it out for the next one")
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version}.", suffix=".partial", dir=model_dir))
    except OSError as error:
        raise ZooError(f"cannot write the export under {model_dir}: {error.strerror or error}") from None
    with terminated_as_exit():
        try:
            write(staging)
            staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return target


def write_metadata(folder: Path, metadata: dict) -> None:
    """The kit's description of an export (task, input shape, preprocessing...) in assets.extra/."""
    path = folder / files.EXPORT_METADATA
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf8")


def read_metadata(folder: Path) -> dict:
    path = Path(folder) / files.EXPORT_METADATA
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf8"))
    except (OSError, ValueError) as error:
        raise ZooError(f"cannot read {path}: {error}") from None


EXPORTED_MODELS = (files.SAVED_MODEL, files.ONNX_MODEL, files.LITERT_MODEL)


def find_export(source) -> Path | None:
    """The export folder `source` names: itself when it holds an exported model (a SavedModel, an
    ONNX or a LiteRT model), else its highest numbered version that holds one."""
    source = Path(source)
    if not source.is_dir():
        return None
    if any((source / name).is_file() for name in EXPORTED_MODELS):
        return source
    versions = [child for child in source.iterdir()
                if child.name.isdigit() and any((child / name).is_file() for name in EXPORTED_MODELS)]
    return max(versions, key=lambda child: int(child.name)) if versions else None


def find_saved_model(source) -> Path | None:
    """The SavedModel folder `source` names: itself, or its latest version when that is a SavedModel."""
    folder = find_export(source)
    return folder if folder is not None and (folder / files.SAVED_MODEL).is_file() else None
