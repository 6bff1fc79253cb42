"""Data specs: the one string that names a dataset.

A data spec is one of
- ``builtin:NAME[/CONFIG]`` (and the default, None: ``builtin:zoo_shapes``): the project's own
  datasets, real TFDS builders generated locally on first use (``finetune.data.datasets``);
- ``tfds:NAME[/CONFIG][:SPLIT]``: any TFDS dataset, prepared in ``data_dir`` (the argument, else
  ``$ZOO_DATA_DIR``, else TFDS's default), downloaded when ``download`` is true. SPLIT (TFDS
  syntax, e.g. ``train[:10%]``) replaces the training split; validation is then carved from it;
- a folder of class subfolders of images (JPEG/PNG/BMP/GIF), optionally under ``train/``,
  ``val/`` (or ``validation/``) and ``test/``; or a folder of images with a CSV of labels
  (``finetune.data.label_files``); for captioning, a folder with its caption file
  (``finetune.data.caption_files``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from zoo.errors import ZooError

DEFAULT_SPEC = "builtin:zoo_shapes"
DEFAULT_CAPTIONS_SPEC = "builtin:zoo_shape_captions"
SPEC_KINDS = ("builtin", "tfds")


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """A parsed data spec: kind "builtin", "tfds" or "folder"; name (with /CONFIG) or folder path; split."""

    kind: str
    name: str
    split: str | None = None

    def __str__(self) -> str:
        if self.kind == "folder":
            return self.name
        return f"{self.kind}:{self.name}" + (f":{self.split}" if self.split else "")


def parse_spec(spec: str | None, default: str = DEFAULT_SPEC) -> DataSpec:
    """Reads a data spec string (see the module docstring); None means `default`."""
    spec = default if spec is None else str(spec).strip()
    if not spec:
        raise ZooError("the data spec is empty; give builtin:NAME, tfds:NAME[/CONFIG][:SPLIT] or a folder")
    for kind in SPEC_KINDS:
        if spec.startswith(kind + ":"):
            name, _, split = spec[len(kind) + 1:].partition(":")
            if not name or name.startswith("/") or name.endswith("/") or name.count("/") > 1:
                raise ZooError(f"bad data spec {spec!r}: expected {kind}:NAME[/CONFIG][:SPLIT]")
            return DataSpec(kind, name, split or None)
    if ":" in spec.split("/")[0] and not Path(spec).exists():
        raise ZooError(f"bad data spec {spec!r}: use builtin:NAME, tfds:NAME[/CONFIG][:SPLIT] or a folder path")
    return DataSpec("folder", spec)


def resolve_data_dir(data_dir: str | None) -> str | None:
    """Where TFDS data lives: the argument, else $ZOO_DATA_DIR, else None (TFDS's default)."""
    return data_dir or os.environ.get("ZOO_DATA_DIR") or None
