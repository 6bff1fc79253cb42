"""Image files found by the names a caption or label file gives them.

Datasets that come as a folder of images plus a file of captions or labels name each image by its
file name (`1000268201_693b08cb0e.jpg`), by its name without extension (Kaggle's `id` columns), or
by a path relative to the dataset's folder; the images sit beside the file, in `images/`, or in a
folder of their own one or two levels down (`Flicker8k_Dataset/`, `flickr30k_images/flickr30k_images/`,
`train2017/`). The index looks in those folders in order of preference, first match winning.
"""

from __future__ import annotations

import os
from pathlib import Path

from finetune.data.images import IMAGE_EXTENSIONS

NAMED_IMAGE_FOLDERS = ("images", "Images", "imgs")


def search_folders(root: Path, first=()) -> list[Path]:
    """Folders to look for images in, most likely first: `first`, `root`, its images/ folder, its
    other subfolders, then theirs (two levels down at most); hidden folders are left out."""
    children = _subfolders(root)
    grandchildren = [grandchild for child in children for grandchild in _subfolders(child)]
    ordered = [*first, root, *(root / name for name in NAMED_IMAGE_FOLDERS), *children, *grandchildren]
    unique: list[Path] = []
    for folder in ordered:
        if folder.is_dir() and folder not in unique:
            unique.append(folder)
    return unique


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(entry for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    except OSError:
        return []


def has_image_extension(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


class ImageIndex:
    """The image files of some folders, found by file name, by name without extension, or by a path
    relative to one of the folders. Folders are listed on first use, one at a time, as needed."""

    def __init__(self, folders: list[Path]):
        self.folders = list(dict.fromkeys(folders))
        self._by_name: dict[str, Path] = {}
        self._by_stem: dict[str, Path] = {}
        self._by_lower_name: dict[str, Path] = {}
        self._listed = 0

    def find(self, name: str) -> Path | None:
        """The file `name` refers to, or None."""
        name = name.strip().replace("\\", "/")
        if not name:
            return None
        if "/" in name:
            for folder in self.folders:
                if (folder / name).is_file():
                    return folder / name
            name = name.rsplit("/", 1)[1]
        while True:
            found = (self._by_name.get(name) or self._by_lower_name.get(name.lower())
                     or (None if has_image_extension(name) else self._by_stem.get(name)))
            if found is not None or not self._list_next_folder():
                return found

    def _list_next_folder(self) -> bool:
        """Adds the next folder's images to the index; False when every folder is listed."""
        if self._listed == len(self.folders):
            return False
        folder = self.folders[self._listed]
        self._listed += 1
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:
            return True
        for entry in entries:
            if entry.name.startswith(".") or not has_image_extension(entry.name) or not entry.is_file():
                continue
            path = Path(entry.path)
            self._by_name.setdefault(entry.name, path)
            self._by_lower_name.setdefault(entry.name.lower(), path)
            self._by_stem.setdefault(os.path.splitext(entry.name)[0], path)
        return True

    def describe(self, root: Path) -> str:
        """Where it looked, for messages: the folders relative to `root`."""
        shown = [str(folder.relative_to(root)) if folder.is_relative_to(root) else str(folder)
                 for folder in self.folders[:4]]
        names = ", ".join("." if name == "." else name + "/" for name in shown)
        more = f" and {len(self.folders) - 4} more folder(s)" if len(self.folders) > 4 else ""
        return f"{root} ({names}{more})"
