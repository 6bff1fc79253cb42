"""PyTorch checkpoints (`.pth`, `.pt`, `.bin`) read into numpy arrays without PyTorch.

`torch.save` writes a pickle whose tensors point into raw storages: in a zip archive
(``ARCHIVE/data.pkl``, ``ARCHIVE/data/KEY``, ``ARCHIVE/byteorder``; PyTorch 1.6 and later) or, in
the legacy stream, after the pickle (magic number, protocol 1001, system info, the pickle, the
storage keys, then each storage as an int64 element count and its bytes).

A pickle can name any Python callable and have it run on load, so the pickle is read by an
unpickler that resolves only an allow-list of names, each to a function of this module that builds
a numpy array: an ordered dict, a tensor rebuilt from a storage, a parameter wrapping a tensor,
and the storage types. Anything else is refused before it is called (the same idea as
PyTorch's own `weights_only` loader).
"""

from __future__ import annotations

import collections
import dataclasses
import io
import pickle
import struct
import zipfile

import numpy as np

from zoo.errors import ZooError

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
BFLOAT16 = "bfloat16"  # numpy has no bfloat16: such storages are widened to float32 when read
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16, "BFloat16Storage": BFLOAT16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
    "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
STATE_DICT_KEYS = ("state_dict", "model", "model_state", "model_state_dict")


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle asked for a name outside the allow-list."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


@dataclasses.dataclass(frozen=True)
class StorageType:
    """What `torch.FloatStorage` and its siblings unpickle to: the element type of a storage."""

    name: str

    @property
    def dtype(self):
        return STORAGE_DTYPES[self.name]


@dataclasses.dataclass
class LazyStorage:
    """A storage named by the pickle; its bytes are read after the pickle (legacy files store them there)."""

    storage_type: StorageType
    key: str
    numel: int
    data: np.ndarray | None = None


@dataclasses.dataclass
class LazyTensor:
    """A strided view of a storage, made an array once the storage's bytes are read."""

    storage: LazyStorage
    offset: int
    size: tuple
    stride: tuple

    def to_array(self) -> np.ndarray:
        data = self.storage.data
        size, stride = tuple(int(each) for each in self.size), tuple(int(each) for each in self.stride)
        if any(each < 0 for each in size + stride) or self.offset < 0 or len(size) != len(stride):
            raise ZooError(f"a tensor of storage {self.storage.key} has a negative size, stride or offset")
        last = self.offset + sum((length - 1) * step for length, step in zip(size, stride)) if all(size) else -1
        if last >= data.size:  # a lying file must not make as_strided read past the storage
            raise ZooError(f"a tensor of storage {self.storage.key} reaches past its {data.size} elements")
        view = np.lib.stride_tricks.as_strided(
            data[self.offset:] if data.size else data, shape=size,
            strides=tuple(step * data.itemsize for step in stride))
        return np.array(view)


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    return LazyTensor(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): StorageType(name) for name in STORAGE_DTYPES},
}


class AllowListUnpickler(pickle.Unpickler):
    """Resolves only the names in ALLOWED_GLOBALS; storages come back as LazyStorage."""

    def __init__(self, file):
        super().__init__(file)
        self.storages: dict[str, LazyStorage] = {}

    def find_class(self, module, name):
        found = ALLOWED_GLOBALS.get((module, name))
        if found is None:
            raise RefusedGlobal(f"{module}.{name}")
        return found

    def persistent_load(self, persistent_id):
        # ("storage", storage type, key, location, number of elements[, view metadata])
        if (not isinstance(persistent_id, tuple) or len(persistent_id) < 5 or persistent_id[0] != "storage"
                or not isinstance(persistent_id[1], StorageType)):
            raise pickle.UnpicklingError(f"unexpected persistent id {persistent_id!r}")
        if len(persistent_id) > 5 and persistent_id[5] is not None:
            raise pickle.UnpicklingError("storage views of the pre-1.0 format are not supported")
        key = str(persistent_id[2])
        if key not in self.storages:
            self.storages[key] = LazyStorage(persistent_id[1], key, int(persistent_id[4]))
        return self.storages[key]


def _decode_storage(raw: bytes, storage_type: StorageType, big_endian: bool) -> np.ndarray:
    if storage_type.dtype == BFLOAT16:
        halves = np.frombuffer(raw, dtype=">u2" if big_endian else "<u2").astype(np.uint32)
        return (halves << 16).view(np.float32)
    dtype = np.dtype(storage_type.dtype).newbyteorder(">" if big_endian else "<")
    return np.frombuffer(raw, dtype=dtype).astype(np.dtype(storage_type.dtype).newbyteorder("="))


