"""Caption files as captioning datasets are distributed, their format told from their content.

- a table with a header naming its image and caption columns, comma-, pipe- or tab-separated:
  Flickr8k from Kaggle (`captions.txt`: `image,caption`, captions with unquoted commas),
  Flickr30k's `results.csv` (`image_name| comment_number| comment`), the kit's own `captions.csv`
  (`image,caption`, the header optional);
- `image#n<TAB>caption` lines: Flickr8k's `Flickr8k.token.txt` (and Flickr30k's `.token`), whose
  `Flickr_8k.trainImages.txt` / `devImages` / `testImages` lists, when present beside it, define
  the train, validation and test splits;
- COCO's `captions_<split><year>.json` (`images` with `id` and `file_name`, `annotations` with
  `image_id` and `caption`), one split per file, its images in the folder named after the split.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import re
from pathlib import Path

from finetune.data.image_index import has_image_extension
from finetune.data.text_tables import RowCheck, read_text, shown
from zoo.errors import ZooError

log = logging.getLogger(__name__)

# What a folder's caption file may be called, most specific first; found in the folder or one level down.
CAPTION_FILE_PATTERNS = ("captions.csv", "captions.txt", "results.csv", "*.token.txt", "*.token", "captions_*.json")
IMAGE_COLUMNS = ("image", "image_name", "filename", "file_name", "file", "img", "image_file", "path")
CAPTION_COLUMNS = ("caption", "comment", "text", "sentence", "description", "captions")
DELIMITERS = (",", "|", "\t", ";")
TOKEN_LINE = re.compile(r"^(?P<image>[^\t#]+)#\d+\t(?P<caption>.*)$")
# Flickr8k's split lists, beside its token file: role -> the end of the list's file name
SPLIT_LISTS = {"train": "trainImages.txt", "validation": "devImages.txt", "test": "testImages.txt"}
COCO_SPLITS = {"train": "train", "val": "validation", "test": "test"}
EXPECTED_FORMATS = ("a CSV whose header names the image and caption columns (image,caption), "
                    "`image_name| comment_number| comment` rows (Flickr30k's results.csv), "
                    "`image.jpg#0<TAB>caption` lines (Flickr8k.token.txt), or COCO's captions_*.json")


@dataclasses.dataclass
class CaptionFile:
    """The captions of one file: {image name: captions}, and the folder its images are looked for first."""

    path: Path
    captions: dict[str, list[str]]
    image_folder: Path | None = None


@dataclasses.dataclass
class CaptionSplits:
    """A folder's captions by split role ("train", and "validation"/"test" where the files define them)."""

    splits: dict[str, CaptionFile]
    described: str  # the files read, for messages


def find_caption_files(root: Path) -> list[Path]:
    """The caption file of a folder (or the COCO files of one folder), or [] when it has none."""
    folders = [root, *sorted(child for child in root.iterdir() if child.is_dir() and not child.name.startswith("."))]
    for pattern in CAPTION_FILE_PATTERNS:
        for folder in folders:
            found = sorted(path for path in folder.glob(pattern) if path.is_file() and "lemma" not in path.name)
            if found:
                return found if pattern.endswith(".json") else found[:1]
    return []


def read_caption_splits(source: Path) -> CaptionSplits:
    """The captions of a folder (its caption file found by name) or of a caption file given itself."""
    if source.is_file():
        files = [source]
    else:
        files = find_caption_files(source)
        if not files:
            raise ZooError(f"{source} has no caption file: add captions.csv (image,caption rows) beside the images, "
                           f"or give a folder holding Flickr8k's captions.txt or Flickr8k.token.txt, Flickr30k's "
                           f"results.csv or COCO's annotations/captions_*.json")
    described = ", ".join(str(path) for path in files)
    if len(files) > 1 or files[0].suffix == ".json":
        return CaptionSplits(_coco_splits(files), described)
    caption_file = read_caption_file(files[0])
    lists = _split_lists(files[0].parent)
    if not lists:
        return CaptionSplits({"train": caption_file}, described)
    return CaptionSplits(_listed_splits(caption_file, lists), described + " with " + ", ".join(
        path.name for path in lists.values()))


def read_caption_file(path: Path) -> CaptionFile:
    """One caption file, in whichever format its content shows (see the module docstring)."""
    text = read_text(path, EXPECTED_FORMATS)
    first_line = next((line for line in text.splitlines() if line.strip()), None)
    if first_line is None:
        raise ZooError(f"{path} is empty: expected {EXPECTED_FORMATS}")
    if first_line.lstrip().startswith(("{", "[")):
        return _coco_file(path, text)
    if TOKEN_LINE.match(first_line):
        return CaptionFile(path, _token_lines(path, text))
    return CaptionFile(path, _table(path, text, first_line))


class _Captions:
    """Captions gathered row by row, with the rows that fit the file's format not (`RowCheck`)."""

    def __init__(self, path: Path, expected: str):
        self.check = RowCheck(path, expected, EXPECTED_FORMATS)
        self.captions: dict[str, list[str]] = {}

    def add(self, number: int, line: str, image: str | None, caption: str | None) -> None:
        image, caption = (image or "").strip(), (caption or "").strip()
        if not image or not caption:
            self.check.offending(number, line)
            return
        self.check.good()
        self.captions.setdefault(image, []).append(caption)

    def result(self) -> dict[str, list[str]]:
        self.check.finish()
        return self.captions


