"""An index of image file headers (format, size, mode), kept on disk and reused while files are unchanged.

Reading a header costs a file open and a few kilobytes, about a tenth of a millisecond; a folder of
100,000 photos is indexed in seconds, and a run that starts again on the same folder (a resume, a
second model, a search) only compares each file's size and modification time with the index's.
The index lives in the kit's cache folder (`ZOO_CACHE_DIR`, else `$XDG_CACHE_HOME/keras-zoo`, else
`~/.cache/keras-zoo`), one file per data folder; a cache that cannot be written is skipped.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import gzip
import hashlib
import json
import logging
import os
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from finetune import files

log = logging.getLogger(__name__)

INDEX_VERSION = 1
READERS = 8  # header reads in flight: they wait on the disk more than on Python


@dataclasses.dataclass(frozen=True)
class Header:
    """What a file's header says, or why it is unusable (`reason`)."""

    format: str | None = None
    width: int = 0
    height: int = 0
    mode: str | None = None
    reason: str | None = None


def cache_dir() -> Path:
    explicit = os.environ.get("ZOO_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "keras-zoo"


def read_header(path: str) -> Header:
    """The header of an image file, read by PIL without decoding its pixels."""
    try:
        if os.stat(path).st_size == 0:
            return Header(reason="empty file")
        with warnings.catch_warnings():
            # Past PIL's limit (~89 Mpx) an image is more likely an attack or a scan than a photo.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return Header(image.format, image.size[0], image.size[1], image.mode)
    except FileNotFoundError:
        return Header(reason="no such file")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return Header(reason="too large to decode safely")
    except UnidentifiedImageError:
        return Header(reason="not an image")
    except (OSError, SyntaxError, ValueError) as error:
        return Header(reason=f"corrupt ({str(error)[:60]})")


def _stamp(path: str) -> list[int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def _index_file(key: str) -> Path:
    return cache_dir() / "index" / (hashlib.sha1(key.encode("utf8", "surrogateescape")).hexdigest() + ".json.gz")


def _load(path: Path) -> dict:
    try:
        with gzip.open(path, "rt", encoding="utf8", errors="surrogateescape") as file:
            stored = json.load(file)
    except (OSError, ValueError, EOFError):
        return {}
    if not isinstance(stored, dict) or stored.get("version") != INDEX_VERSION or not isinstance(stored.get("files"), dict):
        return {}
    return stored["files"]


def _save(path: Path, entries: dict) -> None:
    text = json.dumps({"version": INDEX_VERSION, "files": entries}, ensure_ascii=False, separators=(",", ":"))
    try:
        files.write_atomically(path, gzip.compress(text.encode("utf8", "surrogateescape"), compresslevel=1))
    except Exception as error:  # noqa: BLE001 (the index only saves time; a read-only cache must not stop a run)
        log.debug("image index not saved (%s)", error)


def headers(paths: list[str], key: str | None = None) -> list[Header]:
    """The headers of `paths`, in order. With `key` (e.g. the data folder), reused from and saved to
    the on-disk index: a file whose size and modification time are unchanged is not opened again."""
    stamps = [_stamp(path) for path in paths]
    index_path = _index_file(key) if key is not None else None
    stored = _load(index_path) if index_path is not None else {}
    found: list[Header | None] = []
    for path, stamp in zip(paths, stamps):
        entry = stored.get(path)
        found.append(Header(*entry[2:]) if entry is not None and stamp is not None and entry[:2] == stamp else None)
    missing = [position for position, header in enumerate(found) if header is None]
    if missing:
        with concurrent.futures.ThreadPoolExecutor(READERS) as pool:
            for position, header in zip(missing, pool.map(read_header, [paths[position] for position in missing])):
                found[position] = header
    if index_path is not None and (missing or len(stored) != len(paths)):
        _save(index_path, {path: [*stamp, *dataclasses.astuple(header)]
                           for path, stamp, header in zip(paths, stamps, found) if stamp is not None})
    return found