def _element_size(storage_type: StorageType) -> int:
    return 2 if storage_type.dtype == BFLOAT16 else np.dtype(storage_type.dtype).itemsize


def _materialize(value):
    """The unpickled object with every LazyTensor made an array, containers kept."""
    if isinstance(value, LazyTensor):
        return value.to_array()
    if isinstance(value, dict):
        return type(value)((key, _materialize(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_materialize(item) for item in value)
    return value


def _unpickle(file, path: str) -> AllowListUnpickler:
    unpickler = AllowListUnpickler(file)
    try:
        unpickler.result = unpickler.load()
    except RefusedGlobal as refused:
        allowed = ", ".join(f"{module}.{name}" for module, name in ALLOWED_GLOBALS if not name.endswith("Storage"))
        raise ZooError(
            f"refusing to load {path}: its pickle asks for {refused.name}, which a weights file does not need "
            f"(only {allowed} and the torch storage types are allowed). Nothing in it was run; if you trust "
            f"the file, re-save its state dict alone with torch.save(model.state_dict(), path)"
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise ZooError(f"{path} is not a readable PyTorch checkpoint ({error})") from None
    return unpickler


def _read_zip(path: str) -> object:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [name for name in names if name.endswith("data.pkl")]
        if not pickles:
            raise ZooError(f"{path} is a zip archive without data.pkl: not a PyTorch checkpoint")
        prefix = pickles[0][: -len("data.pkl")]
        big_endian = (prefix + "byteorder" in names and archive.read(prefix + "byteorder").strip() == b"big")
        unpickler = _unpickle(io.BytesIO(archive.read(pickles[0])), path)
        for key, storage in unpickler.storages.items():
            try:
                raw = archive.read(f"{prefix}data/{key}")
            except KeyError:
                raise ZooError(f"{path} names a storage {key} it does not hold") from None
            storage.data = _decode_storage(raw[: storage.numel * _element_size(storage.storage_type)],
                                           storage.storage_type, big_endian)
    return _materialize(unpickler.result)


def _read_legacy(path: str) -> object:
    with open(path, "rb") as file:
        header = [_unpickle(file, path).result for _ in range(3)]
        if header[0] != LEGACY_MAGIC_NUMBER or header[1] != LEGACY_PROTOCOL_VERSION:
            raise ZooError(f"{path} is a pickle but not a PyTorch checkpoint (no torch.save header)")
        big_endian = isinstance(header[2], dict) and header[2].get("little_endian") is False
        unpickler = _unpickle(file, path)
        keys = _unpickle(file, path).result
        for key in keys:
            storage = unpickler.storages.get(str(key))
            count_bytes = file.read(8)
            if storage is None or len(count_bytes) != 8:
                raise ZooError(f"{path} is truncated or names a storage {key} it does not hold")
            count = struct.unpack(">q" if big_endian else "<q", count_bytes)[0]
            raw = file.read(count * _element_size(storage.storage_type))
            if len(raw) != count * _element_size(storage.storage_type):
                raise ZooError(f"{path} is truncated in storage {key}")
            storage.data = _decode_storage(raw, storage.storage_type, big_endian)
    return _materialize(unpickler.result)


def _state_dict(checkpoint, path: str) -> dict[str, np.ndarray]:
    """The tensors of a bare state dict, or of one under "state_dict", "model", ... of a checkpoint."""
    if isinstance(checkpoint, dict):
        for key in STATE_DICT_KEYS:
            if isinstance(checkpoint.get(key), dict):
                checkpoint = checkpoint[key]
                break
    if not isinstance(checkpoint, dict):
        raise ZooError(f"{path} holds a {type(checkpoint).__name__}, not a state dict of tensors")
    arrays = {str(key): value for key, value in checkpoint.items() if isinstance(value, np.ndarray)}
    if not arrays:
        raise ZooError(f"{path} holds no tensors (keys: {', '.join(map(str, list(checkpoint)[:5]))})")
    if all(key.startswith("module.") for key in arrays):  # saved from DataParallel
        arrays = {key[len("module."):]: value for key, value in arrays.items()}
    return arrays


def read_pytorch_checkpoint(path: str) -> dict[str, np.ndarray]:
    """The named arrays of a PyTorch checkpoint, zip or legacy; nothing in the pickle is run."""
    checkpoint = _read_zip(path) if zipfile.is_zipfile(path) else _read_legacy(path)
    return _state_dict(checkpoint, path)


def looks_like_legacy_pickle(head: bytes) -> bool:
    """Whether a file starts as torch.save's legacy stream does: a pickle (protocol 2+) of the magic number."""
    return len(head) >= 2 and head[0] == 0x80 and head[1] >= 2
