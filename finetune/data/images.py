"""Image files: finding them in folders, checking every one before training, decoding in tf.data.

Every file is checked up front, so that nothing fails mid-epoch:
1. PIL opens and verifies it (empty files, non-images and broken structure are skipped);
2. TensorFlow decodes it, all files in parallel (truncated data is skipped);
3. files PIL reads but TensorFlow cannot (WebP, TIFF, 1-bit BMP...) and very large images get a
   PNG copy, at most SHRUNK_SIDE pixels a side, that the pipeline reads instead; decoding a
   6000x6000 image on every epoch, several at a time, would cost gigabytes for nothing.
"""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import logging
import shutil
import tempfile
import warnings
from pathlib import Path

import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from finetune import files


log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
DECODABLE_FORMATS = {"JPEG", "PNG", "BMP", "GIF"}  # what tf.io.decode_image reads
MAX_DECODE_SIDE = 4096  # larger images are read from a shrunk copy
SHRUNK_SIDE = 2048  # enough for any zoo model's input, with room for random crops
SKIPPED_SHOWN = 5  # how many skipped files a summary names


@dataclasses.dataclass
class CheckedFiles:
    """The outcome of checking a list of files: what to read for each usable one, and what was skipped."""

    indices: list[int]  # positions, in the checked list, of the usable files
    paths: list[str]  # what the pipeline reads for each: the file itself or its converted copy
    skipped: list[tuple[str, str]]  # (path, reason)
    converted: int = 0


def check_files(paths: list[str]) -> CheckedFiles:
    """Checks image files (see the module docstring); a file is either usable or skipped with a reason."""
    paths = [str(path) for path in paths]
    reasons: dict[int, str] = {}
    needs_copy: set[int] = set()
    for index, path in enumerate(paths):
        reason, image_format, size = _inspect(Path(path))
        if reason:
            reasons[index] = reason
        elif image_format not in DECODABLE_FORMATS or max(size) > MAX_DECODE_SIDE:
            needs_copy.add(index)
    direct = [index for index in range(len(paths)) if index not in reasons and index not in needs_copy]
    needs_copy.update(direct[position] for position in _undecodable([paths[index] for index in direct]))
    read_from = {index: paths[index] for index in direct if index not in needs_copy}
    for index in sorted(needs_copy):
        try:
            read_from[index] = _converted_copy(Path(paths[index]))
        except (OSError, SyntaxError, ValueError) as error:
            reasons[index] = f"corrupt ({str(error)[:60]})"
    usable = sorted(read_from)
    return CheckedFiles(usable, [read_from[index] for index in usable],
                        [(paths[index], reasons[index]) for index in sorted(reasons)],
                        converted=len(needs_copy) - sum(index in reasons for index in needs_copy))


def _inspect(path: Path) -> tuple[str | None, str | None, tuple[int, int]]:
    """(reason the file is unusable or None, PIL's format name, (width, height)), without decoding pixels."""
    try:
        if path.stat().st_size == 0:
            return "empty file", None, (0, 0)
        with warnings.catch_warnings():
            # Past PIL's limit (~89 Mpx) an image is more likely an attack or a scan than a photo.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image_format, size = image.format, image.size
                image.verify()  # structure and checksums, without decoding
    except FileNotFoundError:
        return "no such file", None, (0, 0)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return "too large to decode safely", None, (0, 0)
    except UnidentifiedImageError:
        return "not an image", None, (0, 0)
    except (OSError, SyntaxError, ValueError) as error:
        return f"corrupt ({str(error)[:60]})", None, (0, 0)
    return None, image_format, size


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


def decode(contents):
    """Encoded JPEG/PNG/BMP/GIF bytes to a uint8 RGB image (first frame of a GIF; alpha dropped)."""
    image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def summarize_skipped(skipped: list[tuple[str, str]], where) -> str:
    """One line: how many files were skipped, and the first few with their reasons."""
    shown = ", ".join(f"{Path(path).name} ({reason})" for path, reason in skipped[:SKIPPED_SHOWN])
    more = f" and {len(skipped) - SKIPPED_SHOWN} more" if len(skipped) > SKIPPED_SHOWN else ""
    return f"Skipped {len(skipped)} unreadable file(s) in {where}: {shown}{more}"
