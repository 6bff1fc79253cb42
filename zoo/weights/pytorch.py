"""PyTorch checkpoints (`.pth`, `.pt`, `.bin`) read into numpy arrays without PyTorch.

`torch.save` writes a pickle whose tensors point into raw storages: in a zip archive
(``ARCHIVE/data.pkl``, ``ARCHIVE/data/KEY``, ``ARCHIVE/byteorder``; PyTorch 1.6 and later) or, in
the legacy stream, after the pickle (magic number, protocol 1001, system info, the pickle, the
storage keys, then each storage as an int64 element count and its bytes).

A pickle can name any Python callable and have it run on load, so it is read by an unpickler of
this module (the same idea as PyTorch's own `weights_only` loader), built on Python's pure-Python
one so that every opcode is under its control:

- a name the pickle asks for (GLOBAL, STACK_GLOBAL) resolves only when it is on the allow-list,
  and then to an inert marker (`AllowedName`), never to a Python object: the ordered dict, the
  tensor-rebuild functions and the storage types are called by REDUCE through this module's own
  functions, which check their arguments, so nothing a pickle can reach is shared or mutable;
- the opcodes that build arbitrary objects (INST, OBJ, NEWOBJ, EXT) are refused; BUILD only on
  an ordered dict the same pickle made (torch.save keeps a state dict's ``_metadata`` so; it is
  dropped); containers only take plain keys (strings, numbers), so hashing never recurses;
- the pickle may be MAX_PICKLE_BYTES long and make MAX_PICKLE_OBJECTS objects, its memo is a dict
  (an index of 2**32 costs one entry), and the tensors' sizes, strides and offsets are checked
  against their storages, the storages against the file, and everything allocated against the
  file's `Budget` (`zoo.weights.untrusted`) before it is.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import math
import os
import pickle
import struct
import typing
import zipfile

import numpy as np

from zoo.errors import ZooError
from zoo.weights.archives import open_archive, read_member
from zoo.weights.untrusted import Budget, brief, check_name, describe_value, reading

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
BFLOAT16 = "bfloat16"  # numpy has no bfloat16: such storages are widened to float32 when read
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16, "BFloat16Storage": BFLOAT16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
    "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
STATE_DICT_KEYS = ("state_dict", "model", "model_state", "model_state_dict")
MAX_PICKLE_BYTES = 8 * 2**20  # a ResNet-152 state dict's pickle is about 100 KiB, with its optimizer's 300 KiB
MAX_PICKLE_OBJECTS = 500_000  # containers, calls and memo entries (about 15 per tensor)
MAX_DIMENSIONS = 32
MAX_EXTENT = 2**62  # a size, stride, offset or element count past which nothing fits in memory
ORDERED_DICT = ("collections", "OrderedDict")
REBUILD_TENSOR = ("torch._utils", "_rebuild_tensor_v2")
REBUILD_PARAMETER = ("torch._utils", "_rebuild_parameter")
ALLOWED_NAMES = frozenset({ORDERED_DICT, REBUILD_TENSOR, REBUILD_PARAMETER, *(("torch", name) for name in STORAGE_DTYPES)})
PLAIN_KEYS = (str, int, float, bytes, type(None))  # what dict keys and set items may be (bool is an int)


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle asked for a name outside the allow-list."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


class RefusedPickle(pickle.UnpicklingError):
    """The pickle did something a checkpoint's pickle does not (the message says what)."""


class AllowedName(typing.NamedTuple):
    """What an allowed name unpickles to: a marker (immutable, no attributes to set) that REDUCE
    and persistent ids recognize; the pickle never holds the function or type itself."""

    module: str
    name: str

    def __str__(self) -> str:
        return f"{self.module}.{self.name}"


@dataclasses.dataclass(eq=False)
class LazyStorage:
    """A storage named by the pickle; its bytes are read after the pickle (legacy files store them there)."""

    type_name: str  # a key of STORAGE_DTYPES
    key: str
    numel: int
    data: np.ndarray | None = None

    @property
    def element_size(self) -> int:
        dtype = STORAGE_DTYPES[self.type_name]
        return 2 if dtype == BFLOAT16 else np.dtype(dtype).itemsize


