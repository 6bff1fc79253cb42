"""Image folders: class subfolders of images (optionally under train/, val/, test/), or a folder of
images with a label file (`finetune.data.label_files`); every file checked before training."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import tensorflow as tf

from finetune import files
from finetune.data.images import check_files, summarize_skipped, IMAGE_EXTENSIONS
from finetune.data.label_files import LABEL_FILES, find_label_file, label_file_source
from finetune.data.source import Source, file_items, file_source
from finetune.data.specs import DataSpec
from zoo.errors import ZooError

log = logging.getLogger(__name__)

SPLIT_FOLDERS = {"train": ("train", "training"), "validation": ("val", "validation", "valid"), "test": ("test",)}


@dataclasses.dataclass
class FolderLayout:
    class_names: list[str]
    splits: dict[str, tuple[list[str], list[int]]]  # role -> (paths to read, labels)
    skipped: list[tuple[str, str]]  # (path, reason); empty class folders too


def _class_folders(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.is_dir() and not path.name.startswith("."))


def _split_folders(root: Path) -> dict[str, Path]:
    """The train/val/test folders of `root`, their names matched whatever their case (Train/, VAL/);
    none unless there is a training folder."""
    by_name: dict[str, list[Path]] = {}
    for path in root.iterdir():
        if path.is_dir():
            by_name.setdefault(path.name.lower(), []).append(path)
    found = {}
    for role, names in SPLIT_FOLDERS.items():
        matches = [path for name in names for path in sorted(by_name.get(name, []))]
        if len(matches) > 1:
            raise ZooError(f"{root} has {len(matches)} {role} folders ({', '.join(path.name for path in matches)}): "
                           f"keep one")
        if matches:
            found[role] = matches[0]
    return found if "train" in found else {}


def _image_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS
                  and not path.name.startswith("."))


def scan_folder(root: Path) -> FolderLayout:
    """Classes and checked image paths of `root`: class subfolders, or train/ (val/, test/) of them.

    Classes are the training split's subfolders with at least one readable image; a folder
    without any is reported and left out. Fewer than two classes is an error.
    """
    split_roots = _split_folders(root) or {"train": root}
    train_root = split_roots["train"]
    folder_names = [folder.name for folder in _class_folders(train_root)]
    if not folder_names:
        raise ZooError(f"{train_root} has no class subfolders: put each class's images in a "
                       f"subfolder named after it (e.g. {root}/cats/1.jpg), or give a CSV of file names and "
                       f"labels with --labels FILE")
    candidates: list[tuple[str, str, Path]] = []  # (role, class folder name, file)
    for role, folder in split_roots.items():
        for class_folder in _class_folders(folder):
            if class_folder.name not in folder_names:
                raise ZooError(f"{class_folder} is a class that {train_root} does not have; "
                               f"the splits must share their classes")
            candidates += [(role, class_folder.name, path) for path in _image_files(class_folder)]
    checked = check_files([str(path) for _, _, path in candidates], key=str(root.resolve()))
    if checked.converted:
        log.info("Converted %d image(s) in %s that TensorFlow cannot decode directly or that are very large",
                 checked.converted, root)
    usable = [(candidates[index][0], candidates[index][1], path) for index, path in zip(checked.indices, checked.paths)]
    in_train = {name for role, name, _ in usable if role == "train"}
    class_names = [name for name in folder_names if name in in_train]
    skipped = list(checked.skipped)
    for name in folder_names:
        if name not in in_train:
            skipped.append((str(train_root / name), "class folder without readable images"))
    if len(class_names) < 2:
        raise ZooError(f"{train_root} has {len(class_names)} class folder(s) with readable images "
                       f"({len(checked.skipped)} file(s) skipped): a classifier needs at least two classes, "
                       f"each a subfolder of images")
    orphans = sorted({(role, name) for role, name, _ in usable if name not in in_train})
    if orphans:
        role, name = orphans[0]
        raise ZooError(f"{split_roots[role] / name} has images but {train_root / name} has no readable one: "
                       f"add training images of {name!r} or remove the class")
    splits = {role: ([], []) for role in split_roots}
    for role, name, path in usable:
        splits[role][0].append(path)
        splits[role][1].append(class_names.index(name))
    # folder names that are not UTF-8 name their classes in printable text (the paths keep their bytes)
    return FolderLayout([files.printable(name) for name in class_names], splits, skipped)


def folder_source(spec: DataSpec, seed: int, labels=None) -> Source:
    """A data folder as a source: read through its label file when it has one (or `labels` is
    given), else through its class subfolders."""
    root = Path(spec.name).expanduser()
    if not root.exists():
        hint = ""
        if "/" not in spec.name and "\\" not in spec.name:
            hint = f"; for a dataset write tfds:{spec.name} or builtin:NAME"
        raise ZooError(f"no such folder: {root}{hint}")
    if not root.is_dir():
        raise ZooError(f"{root} is a file: a data folder holds one subfolder of images per class, or images and "
                       f"a label file ({' or '.join(LABEL_FILES[:2])})")
    if labels is not None or find_label_file(root) is not None:
        return label_file_source(root, labels, seed)
    layout = scan_folder(root)
    arrays = {}
    for role, (paths, labels) in layout.splits.items():
        # A seeded order, so that capped runs see every class and nothing depends on file names.
        order = np.random.default_rng(seed).permutation(len(paths))
        arrays[role] = file_items([paths[index] for index in order], [labels[index] for index in order])
    if layout.skipped:
        log.warning(summarize_skipped(layout.skipped, root))
    return file_source(arrays, layout.class_names, [path for path, _ in layout.skipped], str(root))
