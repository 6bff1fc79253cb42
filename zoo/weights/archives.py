"""Zip archives from anywhere (`.keras` models, PyTorch checkpoints) opened and read within bounds.

Each member's declared size is spent from the file's `Budget` before it is read, so a member that
claims gigabytes in a few kilobytes (a zip bomb) is refused unread; members that are encrypted,
compressed with a method Python lacks, damaged (a bad CRC) or named to escape the folder they
would be extracted to are refused with the file's name.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import posixpath
import struct
import zipfile

from zoo.errors import ZooError
from zoo.weights.untrusted import MAX_JSON_BYTES, Budget, brief, reading

ENCRYPTED_FLAG = 0x1
LOCAL_HEADER = struct.Struct("<4s22xHH")  # a member's local header: signature, ..., name and extra field lengths
LOCAL_HEADER_SIGNATURE = b"PK\x03\x04"


@contextlib.contextmanager
def open_archive(path: str, what: str):
    """The zip archive at `path`, or a ZooError saying it is damaged (a truncated central directory)."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as error:
        raise ZooError(f"{path} is a damaged zip archive, so not a readable {what} ({brief(error)}): "
                       f"download or copy it again") from None
    with archive, reading(path, what):
        yield archive


def check_member_name(name: str, path: str) -> None:
    """Refuses a member name that would land outside the folder the archive is extracted to."""
    normalized = posixpath.normpath(name.replace("\\", "/"))
    if name.startswith(("/", "\\")) or normalized == ".." or normalized.startswith("../") or ":" in name.split("/")[0]:
        raise ZooError(f"refusing to read {path}: its member {brief(name)!r} points outside the archive "
                       f"(a path-traversal name no saved model has)")


def check_member(info: zipfile.ZipInfo, path: str, budget: Budget | None,
                 limit: int | None = None) -> None:
    """Checks that a member can be read and that its declared size fits `limit` and the budget."""
    check_member_name(info.filename, path)
    name = brief(info.filename)
    if info.flag_bits & ENCRYPTED_FLAG:
        raise ZooError(f"{path}: its member {name} is encrypted, which no saved model or checkpoint is")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        raise ZooError(f"{path}: its member {name} is compressed with method {info.compress_type}, which "
                       f"Python's zipfile cannot read: the file is damaged or not a saved model or checkpoint")
    if limit is not None and info.file_size > limit:
        raise ZooError(f"refusing to read {path}: its member {name} declares {info.file_size:,} bytes, more than "
                       f"the {limit:,} such a member ever needs")
    if budget is not None:
        budget.spend(info.file_size, f"its member {name}")


def read_member(archive: zipfile.ZipFile, name: str, path: str, budget: Budget | None = None,
                limit: int | None = None, size: int | None = None) -> bytes:
    """A member's bytes (the first `size` of them, if given), its declared size checked first."""
    info = archive.getinfo(name)
    check_member(info, path, budget, limit)
    try:
        with archive.open(info) as member:
            return member.read() if size is None else member.read(size)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as error:
        raise ZooError(f"{path} is damaged: its member {brief(name)} cannot be read ({brief(error)}): "
                       f"download or copy it again") from None


def read_json_member(path: str, name: str, what: str):
    """A JSON member of an archive (None when the archive lacks it), at most MAX_JSON_BYTES."""
    with open_archive(path, what) as archive:
        if name not in archive.namelist():
            return None
        text = read_member(archive, name, path, limit=MAX_JSON_BYTES)
        try:
            return json.loads(text.decode("utf8"))
        except RecursionError:
            raise ZooError(f"{path}: its {name} nests deeper than any {what} does") from None
        except ValueError as error:
            raise ZooError(f"{path}: its {name} is not JSON ({brief(error)})") from None


class _Window(io.RawIOBase):
    """The bytes of a stored member read in place: seek and read within them, nothing else of the file."""

    def __init__(self, file, start: int, size: int):
        super().__init__()
        self.file, self.start, self.size, self.position = file, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.position, os.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer) -> int:
        count = max(0, min(len(buffer), self.size - self.position))
        self.file.seek(self.start + self.position)
        data = self.file.read(count)
        buffer[:len(data)] = data
        self.position += len(data)
        return len(data)


@contextlib.contextmanager
def member_file(archive: zipfile.ZipFile, name: str, path: str):
    """A member as a seekable file object: a stored one (as Keras writes them) read in place, so
    that h5py reads only the parts it needs of a large one; a compressed one read into memory
    (its size is the caller's to have checked)."""
    info = archive.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED:
        yield io.BytesIO(read_member(archive, name, path))
        return
    with open(path, "rb") as file:
        file.seek(info.header_offset)
        header = file.read(LOCAL_HEADER.size)
        signature, name_length, extra_length = LOCAL_HEADER.unpack(header) if len(header) == LOCAL_HEADER.size else (b"", 0, 0)
        start = info.header_offset + LOCAL_HEADER.size + name_length + extra_length
        if signature != LOCAL_HEADER_SIGNATURE or start + info.compress_size > os.path.getsize(path):
            raise ZooError(f"{path} is damaged: its member {brief(name)} is not where its directory says: download or "
                           f"copy it again")
        yield _Window(file, start, info.compress_size)