@dataclasses.dataclass(eq=False)
class LazyTensor:
    """A strided view of a storage, made an array once the storage's bytes are read."""

    storage: LazyStorage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def to_array(self, path: str, budget: Budget) -> np.ndarray:
        data = self.storage.data
        if not all(self.size):  # no elements: nothing of the storage is read, whatever the strides say
            return np.zeros(self.size, data.dtype)
        what = f"a tensor of its storage {self.storage.key}"
        last = self.offset + sum((length - 1) * step for length, step in zip(self.size, self.stride))
        if last >= data.size:  # a lying file must not make as_strided read past the storage
            raise ZooError(f"{path}: {what} (size {self.size}, stride {self.stride}, offset {self.offset}) reaches "
                           f"past the storage's {data.size:,} elements: the file is damaged")
        budget.spend(math.prod(self.size) * data.itemsize, f"{what} of size {self.size}")
        strides = tuple(step * data.itemsize if length > 1 else 0 for length, step in zip(self.size, self.stride))
        view = np.lib.stride_tricks.as_strided(data[self.offset:], shape=self.size, strides=strides)
        return np.array(view)  # a copy: the view's elements, within the storage (checked above)


def _extents(values, what: str) -> tuple[int, ...]:
    """A tensor's size or stride: a short tuple of ints in [0, MAX_EXTENT)."""
    if not isinstance(values, (tuple, list)) or len(values) > MAX_DIMENSIONS:
        raise RefusedPickle(f"gives a tensor a {what} of {describe_value(values)}, not a tuple of at most "
                            f"{MAX_DIMENSIONS} numbers")
    return tuple(_extent(value, what) for value in values)


def _extent(value, what: str) -> int:
    if type(value) is not int or not 0 <= value < MAX_EXTENT:
        raise RefusedPickle(f"gives a tensor a {what} of {describe_value(value)}, not a count")
    return value


def _new_ordered_dict(unpickler, args: tuple):
    if args:
        raise RefusedPickle(f"makes an OrderedDict from {describe_value(args)}, where torch.save gives no arguments")
    return collections.OrderedDict()


def _rebuild_tensor(unpickler, args: tuple) -> LazyTensor:
    # (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    if not 4 <= len(args) <= 7 or not isinstance(args[0], LazyStorage):
        raise RefusedPickle(f"rebuilds a tensor from {describe_value(args)}, not from a storage, offset, size and stride")
    size, stride = _extents(args[2], "size"), _extents(args[3], "stride")
    if len(size) != len(stride):
        raise RefusedPickle(f"gives a tensor the size {size} and the stride {stride}, of different lengths")
    return LazyTensor(args[0], _extent(args[1], "storage offset"), size, stride)


def _rebuild_parameter(unpickler, args: tuple) -> LazyTensor:
    # (data, requires_grad, backward_hooks)
    if not 1 <= len(args) <= 3 or not isinstance(args[0], LazyTensor):
        raise RefusedPickle(f"rebuilds a parameter from {describe_value(args)}, not from a tensor")
    return args[0]


CALLS = {ORDERED_DICT: _new_ordered_dict, REBUILD_TENSOR: _rebuild_tensor, REBUILD_PARAMETER: _rebuild_parameter}


def _plain(items, what: str):
    for item in items:
        if not isinstance(item, PLAIN_KEYS):
            raise RefusedPickle(f"uses a {type(item).__name__} as {what}, where a checkpoint has strings and numbers")
    return items


def _refuse_opcode(name: str):
    def refuse(unpickler):
        raise RefusedPickle(f"uses the {name} opcode, which builds arbitrary objects and which torch.save never writes")
    return refuse


def _counted(load):
    """An opcode of Python's unpickler that makes an object, counted against MAX_PICKLE_OBJECTS."""
    def counted(unpickler):
        unpickler.count()
        load(unpickler)
    return counted


class _BoundedReader:
    """A pickle's bytes from a file, at most MAX_PICKLE_BYTES of them, refused before they are read."""

    def __init__(self, file, path: str):
        self.file, self.path, self.left = file, path, MAX_PICKLE_BYTES

    def _take(self, count: int) -> None:
        if count > self.left:
            raise ZooError(f"refusing to read {self.path}: its pickle runs past {MAX_PICKLE_BYTES:,} bytes (a "
                           f"value of {count:,} bytes), more than a checkpoint's pickle ever needs")
        self.left -= count

    def read(self, size: int = -1) -> bytes:
        size = self.left + 1 if size is None or size < 0 else size
        self._take(size)
        data = self.file.read(size)
        self.left += size - len(data)
        return data

    def readline(self) -> bytes:
        line = self.file.readline(self.left + 1)
        self._take(len(line))
        if not line.endswith(b"\n"):  # a truncated file, not a name cut short
            raise EOFError
        return line


