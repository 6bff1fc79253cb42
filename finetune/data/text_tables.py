"""Text files of rows that name images (caption files, label files): read as text, and checked row
by row, so that a few bad rows are skipped with a warning and a file that is not what it seems is
an error showing its first offending line."""

from __future__ import annotations

import logging
from pathlib import Path

from zoo.errors import ZooError

log = logging.getLogger(__name__)

MAX_BAD_ROW_FRACTION = 0.1  # more rows than this that fit no format: the file is not what it seems
SHOWN_CHARACTERS = 120


def read_text(path: Path, expected: str) -> str:
    """A text file's content (UTF-8, a byte-order mark allowed); errors say what was `expected`."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ZooError(f"{path} is not UTF-8 text: expected {expected}") from None
    except IsADirectoryError:
        raise ZooError(f"{path} is a folder: expected a file of {expected}") from None
    except OSError as error:
        raise ZooError(f"cannot read {path}: {error.strerror or error}") from None


def shown(line: str) -> str:
    return repr(line[:SHOWN_CHARACTERS] + ("..." if len(line) > SHOWN_CHARACTERS else ""))


class RowCheck:
    """Counts a file's rows and remembers those that do not fit its format (`expected`)."""

    def __init__(self, path: Path, expected: str, formats: str):
        self.path, self.expected, self.formats = path, expected, formats
        self.bad: list[tuple[int, str]] = []
        self.count = 0

    def good(self) -> None:
        self.count += 1

    def offending(self, number: int, line: str) -> None:
        self.count += 1
        self.bad.append((number, line))

    def finish(self) -> None:
        """An error when no row or too many rows fit, a warning naming the first bad row when a few do not."""
        if not self.bad:
            if not self.count:
                raise ZooError(f"{self.path} has no rows: expected {self.expected}")
            return
        number, line = self.bad[0]
        first = f"line {number}: {shown(line)}"
        if len(self.bad) == self.count or len(self.bad) > MAX_BAD_ROW_FRACTION * self.count:
            raise ZooError(f"{self.path}: {len(self.bad)} of {self.count} rows are not {self.expected}; the first, "
                           f"{first}. Fix the file, or give {self.formats}")
        log.warning("Skipped %d row(s) of %s that are not %s; the first, %s", len(self.bad), self.path, self.expected,
                    first)
