"""What a weights file from anywhere may make the readers do: bounded memory, one-line errors.

Every reader checks what a file declares (zip members' sizes, HDF5 datasets' shapes, a pickle's
length, tensor views' extents, storages' element counts) against the file's real size before
anything is allocated: reading one file may allocate at most `ALLOWANCE_BYTES` plus `EXPANSION`
times its size (`Budget`). Uncompressed formats hold their arrays byte for byte, so real files
use a small part of it; DEFLATE expands at most about 1032 times, and weights, which are close to
random, hardly compress at all, so a file claiming more is a bomb, not weights. Keras's own
loader has the same rule for its archive members and HDF5 datasets, with a 4 GiB floor (100 and
1000 times); the zoo's floor is lower because nothing it reads needs more.

Text taken from a file (keys, names, Keras's reasons) enters messages through `brief`, one line
of bounded length, and any failure a reader did not foresee leaves it as a ZooError naming the
file (`reading`), never as a traceback.
"""

from __future__ import annotations

import contextlib
import os
import reprlib

from zoo.errors import ZooError

ALLOWANCE_BYTES = 64 * 2**20  # what any file may expand to, however small
EXPANSION = 100  # how many times its size a file may expand to beyond that
MAX_JSON_BYTES = 16 * 2**20  # a config.json or weights record (a ResNet-152's config is under 1 MiB)
MAX_NAME_LENGTH = 1000  # a tensor's or layer's name ("layer4.1.bn2.running_var" has 24 characters)
MESSAGE_TEXT_LENGTH = 200  # characters of a file's own text that a message quotes

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 2, 60, 60, 40
_REPR.maxtuple = _REPR.maxlist = _REPR.maxdict = _REPR.maxset = _REPR.maxfrozenset = 6


def brief(text, limit: int = MESSAGE_TEXT_LENGTH) -> str:
    """Text from a file as one line of at most `limit` characters: whitespace runs become one
    space, other control characters are escaped, and a longer text is cut with "..."."""
    text = " ".join(str(text).split())
    if not text.isprintable():
        text = "".join(each if each.isprintable() else repr(each)[1:-1] for each in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_value(value) -> str:
    """A value from a file shown in a message: a bounded repr (nested containers cut, long
    strings shortened), safe for self-referencing and deeply nested values."""
    return brief(_REPR.repr(value))


def check_name(name, path: str, what: str = "a name") -> str:
    """A key or layer name from a file, refused when it is not a short one-line string."""
    if not isinstance(name, str):
        raise ZooError(f"{path} has {what} that is a {type(name).__name__}, not a string ({describe_value(name)})")
    if len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise ZooError(f"{path} has {what} of {len(name):,} characters that is not a plain one-line name "
                       f"({describe_value(name)}): the file is damaged or not a weights file")
    return name


class Budget:
    """What reading one file may allocate: ALLOWANCE_BYTES + EXPANSION x the file's size, spent as
    the reader learns what the file declares and before it allocates it."""

    def __init__(self, path: str, size: int | None = None):
        self.path = path
        self.size = os.path.getsize(path) if size is None else size
        self.left = ALLOWANCE_BYTES + EXPANSION * self.size

    def spend(self, declared: int, what: str) -> None:
        if declared > self.left:
            raise ZooError(
                f"refusing to read {self.path}: {what} declares {declared:,} bytes, more than a {self.size:,}-byte "
                f"file can hold ({self.left:,} bytes are left of its allowance): the file is damaged or made to "
                f"exhaust memory")
        self.left -= declared


@contextlib.contextmanager
def reading(path, what: str):
    """Turns any failure a reader did not foresee into a ZooError naming the file and `what` it
    was read as (a damaged file can fail deep in a library: a bad CRC, a wrong type, a too deep
    nesting, memory)."""
    try:
        yield
    except ZooError:
        raise
    except MemoryError:
        raise ZooError(f"refusing to read {path}: it asks for more memory than there is, so it is damaged or made "
                       f"to exhaust memory") from None
    except RecursionError:
        raise ZooError(f"{path} is not a readable {what}: it nests deeper than any {what} does") from None
    except Exception as error:  # noqa: BLE001 - the boundary: nothing but a ZooError leaves a reader
        raise ZooError(f"{path} is not a readable {what} ({type(error).__name__}: {brief(error)})") from None