class AllowListUnpickler(pickle._Unpickler):  # the pure-Python unpickler: its opcodes are a table to take from
    """Resolves only ALLOWED_NAMES, to markers; storages come back as LazyStorage, tensors as LazyTensor."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, path: str):
        super().__init__(_BoundedReader(file, path))
        self.path = path
        self.storages: dict[str, LazyStorage] = {}
        self.objects = 0

    def count(self, number: int = 1) -> None:
        self.objects += number
        if self.objects > MAX_PICKLE_OBJECTS:
            raise RefusedPickle(f"makes more than {MAX_PICKLE_OBJECTS:,} objects, more than a checkpoint's pickle does")

    def find_class(self, module, name):
        if (module, name) not in ALLOWED_NAMES:
            raise RefusedGlobal(f"{brief(module, 80)}.{brief(name, 80)}")
        return AllowedName(module, name)

    def persistent_load(self, persistent_id):
        # ("storage", storage type, key, location, number of elements[, view metadata])
        self.count()
        if (not isinstance(persistent_id, tuple) or len(persistent_id) not in (5, 6)
                or not isinstance(persistent_id[0], str) or persistent_id[0] != "storage"):
            raise RefusedPickle(f"has a persistent id {describe_value(persistent_id)}, not a storage's")
        storage_type, key, numel = persistent_id[1], persistent_id[2], persistent_id[4]
        if not isinstance(storage_type, AllowedName) or storage_type.module != "torch" or storage_type.name not in STORAGE_DTYPES:
            raise RefusedPickle(f"has a storage of type {describe_value(storage_type)}, not a torch storage type")
        if len(persistent_id) == 6 and persistent_id[5] is not None:
            raise RefusedPickle("has a storage view of the pre-1.0 format, which is not supported")
        key = check_name(str(key) if type(key) is int else key, self.path, "a storage key")
        if type(numel) is not int or not 0 <= numel < MAX_EXTENT:
            raise RefusedPickle(f"gives its storage {key} {describe_value(numel)} elements, not a count")
        storage = self.storages.setdefault(key, LazyStorage(storage_type.name, key, numel))
        if (storage.type_name, storage.numel) != (storage_type.name, numel):
            raise RefusedPickle(f"gives its storage {key} two types or sizes")
        return storage

    def load_reduce(self):
        self.count()
        args = self.stack.pop()
        function = self.stack[-1]
        if not isinstance(function, AllowedName) or function not in CALLS:
            shown = function if isinstance(function, AllowedName) else describe_value(function)
            raise RefusedPickle(f"calls {shown}, which torch.save never calls")
        if not isinstance(args, tuple):
            raise RefusedPickle(f"calls {function} with {describe_value(args)}, not a tuple of arguments")
        self.stack[-1] = CALLS[function](self, args)

    def load_build(self):
        state = self.stack.pop()
        target = self.stack[-1]
        if type(target) is not collections.OrderedDict or not isinstance(state, (dict, type(None))):
            shown = target if isinstance(target, AllowedName) else f"a {type(target).__name__}"
            raise RefusedPickle(f"sets the state of {shown} (BUILD), which a checkpoint only does for the ordered "
                                f"dicts it makes")

    def load_setitem(self):
        value, key = self.stack.pop(), self.stack.pop()
        self._set_items(self.stack[-1], [key, value])

    def load_setitems(self):
        items = self.pop_mark()
        self._set_items(self.stack[-1], items)

    def _set_items(self, target, items) -> None:
        if not isinstance(target, dict):
            raise RefusedPickle(f"sets items of a {type(target).__name__}, not of a dict")
        _plain(items[::2], "a dict key")
        for index in range(0, len(items) - 1, 2):
            target[items[index]] = items[index + 1]

    def load_dict(self):
        self.count()
        items = self.pop_mark()
        self.append({})
        self._set_items(self.stack[-1], items)

    def load_append(self):
        value = self.stack.pop()
        self._extend(self.stack[-1], [value])

    def load_appends(self):
        items = self.pop_mark()
        self._extend(self.stack[-1], items)

    def _extend(self, target, items) -> None:
        if type(target) is not list:
            raise RefusedPickle(f"appends to a {type(target).__name__}, not to a list")
        target.extend(items)

    def load_additems(self):
        items = self.pop_mark()
        target = self.stack[-1]
        if type(target) is not set:
            raise RefusedPickle(f"adds items to a {type(target).__name__}, not to a set")
        target.update(_plain(items, "a set item"))

    def load_frozenset(self):
        self.count()
        self.append(frozenset(_plain(self.pop_mark(), "a set item")))

    dispatch[pickle.REDUCE[0]] = load_reduce
    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.SETITEM[0]] = load_setitem
    dispatch[pickle.SETITEMS[0]] = load_setitems
    dispatch[pickle.DICT[0]] = load_dict
    dispatch[pickle.APPEND[0]] = load_append
    dispatch[pickle.APPENDS[0]] = load_appends
    dispatch[pickle.ADDITEMS[0]] = load_additems
    dispatch[pickle.FROZENSET[0]] = load_frozenset
    for _name in ("INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4", "NEXT_BUFFER", "READONLY_BUFFER"):
        dispatch[getattr(pickle, _name)[0]] = _refuse_opcode(_name)
    for _name in ("EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET", "LIST", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3",
                  "PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
        dispatch[getattr(pickle, _name)[0]] = _counted(dispatch[getattr(pickle, _name)[0]])
    del _name


def _unpickle(file, path: str) -> AllowListUnpickler:
    unpickler = AllowListUnpickler(file, path)
    try:
        unpickler.result = unpickler.load()
    except RefusedGlobal as refused:
        allowed = ", ".join(f"{module}.{name}" for module, name in sorted(CALLS))
        raise ZooError(
            f"refusing to load {path}: its pickle asks for {refused.name}, which a weights file does not need "
            f"(only {allowed} and the torch storage types are allowed). Nothing in it was run; if you trust "
            f"the file, re-save its state dict alone with torch.save(model.state_dict(), path)"
        ) from None
    except RefusedPickle as refused:
        raise ZooError(f"refusing to load {path}: its pickle {refused}. Nothing in it was run; if you trust the "
                       f"file, re-save its state dict alone with torch.save(model.state_dict(), path)") from None
    except ZooError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            struct.error, UnicodeDecodeError, OverflowError) as error:
        reason = "it ends in the middle" if isinstance(error, EOFError) else f"{type(error).__name__}: {brief(error)}"
        raise ZooError(f"{path} is not a readable PyTorch checkpoint: its pickle is damaged ({reason})") from None
    return unpickler


def _state_dict(checkpoint, path: str) -> dict[str, LazyTensor]:
    """The tensors of a bare state dict, or of one under "state_dict", "model", ... of a checkpoint."""
    if isinstance(checkpoint, dict):
        for key in STATE_DICT_KEYS:
            if isinstance(checkpoint.get(key), dict):
                checkpoint = checkpoint[key]
                break
    if not isinstance(checkpoint, dict):
        raise ZooError(f"{path} holds a {type(checkpoint).__name__}, not a state dict of tensors")
    tensors = {check_name(str(key) if type(key) is int else key, path, "a tensor name"): value
               for key, value in checkpoint.items() if isinstance(value, LazyTensor)}
    if not tensors:
        keys = ", ".join(brief(key, 40) for key in list(checkpoint)[:5])
        raise ZooError(f"{path} holds no tensors (keys: {keys or 'none'})")
    if all(key.startswith("module.") for key in tensors):  # saved from DataParallel
        tensors = {key[len("module."):]: value for key, value in tensors.items()}
    return tensors


def _decode_storage(raw: bytes, storage: LazyStorage, big_endian: bool) -> np.ndarray:
    """A storage's elements; a view of `raw` when its byte order is the machine's (the tensors copy it)."""
    dtype = STORAGE_DTYPES[storage.type_name]
    if dtype == BFLOAT16:
        halves = np.frombuffer(raw, dtype=">u2" if big_endian else "<u2").astype(np.uint32)
        return (halves << 16).view(np.float32)
    stored = np.dtype(dtype).newbyteorder(">" if big_endian else "<")
    values = np.frombuffer(raw, dtype=stored)
    return values if stored.isnative else values.astype(stored.newbyteorder("="))


def _read_zip(path: str, budget: Budget) -> dict[str, LazyTensor]:
    with open_archive(path, "PyTorch checkpoint") as archive:
        names = archive.namelist()
        pickles = [name for name in names if name.endswith("data.pkl")]
        if not pickles:
            raise ZooError(f"{path} is a zip archive without data.pkl: not a PyTorch checkpoint")
        prefix = pickles[0][: -len("data.pkl")]
        big_endian = (prefix + "byteorder" in names
                      and read_member(archive, prefix + "byteorder", path, limit=16).strip() == b"big")
        pickled = read_member(archive, pickles[0], path, budget, limit=MAX_PICKLE_BYTES)
        tensors = _state_dict(_unpickle(io.BytesIO(pickled), path).result, path)
        for storage in {id(tensor.storage): tensor.storage for tensor in tensors.values()}.values():
            name = f"{prefix}data/{storage.key}"
            if name not in names:
                raise ZooError(f"{path} names a storage {storage.key} it does not hold")
            size = storage.numel * storage.element_size
            if archive.getinfo(name).file_size < size:
                raise ZooError(f"{path}: its storage {storage.key} holds {archive.getinfo(name).file_size:,} bytes, "
                               f"less than the {storage.numel:,} elements its pickle says: the file is damaged")
            storage.data = _decode_storage(read_member(archive, name, path, budget, size=size), storage, big_endian)
    return tensors


def _read_legacy(path: str, budget: Budget) -> dict[str, LazyTensor]:
    file_size = os.path.getsize(path)
    with open(path, "rb") as file:
        if _unpickle(file, path).result != LEGACY_MAGIC_NUMBER or _unpickle(file, path).result != LEGACY_PROTOCOL_VERSION:
            raise ZooError(f"{path} is a pickle but not a PyTorch checkpoint (no torch.save header)")
        system = _unpickle(file, path).result
        big_endian = isinstance(system, dict) and system.get("little_endian") is False
        unpickler = _unpickle(file, path)
        tensors = _state_dict(unpickler.result, path)
        keys = _unpickle(file, path).result
        if not isinstance(keys, list):
            raise ZooError(f"{path} is not a readable PyTorch checkpoint: it lists its storages as {describe_value(keys)}")
        needed = {id(tensor.storage) for tensor in tensors.values()}
        for key in keys:
            storage = unpickler.storages.get(str(key) if type(key) is int else key) if isinstance(key, (str, int)) else None
            count_bytes = file.read(8)
            if storage is None or len(count_bytes) != 8:
                raise ZooError(f"{path} is truncated or names a storage {describe_value(key)} it does not hold")
            count = struct.unpack(">q" if big_endian else "<q", count_bytes)[0]
            size = count * storage.element_size
            if not 0 <= size <= file_size - file.tell():
                raise ZooError(f"{path} is truncated or damaged: its storage {storage.key} declares {count:,} elements "
                               f"where {file_size - file.tell():,} bytes are left")
            if id(storage) not in needed:
                file.seek(size, os.SEEK_CUR)
                continue
            budget.spend(size, f"its storage {storage.key}")
            storage.data = _decode_storage(file.read(size), storage, big_endian)
    missing = [tensor.storage.key for tensor in tensors.values() if tensor.storage.data is None]
    if missing:
        raise ZooError(f"{path} is truncated: it lacks the data of storage {missing[0]}")
    return tensors


def read_pytorch_checkpoint(path: str) -> dict[str, np.ndarray]:
    """The named arrays of a PyTorch checkpoint, zip or legacy; nothing in the pickle is run."""
    budget = Budget(path)
    with reading(path, "PyTorch checkpoint"):
        tensors = _read_zip(path, budget) if zipfile.is_zipfile(path) else _read_legacy(path, budget)
        return {key: tensor.to_array(path, budget) for key, tensor in tensors.items()}


def looks_like_legacy_pickle(head: bytes) -> bool:
    """Whether a file starts as torch.save's legacy stream does: a pickle (protocol 2+) of the magic number."""
    return len(head) >= 2 and head[0] == 0x80 and head[1] >= 2
