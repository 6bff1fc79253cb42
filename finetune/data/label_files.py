"""Classification data as a folder of images with a CSV of labels, Kaggle's usual layout.

The label file is `labels.csv`, `train.csv`, `train_labels.csv` or `trainLabels.csv` in the data
folder (or any file given with `--labels`); `val.csv` (`valid.csv`, `validation.csv`) and
`test.csv` beside it, when they hold labels, are the validation and test splits, else validation
is carved out of train as for any source. Columns are told apart by name (`id`, `image`,
`filename`... and `label`, `class`, `breed`...) or by content: the column whose values name image
files, and the one other column; one-hot columns (`healthy,rust,scab` of 0s and 1s) name the class
by their header. File names may leave out their extension; images are looked for in the folder
named after the file (`train/` for train.csv), `images/`, and the data folder's subfolders.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
from pathlib import Path

import numpy as np
import tensorflow as tf

from finetune import files
from finetune.data.image_index import ImageIndex, search_folders
from finetune.data.images import check_files, summarize_skipped
from finetune.data.source import Source, file_items, file_source
from finetune.data.text_tables import RowCheck, read_text
from zoo.errors import ZooError

log = logging.getLogger(__name__)

LABEL_FILES = ("labels.csv", "train.csv", "train_labels.csv", "trainLabels.csv")
OTHER_SPLIT_FILES = {"validation": ("val.csv", "valid.csv", "validation.csv"), "test": ("test.csv",)}
FILE_COLUMNS = ("image", "image_id", "image_name", "filename", "file_name", "file", "fname", "path", "filepath",
                "image_path", "img", "id", "id_code", "name")
LABEL_COLUMNS = ("label", "labels", "class", "class_name", "category", "target", "breed", "species", "diagnosis",
                 "y")
DELIMITERS = (",", ";", "\t", "|")
MISSING_SHOWN = 10  # missing files named in the warning
EXPECTED = "a CSV of image file names and labels, e.g. a header `image,label` then `cat1.jpg,cat` rows"


@dataclasses.dataclass
class LabelTable:
    """The rows of a label file: (line number, the file name as written, its label)."""

    path: Path
    rows: list[tuple[int, str, str]]


def find_label_file(root: Path) -> Path | None:
    """The label file a data folder holds by one of the usual names, or None."""
    return next((root / name for name in LABEL_FILES if (root / name).is_file()), None)


def resolve_labels_path(labels, root: Path) -> Path:
    """A --labels path as given, else relative to the data folder."""
    path = Path(labels).expanduser()
    if not path.exists() and not path.is_absolute() and (root / path).exists():
        path = root / path
    if not path.is_file():
        raise ZooError(f"no such labels file: {labels}" + ("" if not path.exists() else " (it is a folder)")
                       + f"; give {EXPECTED}")
    return path


def read_label_file(path: Path, index: ImageIndex, required: bool = True) -> LabelTable | None:
    """A label file's rows, its columns detected (see the module docstring). None, when not
    `required`, for a file without labels (Kaggle's test.csv holds only the images' ids)."""
    text = read_text(path, EXPECTED)
    reader = csv.reader(io.StringIO(text), delimiter=_delimiter(text))
    numbered = [(reader.line_num, row) for row in reader if any(map(str.strip, row))]
    if not numbered:
        raise ZooError(f"{path} is empty: expected {EXPECTED}")
    header = [name.strip() for name in numbered[0][1]]
    if index.find(header[0]) is None:
        numbered = numbered[1:]
    else:  # no header: the first row already names an image
        header = [f"column {number + 1}" for number in range(len(header))]
    if not numbered:
        raise ZooError(f"{path} has a header but no rows: expected {EXPECTED}")
    body = [row for _, row in numbered]
    file_column = _file_column(path, header, body, index)
    label_of = _label_reader(path, header, body, file_column, required)
    if label_of is None:
        return None
    check = RowCheck(path, "an image file name and its label", EXPECTED)
    rows = []
    for number, row in numbered:
        name = row[file_column].strip() if len(row) > file_column else ""
        label = label_of(row)
        if not name or not label:
            check.offending(number, ",".join(row))
        else:
            check.good()
            rows.append((number, name, label))
    check.finish()
    return LabelTable(path, rows)


def _delimiter(text: str) -> str:
    """The delimiter the first line has most of (a comma for a single column)."""
    header = text.splitlines()[0] if text else ""
    counts = {delimiter: header.count(delimiter) for delimiter in DELIMITERS}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _file_column(path: Path, header: list[str], body: list[list[str]], index: ImageIndex) -> int:
    lowered = [name.lower() for name in header]
    named = next((lowered.index(name) for name in FILE_COLUMNS if name in lowered), None)
    if named is not None:
        return named
    first_row = body[0]
    for column, value in enumerate(first_row):
        if index.find(value) is not None:
            return column
    raise ZooError(f"{path}: cannot tell which column names the image files (columns: {', '.join(header)}; "
                   f"none of the first row's values {first_row} is an image found here); name that column "
                   f"`image` or `filename`")


def _label_reader(path: Path, header: list[str], body: list[list[str]], file_column: int, required: bool):
    """row -> its label: from the label column, or from one-hot columns by their names. None when
    the file has no labels and none are `required`."""
    lowered = [name.lower() for name in header]
    named = next((lowered.index(name) for name in LABEL_COLUMNS if name in lowered), None)
    others = [column for column in range(len(header)) if column != file_column]
    if named is not None or len(others) == 1:
        column = named if named is not None else others[0]
        return lambda row: row[column].strip() if len(row) > column else ""
    if len(others) > 1 and all(_is_one_hot(row, others) for row in body[:100]):
        def hot_column(row):
            hot = [header[column] for column in others if len(row) > column and _is_one(row[column])]
            return hot[0].strip() if len(hot) == 1 else ""
        return hot_column
    if not required:
        return None
    if not others:
        raise ZooError(f"{path} has one column ({header[0]!r} in its first line): expected {EXPECTED}")
    raise ZooError(f"{path}: cannot tell which column holds the labels (columns: {', '.join(header)}); name it "
                   f"`label` or `class`")


def _is_one(value: str) -> bool:
    try:
        return float(value) == 1.0
    except ValueError:
        return False


def _is_one_hot(row: list[str], columns: list[int]) -> bool:
    try:
        values = [float(row[column]) for column in columns]
    except (ValueError, IndexError):
        return False
    return set(values) <= {0.0, 1.0} and values.count(1.0) == 1


def _split_files(root: Path, labels: Path | None) -> dict[str, Path]:
    """Which label file holds which split: the given or found one is train; val.csv and test.csv beside it."""
    train = labels or find_label_file(root)
    if train is None:
        raise ZooError(f"{root} has no label file ({', '.join(LABEL_FILES)}): pass --labels FILE")
    by_split = {"train": train}
    for role, names in OTHER_SPLIT_FILES.items():
        found = next((train.parent / name for name in names if (train.parent / name).is_file()), None)
        if found is not None and found != train:
            by_split[role] = found
    return by_split


def _image_folders(root: Path, path: Path, role: str) -> list[Path]:
    """Where a label file's images are looked for first: the folder named after it (train/ for
    train.csv, train_images/), train/ for the main labels file, then the file's own folder."""
    names = [path.stem, f"{path.stem}_images"] + (["train", "train_images"] if role == "train" else [])
    return search_folders(root, first=[*(path.parent / name for name in names), path.parent])


