"""Image folders: finding the images, checking every file before training, decoding in tf.data."""

from __future__ import annotations

import csv
import dataclasses
import warnings
from pathlib import Path

import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from zoo.errors import ZooError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif"}
DECODABLE_FORMATS = {"JPEG", "PNG", "BMP", "GIF"}  # what tf.io.decode_image reads
SPLIT_FOLDERS = {"train": ("train", "training"), "validation": ("val", "validation", "valid"), "test": ("test",)}
LARGE_SIDE = 4096  # above this, JPEGs are checked at reduced size (PIL draft) to keep the scan fast


def unreadable_reason(path: Path) -> str | None:
    """Why an image file cannot be trained on (None when it can): empty, not an image, truncated,
    a format TensorFlow cannot decode, or too large to decode safely."""
    try:
        if path.stat().st_size == 0:
            return "empty file"
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image_format = image.format
                image.verify()  # structure and checksums, without decoding
            if image_format not in DECODABLE_FORMATS:
                return f"{image_format} images are not supported; convert to JPEG or PNG"
            with Image.open(path) as image:
                if image_format == "JPEG" and max(image.size) > LARGE_SIDE:
                    image.draft("RGB", (image.size[0] // 8, image.size[1] // 8))
                image.load()  # a full decode finds truncated data
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return "too large to decode safely"
    except UnidentifiedImageError:
        return "not an image"
    except (OSError, SyntaxError, ValueError) as error:
        return f"corrupt ({str(error)[:60]})"
    return None


@dataclasses.dataclass
class FolderLayout:
    class_names: list[str]
    splits: dict[str, tuple[list[str], list[int]]]  # role -> (paths, labels)
    skipped: list[tuple[str, str]]  # (path, reason)


def _class_folders(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.is_dir() and not path.name.startswith("."))


def _split_folders(root: Path) -> dict[str, Path]:
    found = {}
    for role, names in SPLIT_FOLDERS.items():
        for name in names:
            if (root / name).is_dir():
                found[role] = root / name
                break
    return found if "train" in found else {}


def scan_folder(root: Path) -> FolderLayout:
    """Classes and checked image paths of `root` (class subfolders, or train/val/test of them)."""
    split_roots = _split_folders(root) or {"train": root}
    class_names = [folder.name for folder in _class_folders(split_roots["train"])]
    if not class_names:
        raise ZooError(f"{split_roots['train']} has no class subfolders: put each class's images in a "
                       f"subfolder named after it (e.g. {root}/cats/1.jpg)")
    skipped: list[tuple[str, str]] = []
    splits = {}
    for role, folder in split_roots.items():
        paths, labels = [], []
        for class_folder in _class_folders(folder):
            if class_folder.name not in class_names:
                raise ZooError(f"{class_folder} is a class that {split_roots['train']} does not have; "
                               f"the splits must share their classes")
            label = class_names.index(class_folder.name)
            for path in sorted(class_folder.rglob("*")):
                if not path.is_file() or path.suffix.lower() not in IMAGE_EXTENSIONS:
                    continue
                reason = unreadable_reason(path)
                if reason:
                    skipped.append((str(path), reason))
                else:
                    paths.append(str(path))
                    labels.append(label)
        splits[role] = (paths, labels)
    train_labels = set(splits["train"][1])
    empty = [name for index, name in enumerate(class_names) if index not in train_labels]
    if len(train_labels) < 2:
        raise ZooError(f"{split_roots['train']} has {len(train_labels)} class(es) with readable images "
                       f"({len(skipped)} files skipped): a classifier needs at least two")
    if empty:
        for name in empty:
            skipped.append((str(split_roots["train"] / name), "class folder without readable images"))
    return FolderLayout(class_names, splits, skipped)


def decode(contents):
    """Encoded JPEG/PNG/BMP/GIF bytes to a uint8 RGB image (first frame of a GIF; alpha dropped)."""
    image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


@dataclasses.dataclass
class CaptionFolder:
    paths: list[str]
    captions: tf.RaggedTensor
    skipped: list[str]


def caption_folder(root: Path) -> CaptionFolder:
    """A Flickr8k-style folder: images plus `captions.csv` (`image,caption` rows) or a text file of
    `image#n<TAB>caption` lines (`captions.txt`, `*.token`). Every caption of an image is kept."""
    if not root.is_dir():
        raise ZooError(f"no such folder: {root}")
    by_image: dict[str, list[str]] = {}
    csv_file = root / "captions.csv"
    token_files = [root / "captions.txt", *sorted(root.glob("*.token"))]
    if csv_file.is_file():
        with csv_file.open(newline="", encoding="utf8") as file:
            for row in csv.reader(file):
                if len(row) >= 2 and row[0].strip().lower() != "image":
                    by_image.setdefault(row[0].strip(), []).append(row[1].strip())
    else:
        token_file = next((path for path in token_files if path.is_file()), None)
        if token_file is None:
            raise ZooError(f"{root} has no captions.csv (image,caption) or captions.txt/*.token "
                           f"(image#n<TAB>caption) file")
        for line in token_file.read_text(encoding="utf8").splitlines():
            if "\t" in line:
                key, caption = line.split("\t", 1)
                by_image.setdefault(key.split("#")[0].strip(), []).append(caption.strip())
    paths, captions, skipped = [], [], []
    for name, texts in sorted(by_image.items()):
        candidates = [root / name, root / "images" / name, root / "Images" / name]
        path = next((candidate for candidate in candidates if candidate.is_file()), None)
        reason = "missing" if path is None else unreadable_reason(path)
        if reason:
            skipped.append(f"{name} ({reason})")
            continue
        paths.append(str(path))
        captions.append(texts)
    if not paths:
        raise ZooError(f"{root}: none of the captioned images could be read ({len(skipped)} skipped)")
    return CaptionFolder(paths, tf.ragged.constant(captions, dtype=tf.string), skipped)
