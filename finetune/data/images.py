"""Image files: finding them in folders, checking them before training, converting the few that
TensorFlow cannot decode.

Before training only headers are read (`finetune.data.file_index`: format, size, mode; kept on disk
and reused while the files are unchanged), so start-up grows with the number of files, not their
pixels:
1. files PIL cannot identify (empty files, non-images, broken headers) are skipped, with a reason;
2. files TensorFlow cannot decode (WebP, TIFF, 1-bit BMP...) and very large non-JPEG images get a
   PNG copy, at most SHRUNK_SIDE pixels a side, that the pipeline reads instead (JPEGs of any size
   are decoded directly, cropped and scaled: `finetune.data.decoding`);
3. damage inside a file (a JPEG cut short) is found by the pipeline when it first reads the file,
   which is left out and reported by name (`finetune.data.decoding.UnreadableFiles`).
`check_files(..., decode=True)` decodes every file up front instead, for a handful of images to
predict on, where nothing may be dropped silently later.
"""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import logging
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf
from PIL import Image

from finetune import files
from finetune.data import file_index
from finetune.data.decoding import decode

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
DECODABLE_FORMATS = {"JPEG", "PNG", "BMP", "GIF"}  # what tf.io.decode_image reads
DECODABLE_BMP_MODES = {"RGB", "RGBA"}  # TensorFlow reads 24- and 32-bit BMPs only
DECODABLE_JPEG_MODES = {"RGB", "L"}  # and JPEGs of 1 or 3 components (not CMYK)
MAX_DECODE_SIDE = 4096  # larger non-JPEG images are read from a shrunk copy
SHRUNK_SIDE = 2048  # enough for any zoo model's input, with room for random crops
SKIPPED_SHOWN = 5  # how many skipped files a summary names


@dataclasses.dataclass
class CheckedFiles:
    """The outcome of checking a list of files: what to read for each usable one, and what was skipped."""

    indices: list[int]  # positions, in the checked list, of the usable files
    paths: list[str]  # what the pipeline reads for each: the file itself or its converted copy
    skipped: list[tuple[str, str]]  # (path, reason)
    converted: int = 0


def needs_copy(header: file_index.Header) -> bool:
    """Whether TensorFlow cannot decode the file (or should not, whole, on every epoch)."""
    if header.format not in DECODABLE_FORMATS:
        return True
    if header.format == "BMP" and header.mode not in DECODABLE_BMP_MODES:
        return True
    if header.format == "JPEG" and header.mode not in DECODABLE_JPEG_MODES:
        return True
    return header.format != "JPEG" and max(header.width, header.height) > MAX_DECODE_SIDE


def check_files(paths: list[str], key: str | None = None, decode: bool = False) -> CheckedFiles:
    """Checks image files (see the module docstring); a file is either usable or skipped with a reason.
    `key` names the on-disk header index to reuse (e.g. the data folder); `decode` also decodes
    every file that passes, skipping those TensorFlow fails on."""
    paths = [str(path) for path in paths]
    reasons: dict[int, str] = {}
    copies: set[int] = set()
    for index, header in enumerate(file_index.headers(paths, key)):
        if header.reason:
            reasons[index] = header.reason
        elif needs_copy(header):
            copies.add(index)
    direct = [index for index in range(len(paths)) if index not in reasons and index not in copies]
    if decode:
        copies.update(direct[position] for position in _undecodable([paths[index] for index in direct]))
    read_from = {index: paths[index] for index in direct if index not in copies}
    for index in sorted(copies):
        try:
            read_from[index] = _converted_copy(Path(paths[index]))
        except (OSError, SyntaxError, ValueError) as error:
            reasons[index] = f"corrupt ({str(error)[:60]})"
    usable = sorted(read_from)
    return CheckedFiles(usable, [read_from[index] for index in usable],
                        [(paths[index], reasons[index]) for index in sorted(reasons)],
                        converted=len(copies) - sum(index in reasons for index in copies))


def _undecodable(paths: list[str]) -> list[int]:
    """Positions of the files TensorFlow fails to decode, found with one parallel pass that
    drops failures (`ignore_errors`) and sees which positions come out."""
    if not paths:
        return []

    def attempt(index, path):
        return index, tf.shape(decode(tf.io.read_file(path)))[0]

    attempts = tf.data.Dataset.from_tensor_slices((tf.range(len(paths)), tf.constant(files.path_bytes(paths), tf.string)))
    attempts = attempts.map(attempt, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors().batch(1024)
    decoded = set()
    for indices, _ in attempts:
        decoded.update(indices.numpy().tolist())
    return [index for index in range(len(paths)) if index not in decoded]


_copies_folder: Path | None = None


def _copies() -> Path:
    """A folder for converted copies, removed when the process ends."""
    global _copies_folder
    if _copies_folder is None:
        _copies_folder = Path(tempfile.mkdtemp(prefix="zoo-images-"))
        atexit.register(shutil.rmtree, _copies_folder, ignore_errors=True)
    return _copies_folder


def _converted_copy(path: Path) -> str:
    """An RGB PNG copy of an image, shrunk to SHRUNK_SIDE; a full decode, so it also finds truncated files."""
    stat = path.stat()
    key = hashlib.sha1(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
    target = _copies() / f"{key}.png"
    if not target.exists():
        with Image.open(path) as image:
            image.draft("RGB", (SHRUNK_SIDE, SHRUNK_SIDE))  # JPEG: decode straight at 1/2 to 1/8 scale
            image.thumbnail((SHRUNK_SIDE, SHRUNK_SIDE))
            rgb = image.convert("RGB")
        rgb.save(target, format="PNG", compress_level=1)
    return str(target)


def summarize_skipped(skipped: list[tuple[str, str]], where) -> str:
    """One line: how many files were skipped, and the first few with their reasons."""
    shown = ", ".join(f"{Path(path).name} ({reason})" for path, reason in skipped[:SKIPPED_SHOWN])
    more = f" and {len(skipped) - SKIPPED_SHOWN} more" if len(skipped) > SKIPPED_SHOWN else ""
    return f"Skipped {len(skipped)} unreadable file(s) in {where}: {shown}{more}"