def _token_lines(path: Path, text: str) -> dict[str, list[str]]:
    captions = _Captions(path, "`image.jpg#n<TAB>caption` lines")
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            match = TOKEN_LINE.match(line)
            captions.add(number, line, match and match["image"], match and match["caption"])
    return captions.result()


def _table(path: Path, text: str, first_line: str) -> dict[str, list[str]]:
    """A delimited table: with a header naming its columns, or `image<delimiter>caption` rows without one."""
    layout = _header_layout(first_line) or _headerless_layout(first_line)
    if layout is None:
        raise ZooError(f"{path}: cannot tell its format from its first line {shown(first_line)}; expected "
                       f"{EXPECTED_FORMATS}")
    delimiter, image_column, caption_column, has_header = layout
    captions = _Captions(path, f"rows of {delimiter!r}-separated image and caption")
    width = None
    # Line by line, not one csv reader over the text: a row with more fields than the header is
    # rebuilt from its own line (Kaggle's Flickr8k captions.txt leaves commas in captions unquoted).
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        row = next(csv.reader([line], delimiter=delimiter, skipinitialspace=True))
        if width is None:
            width = len(row)
            if has_header:
                continue
        if caption_column == width - 1 and len(row) > width:
            row = [*row[:caption_column], line.split(delimiter, caption_column)[caption_column]]
        fits = len(row) > max(image_column, caption_column)
        captions.add(number, line, row[image_column] if fits else None, row[caption_column] if fits else None)
    return captions.result()


def _header_layout(line: str):
    """(delimiter, image column, caption column, True) when `line` is a header naming both columns."""
    for delimiter in DELIMITERS:
        names = [name.strip().lower() for name in next(csv.reader([line], delimiter=delimiter))]
        image = next((names.index(name) for name in IMAGE_COLUMNS if name in names), None)
        caption = next((names.index(name) for name in CAPTION_COLUMNS if name in names), None)
        if image is not None and caption is not None:
            return delimiter, image, caption, True
    return None


def _headerless_layout(line: str):
    """(delimiter, 0, 1, False) when `line` is already an `image<delimiter>caption` row."""
    for delimiter in DELIMITERS:
        fields = next(csv.reader([line], delimiter=delimiter))
        if len(fields) >= 2 and has_image_extension(fields[0].strip()):
            return delimiter, 0, 1, False
    return None


def _coco_file(path: Path, text: str) -> CaptionFile:
    expected = ('COCO captions: an object with "images" ([{"id", "file_name"}]) and "annotations" '
                '([{"image_id", "caption"}])')
    try:
        values = json.loads(text)
    except json.JSONDecodeError as error:
        raise ZooError(f"{path} is not valid JSON ({error}); expected {expected}") from None
    if not isinstance(values, dict) or not isinstance(values.get("images"), list) \
            or not isinstance(values.get("annotations"), list):
        raise ZooError(f"{path} is JSON but not {expected}")
    try:
        names = {image["id"]: image["file_name"] for image in values["images"]}
    except (KeyError, TypeError):
        raise ZooError(f"{path}: every entry of \"images\" needs an \"id\" and a \"file_name\"") from None
    captions = _Captions(path, 'annotations with an "image_id" of "images" and a "caption"')
    for number, annotation in enumerate(values["annotations"], start=1):
        annotation = annotation if isinstance(annotation, dict) else {}
        captions.add(number, json.dumps(annotation), names.get(annotation.get("image_id")),
                     annotation.get("caption") if isinstance(annotation.get("caption"), str) else None)
    return CaptionFile(path, captions.result())


def _coco_splits(paths: list[Path]) -> dict[str, CaptionFile]:
    """COCO's files, one split each: captions_train2017.json is train, its images in train2017/."""
    splits = {}
    for path in paths:
        name = path.stem.removeprefix("captions_")  # e.g. train2017
        role = COCO_SPLITS.get(re.sub(r"\d+$", "", name), "train" if len(paths) == 1 else None)
        if role is None or role in splits:
            log.warning("Left out %s: not a train, val or test file of COCO captions", path)
            continue
        caption_file = read_caption_file(path)
        root = path.parent.parent if path.parent.name == "annotations" else path.parent
        caption_file.image_folder = root / name
        splits[role] = caption_file
    if "train" not in splits and "validation" in splits:
        splits["train"] = splits.pop("validation")  # val alone: the data to train on, validation carved from it
    if "train" not in splits:
        raise ZooError(f"{paths[0].parent} has no COCO captions to train on: expected captions_train*.json "
                       f"or captions_val*.json")
    return splits


def _split_lists(folder: Path) -> dict[str, Path]:
    """Flickr8k's lists of the images of each split, found beside its caption file."""
    found = {}
    for role, ending in SPLIT_LISTS.items():
        matches = sorted(path for path in folder.glob(f"*{ending}") if path.is_file())
        if matches:
            found[role] = matches[0]
    return found if "train" in found else {}


def _listed_splits(caption_file: CaptionFile, lists: dict[str, Path]) -> dict[str, CaptionFile]:
    """The captions of each split's listed images; an image in no list is left out."""
    splits, listed = {}, set()
    for role, path in lists.items():
        names = [line.strip() for line in read_text(path, "one image file name a line").splitlines() if line.strip()]
        listed.update(names)
        # A listed image without captions stays, with none: the folder reading reports it missing.
        splits[role] = CaptionFile(caption_file.path, {name: caption_file.captions.get(name, []) for name in names})
    unlisted = len(set(caption_file.captions) - listed)
    if unlisted:
        log.info("%d captioned image(s) of %s are in none of the split lists and are left out", unlisted,
                 caption_file.path)
    return splits