def _sorted_labels(labels) -> list[str]:
    """Class names in order: numerically when every label is an integer (0, 1, 2, 10), else by name."""
    labels = set(labels)
    if all(label.lstrip("-").isdigit() for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


@dataclasses.dataclass
class _Candidate:
    role: str
    path: Path
    label: str


def _candidates(root: Path, by_split: dict[str, Path]) -> tuple[list[_Candidate], list[tuple[str, str]]]:
    """Every labelled image found, by split, and the names not found (name, label file)."""
    candidates, missing = [], []
    for role, path in by_split.items():
        index = ImageIndex(_image_folders(root, path, role))
        table = read_label_file(path, index, required=role == "train")
        if table is None:
            log.info("%s holds no labels: left out (validation comes out of %s)", path, by_split["train"].name)
            continue
        labelled: dict[Path, tuple[str, int]] = {}
        for number, name, label in table.rows:
            found = index.find(name)
            if found is None:
                missing.append((name, path.name))
                continue
            earlier = labelled.get(found)
            if earlier is not None and earlier[0] != label:
                raise ZooError(f"{path}: {name} is labelled both {earlier[0]!r} (line {earlier[1]}) and {label!r} "
                               f"(line {number}); a classifier takes one label per image")
            if earlier is None:
                labelled[found] = (label, number)
                candidates.append(_Candidate(role, found, label))
        if not labelled:
            first = table.rows[0][1] if table.rows else "?"
            raise ZooError(f"none of the {len(table.rows)} images {path.name} names were found in "
                           f"{index.describe(root)} (the first: {first!r}); put them in {root} or a subfolder")
    return candidates, missing


def label_file_source(root: Path, labels, seed: int) -> Source:
    """A folder of images with a label file (found by name, or `labels`) as a source of (path, label)."""
    by_split = _split_files(root, resolve_labels_path(labels, root) if labels else None)
    candidates, missing = _candidates(root, by_split)
    if missing:
        names = ", ".join(name for name, _ in missing[:MISSING_SHOWN])
        more = f" and {len(missing) - MISSING_SHOWN} more" if len(missing) > MISSING_SHOWN else ""
        log.warning("%d image(s) named in %s were not found and are left out: %s%s", len(missing),
                    " and ".join(sorted({file for _, file in missing})), names, more)
    checked = check_files([str(candidate.path) for candidate in candidates], key=str(root.resolve()))
    if checked.skipped:
        log.warning(summarize_skipped(checked.skipped, root))
    usable = [(candidates[index], path) for index, path in zip(checked.indices, checked.paths)]
    class_names = _sorted_labels(candidate.label for candidate, _ in usable if candidate.role == "train")
    if len(class_names) < 2:
        raise ZooError(f"{by_split['train']} gives {len(class_names)} label(s) to readable images: a classifier needs "
                       f"at least two classes")
    _check_known_labels(by_split, usable, class_names)
    arrays = {}
    for role in by_split:
        examples = [(path, class_names.index(candidate.label)) for candidate, path in usable if candidate.role == role]
        if not examples:
            continue
        # A seeded order, as for class folders: capped runs see every class, nothing depends on row order.
        order = np.random.default_rng(seed).permutation(len(examples))
        arrays[role] = file_items([examples[index][0] for index in order], [examples[index][1] for index in order])
    skipped = [name for name, _ in missing] + [path for path, _ in checked.skipped]
    return file_source(arrays, class_names, skipped, str(by_split["train"]))


def _check_known_labels(by_split: dict[str, Path], usable, class_names: list[str]) -> None:
    """Validation and test labels must be classes the training split has readable images of."""
    known = set(class_names)
    for role, path in by_split.items():
        unknown = _sorted_labels({candidate.label for candidate, _ in usable
                                  if candidate.role == role and candidate.label not in known})
        if unknown:
            shown_labels = ", ".join(repr(label) for label in unknown[:MISSING_SHOWN])
            more = f" and {len(unknown) - MISSING_SHOWN} more" if len(unknown) > MISSING_SHOWN else ""
            raise ZooError(f"{path} has labels that no readable training image in {by_split['train'].name} has: "
                           f"{shown_labels}{more}; add training images of them or remove those rows")
