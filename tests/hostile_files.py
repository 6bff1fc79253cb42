"""Hostile and malformed weight files, made here with the standard library, numpy, h5py and Keras
(no PyTorch): what an attacker or a careless download could hand `zoo.create(NAME, weights=FILE)`,
`zoo import`, `zoo finetune --weights`, `zoo predict` and `zoo evaluate`.

Shared by tests/test_untrusted_*.py (each case refused with one line naming the file, nothing run,
memory and time bounded) and scripts/untrusted_files.py (the table of cases, messages and peaks).

- pickles are written opcode by opcode (pickletools' names), and laid out as torch.save lays them
  out: a zip archive (ARCHIVE/data.pkl, ARCHIVE/data/KEY) or the legacy stream;
- a payload, were it run, would create `MARKER` in the folder its file is built in;
- each `Case` builds its file in a folder and says what the error must say.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import pickle
import re
import struct
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path
from typing import Callable

import h5py
import keras
import numpy as np
import safetensors.numpy

import layouts
import zoo
from source_weights import CONVERTER_FIXTURES, load_fixture, random_arrays, write_caffemodel

MARKER = "payload-ran"

# -- pickles, opcode by opcode --------------------------------------------------------------------------------
PROTO2, PROTO4, STOP, MARK = b"\x80\x02", b"\x80\x04", b".", b"("
EMPTY_TUPLE, TUPLE, TUPLE1, EMPTY_LIST, APPEND, APPENDS = b")", b"t", b"\x85", b"]", b"a", b"e"
EMPTY_DICT, SETITEM, SETITEMS, EMPTY_SET, NONE, NEWFALSE = b"}", b"s", b"u", b"\x8f", b"N", b"\x89"
REDUCE, BUILD, BINPERSID, STACK_GLOBAL = b"R", b"b", b"Q", b"\x93"
BINPUT, BINGET, LONG_BINPUT = b"q", b"h", b"r"


def text(value: str) -> bytes:
    """BINUNICODE."""
    data = value.encode("utf8")
    return b"X" + struct.pack("<I", len(data)) + data


def number(value: int) -> bytes:
    """BININT for 32-bit values, else LONG1."""
    if -2**31 <= value < 2**31:
        return b"J" + struct.pack("<i", value)
    data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data


def sequence(*items: bytes) -> bytes:
    """A tuple of the items (MARK ... TUPLE)."""
    return MARK + b"".join(items) + TUPLE


def name(module: str, attribute: str) -> bytes:
    """GLOBAL."""
    return b"c" + f"{module}\n{attribute}\n".encode("utf8")


def call(function: bytes, *arguments: bytes) -> bytes:
    """function(*arguments) with REDUCE."""
    return function + sequence(*arguments) + REDUCE


def listing(*items: bytes) -> bytes:
    return EMPTY_LIST + MARK + b"".join(items) + APPENDS


STORAGE_TYPES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.float64): "DoubleStorage",
                 np.dtype(np.float16): "HalfStorage", np.dtype(np.int64): "LongStorage",
                 np.dtype(np.int32): "IntStorage", np.dtype(np.int8): "CharStorage",
                 np.dtype(np.uint8): "ByteStorage", np.dtype(np.bool_): "BoolStorage"}


def storage(type_name: str, key: str, numel: int) -> bytes:
    """A storage as torch.save's persistent id names it."""
    return sequence(text("storage"), name("torch", type_name), text(key), text("cpu"), number(numel)) + BINPERSID


def tensor(storage_ops: bytes, size, stride, offset: int = 0) -> bytes:
    """torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())."""
    return call(name("torch._utils", "_rebuild_tensor_v2"), storage_ops, number(offset),
                sequence(*map(number, size)), sequence(*map(number, stride)), NEWFALSE,
                call(name("collections", "OrderedDict")))


def state_dict(*entries: tuple[str, bytes]) -> bytes:
    """A pickle of an OrderedDict of (key, value ops), as torch.save writes a state dict."""
    items = b"".join(text(key) + value for key, value in entries)
    return PROTO2 + call(name("collections", "OrderedDict")) + MARK + items + SETITEMS + STOP


def state_dict_pickle(arrays: dict[str, np.ndarray]) -> tuple[bytes, dict[str, np.ndarray]]:
    """A state dict of `arrays` as torch.save writes it: the pickle and each storage's elements."""
    entries, storages = [], {}
    for index, (key, array) in enumerate(arrays.items()):
        array = np.array(array, order="C")  # (np.ascontiguousarray makes 0-d arrays 1-d)
        storages[str(index)] = array.astype(array.dtype.newbyteorder("<")).reshape(-1)
        strides = tuple(step // array.itemsize for step in array.strides)
        entries.append((key, tensor(storage(STORAGE_TYPES[array.dtype], str(index), array.size), array.shape, strides)))
    return state_dict(*entries), storages


def write_zip_checkpoint(path: Path, pickled: bytes, storages: dict[str, np.ndarray] | None = None,
                         compression: int = zipfile.ZIP_STORED) -> Path:
    """torch.save's zip layout (PyTorch 1.6 and later)."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("archive/data.pkl", pickled)
        archive.writestr("archive/byteorder", "little")
        for key, elements in (storages or {}).items():
            archive.writestr(f"archive/data/{key}", elements.tobytes())
    return path


def write_legacy_checkpoint(path: Path, pickled: bytes, storages: dict[str, np.ndarray] | None = None,
                            counts: dict[str, int] | None = None, keys=None) -> Path:
    """torch.save's legacy stream: magic number, protocol, system info, the pickle, the storage keys,
    then each storage as its element count (int64; `counts` overrides it) and bytes."""
    storages = storages or {}
    header = b"".join(pickle.dumps(value, protocol=2) for value in
                      (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}))
    body = b"".join(struct.pack("<q", (counts or {}).get(key, elements.size)) + elements.tobytes()
                    for key, elements in storages.items())
    path.write_bytes(header + pickled + pickle.dumps(list(storages) if keys is None else keys, protocol=2) + body)
    return path


def checkpoint(layout: str, path: Path, pickled: bytes, storages: dict[str, np.ndarray] | None = None) -> Path:
    """The pickle and storages in the zip or the legacy layout."""
    return (write_zip_checkpoint if layout == "zip" else write_legacy_checkpoint)(path, pickled, storages)


@functools.cache
def resnet18_arrays() -> dict[str, np.ndarray]:
    """torchvision's resnet18 keys and shapes, seeded weights (the converter fixture's)."""
    metadata, _, _ = load_fixture(CONVERTER_FIXTURES / "resnet18_torchvision.npz")
    return random_arrays(metadata["shapes"], metadata["seed"], metadata["output_scale"])


def resnet18_checkpoint(path: Path, dtype=np.float32, layout: str = "zip") -> Path:
    """A resnet18 state dict as torch.save writes it, its weights cast to `dtype` (step counts stay int64)."""
    arrays = {key: value if key.endswith("num_batches_tracked") else value.astype(dtype)
              for key, value in resnet18_arrays().items()}
    return checkpoint(layout, path, *state_dict_pickle(arrays))


def small_checkpoint(path: Path, layout: str) -> Path:
    """A state dict of ten small float tensors."""
    return checkpoint(layout, path, *state_dict_pickle({f"layer{index}.weight": np.ones((8, 8), "float32")
                                                        for index in range(10)}))


def small_storage(key: str = "0", values: int = 2) -> dict[str, np.ndarray]:
    return {key: np.arange(values, dtype="<f4")}


def one_tensor(size, stride, offset: int = 0, numel: int = 2) -> bytes:
    return state_dict(("conv1.weight", tensor(storage("FloatStorage", "0", numel), size, stride, offset)))


# payloads: what would run if a plain pickle.load read them
def system_payload(folder: Path, module: str = "os") -> bytes:
    return PROTO2 + call(name(module, "system"), text(f"touch {folder / MARKER}")) + STOP


def exec_payload(folder: Path, module: str = "builtins", function: str = "exec") -> bytes:
    return PROTO2 + call(name(module, function), text(f"open({str(folder / MARKER)!r}, 'w').write('ran')")) + STOP


def subprocess_payload(folder: Path) -> bytes:
    return PROTO2 + call(name("subprocess", "check_call"), listing(text("touch"), text(str(folder / MARKER)))) + STOP


def stack_global_payload(folder: Path) -> bytes:
    return (PROTO4 + text("posix") + text("system") + STACK_GLOBAL + sequence(text(f"touch {folder / MARKER}"))
            + REDUCE + STOP)


def inst_payload(folder: Path) -> bytes:
    """Protocol 0's INST: os.system(ARG) built as an instance."""
    return b"(S'touch " + str(folder / MARKER).encode() + b"'\nios\nsystem\n."


def obj_payload(folder: Path) -> bytes:
    """OBJ on an allowed name (the opcode itself is refused, whatever it builds)."""
    return PROTO2 + MARK + name("collections", "OrderedDict") + b"o" + STOP


def newobj_payload(folder: Path) -> bytes:
    return PROTO2 + name("collections", "OrderedDict") + EMPTY_TUPLE + b"\x81" + STOP


def ext_payload(code: int, opcode: bytes, width: int) -> Callable[[Path], bytes]:
    return lambda folder: PROTO2 + opcode + code.to_bytes(width, "little") + STOP


def reconstructor_payload(module: str, function: str) -> Callable[[Path], bytes]:
    return lambda folder: PROTO2 + call(name(module, function), text("x")) + STOP


def build_payload(target: bytes, state: bytes) -> bytes:
    """BUILD on `target` with `state`, then a valid-looking state dict around it."""
    return PROTO2 + EMPTY_DICT + text("x") + target + state + BUILD + SETITEM + STOP


def poison_storage_type() -> bytes:
    """BUILD on the storage type: {'name': 'IntStorage'} would make every later FloatStorage int32."""
    return build_payload(name("torch", "FloatStorage"), EMPTY_DICT + text("name") + text("IntStorage") + SETITEM)


def poison_rebuild_defaults() -> bytes:
    """BUILD with a slot state on the rebuild function: setattr(function, '__defaults__', ()) would
    make every later tensor rebuild fail."""
    return build_payload(name("torch._utils", "_rebuild_tensor_v2"),
                         sequence(NONE, EMPTY_DICT + text("__defaults__") + EMPTY_TUPLE + SETITEM))


def poison_ordered_dict_class() -> bytes:
    return build_payload(name("collections", "OrderedDict"),
                         sequence(NONE, EMPTY_DICT + text("fromkeys") + NONE + SETITEM))


def poison_storage_dict() -> bytes:
    """BUILD on a storage of the pickle itself (its __dict__)."""
    return build_payload(storage("FloatStorage", "0", 2), EMPTY_DICT + text("numel") + number(10**9) + SETITEM)


POISONS = {"the storage type's attributes": poison_storage_type, "the rebuild function's __defaults__": poison_rebuild_defaults,
           "the OrderedDict class": poison_ordered_dict_class, "a storage's __dict__": poison_storage_dict}


# -- zip archives with lying or damaged entries ---------------------------------------------------------------
def patch_member(path: Path, member: str, *, file_size: int | None = None, flag_bits: int | None = None,
                 compress_type: int | None = None, corrupt: bool = False) -> Path:
    """Rewrites a member's entry in both its local header and the central directory (sizes, flags,
    method), or flips a byte of its data (a bad CRC)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    local, central = info.header_offset, _central_entry(data, member)
    if file_size is not None:
        struct.pack_into("<I", data, local + 22, file_size)
        struct.pack_into("<I", data, central + 24, file_size)
    if flag_bits is not None:
        struct.pack_into("<H", data, local + 6, flag_bits)
        struct.pack_into("<H", data, central + 8, flag_bits)
    if compress_type is not None:
        struct.pack_into("<H", data, local + 8, compress_type)
        struct.pack_into("<H", data, central + 10, compress_type)
    if corrupt:
        name_length, extra_length = struct.unpack_from("<HH", data, local + 26)
        data[local + 30 + name_length + extra_length] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def _central_entry(data: bytearray, member: str) -> int:
    encoded = member.encode("utf8")
    position = data.index(b"PK\x01\x02")
    while True:
        name_length, extra_length, comment_length = struct.unpack_from("<HHH", data, position + 28)
        if bytes(data[position + 46:position + 46 + name_length]) == encoded:
            return position
        position += 46 + name_length + extra_length + comment_length


def zeros_member(archive: zipfile.ZipFile, member: str, size: int) -> None:
    """A member of `size` zero bytes, DEFLATEd as it is written (a bomb: about 1000:1)."""
    chunk, info = bytes(2**20), zipfile.ZipInfo(member)
    info.compress_type = zipfile.ZIP_DEFLATED
    with archive.open(info, "w", force_zip64=True) as file:
        for _ in range(size // len(chunk)):
            file.write(chunk)


# -- Keras files ----------------------------------------------------------------------------------------------
@functools.cache
def lenet5_file(suffix: str) -> bytes:
    """The bytes of a lenet5 (3 classes) saved as a `.keras` model or `.weights.h5` weights, made once."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"lenet5{suffix}"
        model = zoo.create("lenet5", num_classes=3)
        model.save(path) if suffix == ".keras" else model.save_weights(path)
        return path.read_bytes()


def keras_variant(path: Path, edit: Callable[[str, bytes], bytes | None] = lambda name, data: data,
                  extra: dict[str, bytes] | None = None, compression: int = zipfile.ZIP_STORED) -> Path:
    """The template .keras archive with each member passed through `edit` (None drops it) and
    `extra` members added."""
    with zipfile.ZipFile(io.BytesIO(lenet5_file(".keras"))) as source, zipfile.ZipFile(path, "w", compression) as archive:
        for info in source.infolist():
            data = edit(info.filename, source.read(info))
            if data is not None:
                archive.writestr(info.filename, data)
        for member, data in (extra or {}).items():
            archive.writestr(member, data)
    return path


def edit_config(change: Callable[[dict], None]) -> Callable[[str, bytes], bytes]:
    def edit(member: str, data: bytes) -> bytes:
        if member != "config.json":
            return data
        config = json.loads(data)
        change(config)
        return json.dumps(config).encode()
    return edit


def set_activation(module: str, function: str) -> Callable[[dict], None]:
    def change(config: dict) -> None:
        config["config"]["layers"][1]["config"]["activation"] = {
            "module": module, "class_name": "function", "config": function, "registered_name": function}
    return change


def replace_weights(build: Callable[[h5py.File], None]) -> Callable[[str, bytes], bytes]:
    """An edit that rewrites the archive's model.weights.h5 with `build` applied to it."""
    def edit(member: str, data: bytes) -> bytes:
        if member != "model.weights.h5":
            return data
        buffer = io.BytesIO(data)
        with h5py.File(buffer, "r+") as file:
            build(file)
        return buffer.getvalue()
    return edit


def lambda_model(path: Path) -> Path:
    inputs = keras.Input((32, 32, 1))
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(keras.layers.Lambda(lambda x: x * 2)(inputs)))
    keras.Model(inputs, outputs, name="lenet5").save(path)
    return path


def vocabulary_model(path: Path, vocabulary: str) -> Path:
    """A model whose StringLookup reads its vocabulary from a file outside the archive."""
    inputs = keras.Input((1,), dtype="string")
    model = keras.Model(inputs, keras.layers.StringLookup(vocabulary=["a", "b"], name="lookup")(inputs), name="lookup")
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    config = json.loads(members["config.json"])
    config["config"]["layers"][1]["config"]["vocabulary"] = vocabulary
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return path


def h5_variant(path: Path, build: Callable[[h5py.File], None], template: bytes | None = None) -> Path:
    """The lenet5 .weights.h5 template (or another file's bytes) with `build` applied to it."""
    path.write_bytes(lenet5_file(".weights.h5") if template is None else template)
    with h5py.File(path, "r+") as file:
        build(file)
    return path


FIRST_KERNEL = "layers/conv2d/vars/0"  # the first convolution's kernel in lenet5's Keras 3 weights file


def external_storage(secret: Path) -> Callable[[h5py.File], None]:
    """The first kernel's bytes kept in `secret` (HDF5 external storage)."""
    def build(file: h5py.File) -> None:
        kernel = file[FIRST_KERNEL]
        shape, dtype = kernel.shape, kernel.dtype
        del file[FIRST_KERNEL]
        file.create_dataset(FIRST_KERNEL, shape=shape, dtype=dtype,
                            external=[(str(secret), 0, int(np.prod(shape)) * dtype.itemsize)])
    return build


def external_link(target: Path) -> Callable[[h5py.File], None]:
    def build(file: h5py.File) -> None:
        del file[FIRST_KERNEL]
        file[FIRST_KERNEL] = h5py.ExternalLink(str(target), "/kernel")
    return build


def soft_link(file: h5py.File) -> None:
    del file[FIRST_KERNEL]
    file[FIRST_KERNEL] = h5py.SoftLink("/layers/conv2d_1/vars/0")


def virtual_dataset(target: Path) -> Callable[[h5py.File], None]:
    def build(file: h5py.File) -> None:
        kernel = file[FIRST_KERNEL]
        layout = h5py.VirtualLayout(shape=kernel.shape, dtype=kernel.dtype)
        layout[...] = h5py.VirtualSource(str(target), "kernel", shape=kernel.shape)
        del file[FIRST_KERNEL]
        file.create_virtual_dataset(FIRST_KERNEL, layout)
    return build


def fill_value_bomb(file: h5py.File) -> None:
    """A 1 GiB kernel stored as nothing but its fill value (chunked, never written)."""
    del file[FIRST_KERNEL]
    file.create_dataset(FIRST_KERNEL, shape=(2**28,), dtype="f4", chunks=(2**18,), fillvalue=1.0)


def wrong_shape_kernel(file: h5py.File) -> None:
    del file[FIRST_KERNEL]
    file.create_dataset(FIRST_KERNEL, data=np.ones(3, "float32"))


def integer_kernel(file: h5py.File) -> None:
    kernel = np.asarray(file[FIRST_KERNEL])
    del file[FIRST_KERNEL]
    file.create_dataset(FIRST_KERNEL, data=(kernel * 100).astype("int8"))


def write_external_target(path: Path, shape=(5, 5, 1, 6)) -> Path:
    with h5py.File(path, "w") as file:
        file.create_dataset("kernel", data=np.full(shape, 7.0, "float32"))
    return path


def legacy_h5(path: Path, layer_names, groups: Callable[[h5py.File], None] = lambda file: None) -> Path:
    """A legacy (Keras Applications) weights file whose layer_names attribute lists `layer_names`."""
    with h5py.File(path, "w") as file:
        file.attrs["layer_names"] = layer_names
        groups(file)
    return path


# -- Caffe files ----------------------------------------------------------------------------------------------
def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number_: int, wire_type: int, payload: bytes) -> bytes:
    key = varint(number_ << 3 | wire_type)
    return key + (varint(len(payload)) + payload if wire_type == 2 else payload)


def caffe_layer(name_: str, blobs: list[bytes], kind: str = "Convolution") -> bytes:
    """A LayerParameter (field 100 of NetParameter) with the given BlobProto messages."""
    body = field(1, 2, name_.encode()) + field(2, 2, kind.encode()) + b"".join(field(7, 2, blob) for blob in blobs)
    return field(100, 2, body)


def caffe_blob(shape, data: bytes) -> bytes:
    return field(7, 2, field(1, 2, b"".join(varint(side) for side in shape))) + field(5, 2, data)


def unpacked_floats(count: int) -> bytes:
    """A blob of `count` floats written one field each (5 bytes on the wire per float)."""
    return field(7, 2, field(1, 2, varint(count))) + (varint(5 << 3 | 5) + struct.pack("<f", 1.0)) * count


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def safetensors_file(path: Path, header, data: bytes = b"", length: int | None = None) -> Path:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return write(path, struct.pack("<Q", len(raw) if length is None else length) + raw + data)


def tensor_entry(dtype: str, shape, start: int, end: int) -> dict:
    return {"dtype": dtype, "shape": list(shape), "data_offsets": [start, end]}


# -- the cases ------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Case:
    """A hostile file: `build(folder)` writes it and returns its path; the one-line error matches
    `message` (a regex) for `zoo.create(model, weights=FILE)` and each of `commands`."""

    name: str
    reader: str  # pytorch, safetensors, caffe, keras (.keras archives), hdf5 (.h5 and .weights.h5)
    build: Callable[[Path], Path]
    message: str
    model: str = "resnet18"
    commands: tuple[str, ...] = ("import",)  # of import, finetune, predict, evaluate


def _pickle_cases() -> list[Case]:
    cases = []
    runnable = {
        "GLOBAL os.system": (system_payload, r"asks for os\.system"),
        "GLOBAL posix.system": (lambda folder: system_payload(folder, "posix"), r"asks for posix\.system"),
        "GLOBAL subprocess.check_call": (subprocess_payload, r"asks for subprocess\.check_call"),
        "GLOBAL builtins.exec": (exec_payload, r"asks for builtins\.exec"),
        "GLOBAL builtins.eval": (lambda folder: exec_payload(folder, "builtins", "eval"), r"asks for builtins\.eval"),
        "GLOBAL __builtin__.exec (protocol 2 name)": (lambda folder: exec_payload(folder, "__builtin__"),
                                                      r"asks for __builtin__\.exec"),
        "STACK_GLOBAL posix.system": (stack_global_payload, r"asks for posix\.system"),
        "INST os.system (protocol 0)": (inst_payload, r"uses the INST opcode"),
    }
    for layout in ("zip", "legacy"):
        for label, (payload, message) in runnable.items():
            cases.append(Case(f"pickle: {label} ({layout})", "pytorch",
                              lambda folder, payload=payload, layout=layout: checkpoint(layout, folder / "model.pth", payload(folder)),
                              rf"refusing to load .*: its pickle {message}.*Nothing in it was run",
                              commands=("import", "finetune") if label == "GLOBAL os.system" else ("import",)))
    other = {
        "OBJ opcode": (obj_payload, "uses the OBJ opcode"),
        "NEWOBJ opcode": (newobj_payload, "uses the NEWOBJ opcode"),
        "EXT1 opcode": (ext_payload(1, b"\x82", 1), "uses the EXT1 opcode"),
        "EXT2 opcode": (ext_payload(300, b"\x83", 2), "uses the EXT2 opcode"),
        "EXT4 opcode": (ext_payload(70000, b"\x84", 4), "uses the EXT4 opcode"),
        "copyreg._reconstructor": (reconstructor_payload("copyreg", "_reconstructor"), r"asks for copyreg\._reconstructor"),
        "functools.partial": (reconstructor_payload("functools", "partial"), r"asks for functools\.partial"),
        "numpy.core.multiarray._reconstruct": (reconstructor_payload("numpy.core.multiarray", "_reconstruct"),
                                               r"asks for numpy\.core\.multiarray\._reconstruct"),
        "numpy.load": (reconstructor_payload("numpy", "load"), r"asks for numpy\.load"),
        "torch.load look-alike": (reconstructor_payload("torch", "load"), r"asks for torch\.load"),
        "torch.storage._load_from_bytes look-alike": (reconstructor_payload("torch.storage", "_load_from_bytes"),
                                                      r"asks for torch\.storage\._load_from_bytes"),
        "GLOBAL with a 1 MB module name": (lambda folder: PROTO2 + name("m" * 2**20, "x") + STOP, r"asks for m+\.\.\."),
        "REDUCE: OrderedDict with attacker arguments": (
            lambda folder: PROTO2 + call(name("collections", "OrderedDict"), listing(text("a"))) + STOP,
            "makes an OrderedDict from"),
        "REDUCE: a storage type called": (lambda folder: PROTO2 + call(name("torch", "FloatStorage"), number(5)) + STOP,
                                          r"calls torch\.FloatStorage, which torch\.save never calls"),
        "REDUCE: rebuild_tensor_v2 with strings": (
            lambda folder: PROTO2 + call(name("torch._utils", "_rebuild_tensor_v2"), text("a"), text("b"), text("c"),
                                         text("d")) + STOP, "rebuilds a tensor from"),
        "REDUCE: rebuild_tensor_v2 with a string size": (
            lambda folder: state_dict(("w", call(name("torch._utils", "_rebuild_tensor_v2"), storage("FloatStorage", "0", 2),
                                                 number(0), text("big"), sequence(), NEWFALSE))),
            "gives a tensor a size of 'big'"),
        "REDUCE: size and stride of different lengths": (lambda folder: one_tensor((2, 1), (1,)),
                                                         r"gives a tensor the size \(2, 1\) and the stride \(1,\), of different"),
        "REDUCE: a negative offset": (lambda folder: one_tensor((2,), (1,), offset=-1),
                                      "gives a tensor a storage offset of -1, not a count"),
        "REDUCE: a size of 2**70": (lambda folder: one_tensor((2**70,), (1,)),
                                    "gives a tensor a size of 1180591620717411303424, not a count"),
        "REDUCE: rebuild_parameter of a string": (
            lambda folder: PROTO2 + call(name("torch._utils", "_rebuild_parameter"), text("x"), NEWFALSE,
                                         call(name("collections", "OrderedDict"))) + STOP, "rebuilds a parameter from"),
        "persistent id: not a tuple": (lambda folder: PROTO2 + text("storage") + BINPERSID + STOP, "has a persistent id"),
        "persistent id: too short": (lambda folder: PROTO2 + sequence(text("storage"), text("x")) + BINPERSID + STOP,
                                     "has a persistent id"),
        "persistent id: a 6 MB key": (lambda folder: state_dict(("w", storage("FloatStorage", "k" * 6 * 2**20, 2))),
                                      "^.*model.pth has a storage key of 6,291,456 characters that is not a plain one-line name"),
        "persistent id: a string for the storage type": (
            lambda folder: PROTO2 + sequence(text("storage"), text("FloatStorage"), text("0"), text("cpu"), number(2))
            + BINPERSID + STOP, "has a storage of type"),
        "persistent id: a negative element count": (
            lambda folder: state_dict(("w", tensor(storage("FloatStorage", "0", -5), (1,), (1,)))),
            "gives its storage 0 -5 elements, not a count"),
        "persistent id: a 6 MB tuple": (
            lambda folder: PROTO2 + sequence(text("x" * 6 * 2**20), number(1)) + BINPERSID + STOP, "has a persistent id"),
    }
    for label, (payload, message) in other.items():
        cases.append(Case(f"pickle: {label}", "pytorch",
                          lambda folder, payload=payload: write_zip_checkpoint(folder / "model.pth", payload(folder),
                                                                               small_storage()),
                          message if message.startswith("^") else rf"refusing to load .*: its pickle {message}"))
    for layout in ("zip", "legacy"):
        for label, poison in POISONS.items():
            cases.append(Case(f"pickle: BUILD on {label} ({layout})", "pytorch",
                              lambda folder, poison=poison, layout=layout: checkpoint(layout, folder / "model.pth", poison()),
                              r"refusing to load .*: its pickle sets the state of"))
    return cases


def _exhaustion_cases() -> list[Case]:
    def bomb(folder: Path) -> Path:
        path = folder / "bomb.pth"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            archive.writestr("archive/data.pkl", one_tensor((2**26,), (1,), numel=2**26))
            zeros_member(archive, "archive/data/0", 2**28)
        return path

    def deep(folder: Path) -> Path:
        return write_zip_checkpoint(folder / "deep.pth", PROTO2 + EMPTY_TUPLE + TUPLE1 * 200_000 + STOP)

    def deep_key(folder: Path) -> Path:  # a dict key nested 100,000 deep: hashing it would crash CPython
        return write_zip_checkpoint(folder / "deep.pth", PROTO2 + EMPTY_DICT + EMPTY_TUPLE + TUPLE1 * 100_000 + NONE
                                    + SETITEM + STOP)

    def self_reference(folder: Path) -> Path:
        values = EMPTY_LIST + BINPUT + b"\x00" + BINGET + b"\x00" + APPEND
        return write_zip_checkpoint(folder / "loop.pth", PROTO2 + EMPTY_DICT + text("conv1.weight") + values + SETITEM + STOP)

    cases = [
        Case("exhaustion: a storage of 10**12 elements over 8 bytes", "pytorch",
             lambda folder: write_zip_checkpoint(folder / "m.pth", one_tensor((10**12,), (1,), numel=10**12), small_storage()),
             r"its storage 0 holds 8 bytes, less than the 1,000,000,000,000 elements"),
        Case("exhaustion: a view past its storage", "pytorch",
             lambda folder: write_zip_checkpoint(folder / "m.pth", one_tensor((4, 4), (4, 1)), small_storage()),
             r"reaches past the storage's 2 elements"),
        Case("exhaustion: a stride-0 view of 10**6 x 10**6 over 4 bytes", "pytorch",
             lambda folder: write_zip_checkpoint(folder / "m.pth", one_tensor((10**6, 10**6), (0, 0), numel=1),
                                                 small_storage(values=1)),
             r"refusing to read .*: a tensor of its storage 0 of size \(1000000, 1000000\) declares 4,000,000,000,000 bytes"),
        Case("exhaustion: a 256 MiB zip bomb inside a .pth", "pytorch", bomb,
             r"refusing to read .*: its member archive/data/0 declares 268,435,456 bytes", commands=("import", "finetune")),
        Case("exhaustion: a pickle nested 200,000 deep", "pytorch", deep, r"holds a tuple, not a state dict"),
        Case("exhaustion: a dict key nested 100,000 deep", "pytorch", deep_key, r"uses a tuple as a dict key"),
        Case("exhaustion: a list that holds itself", "pytorch", self_reference, r"holds no tensors \(keys: conv1\.weight\)"),
        Case("exhaustion: 9 MB of empty lists", "pytorch",
             lambda folder: write_zip_checkpoint(folder / "m.pth", PROTO2 + EMPTY_LIST * (9 * 2**20) + STOP),
             r"its member archive/data\.pkl declares 9,437,187 bytes, more than the 8,388,608"),
        Case("exhaustion: 600,000 empty sets", "pytorch",
             lambda folder: write_zip_checkpoint(folder / "m.pth", PROTO4 + EMPTY_SET * 600_000 + STOP),
             r"its pickle makes more than 500,000 objects"),
        Case("exhaustion: 600,000 memo entries", "pytorch",
             lambda folder: write_zip_checkpoint(folder / "m.pth", PROTO4 + NONE + b"\x94" * 600_000 + STOP),
             r"its pickle makes more than 500,000 objects"),
        Case("exhaustion: 1,000,000 references to one object", "pytorch",
             lambda folder: write_zip_checkpoint(folder / "m.pth", PROTO4 + EMPTY_LIST + b"\x94" + MARK
                                                 + (BINGET + b"\x00") * 1_000_000 + APPENDS + STOP),
             r"holds a list, not a state dict"),
        Case("exhaustion: a LONG_BINPUT index of 2**32-1 in a 10-byte pickle", "pytorch",
             lambda folder: write_zip_checkpoint(folder / "m.pth", PROTO2 + NONE + LONG_BINPUT + b"\xff" * 4 + STOP),
             r"holds a NoneType, not a state dict"),
        Case("exhaustion: a string declaring 4 GiB", "pytorch",
             lambda folder: write_legacy_checkpoint(folder / "m.pth", PROTO2 + b"X" + b"\xff" * 4 + STOP),
             r"its pickle runs past 8,388,608 bytes \(a value of 4,294,967,295 bytes\)"),
        Case("exhaustion: a frame declaring 2**62 bytes", "pytorch",
             lambda folder: write_legacy_checkpoint(folder / "m.pth", PROTO4 + b"\x95" + struct.pack("<Q", 2**62) + STOP),
             r"its pickle runs past 8,388,608 bytes"),
        Case("exhaustion: a 2**62-element legacy storage", "pytorch",
             lambda folder: write_legacy_checkpoint(folder / "m.pth", one_tensor((2,), (1,)), small_storage(),
                                                    counts={"0": 2**62}),
             r"its storage 0 declares 4,611,686,018,427,387,904 elements where 8 bytes are left"),
        Case("pickle: legacy storage keys that are not a list", "pytorch",
             lambda folder: write_legacy_checkpoint(folder / "m.pth", one_tensor((2,), (1,)), small_storage(), keys={"0": 1}),
             r"lists its storages as"),
        Case("pickle: legacy keys naming a storage it lacks", "pytorch",
             lambda folder: write_legacy_checkpoint(folder / "m.pth", one_tensor((2,), (1,)), small_storage(), keys=["9"]),
             r"truncated or names a storage '9' it does not hold"),
        Case("pickle: a zip checkpoint without its storage", "pytorch",
             lambda folder: write_zip_checkpoint(folder / "m.pth", one_tensor((2,), (1,))),
             r"names a storage 0 it does not hold"),
        Case("pickle: a truncated zip checkpoint", "pytorch",
             lambda folder: write(folder / "m.pth", small_checkpoint(folder / "full.pth", "zip").read_bytes()[:5_000]),
             r"starts as a zip archive .* but is truncated or damaged"),
        Case("pickle: a truncated legacy checkpoint", "pytorch",
             lambda folder: write(folder / "m.pth", small_checkpoint(folder / "full.pth", "legacy").read_bytes()[:300]),
             r"is not a readable PyTorch checkpoint: its pickle is damaged \(it ends in the middle\)"),
        Case("pickle: a bad CRC in a storage", "pytorch",
             lambda folder: patch_member(write_zip_checkpoint(folder / "m.pth", one_tensor((2,), (1,)), small_storage()),
                                         "archive/data/0", corrupt=True),
             r"is damaged: its member archive/data/0 cannot be read \(Bad CRC-32"),
        Case("pickle: an encrypted member", "pytorch",
             lambda folder: patch_member(write_zip_checkpoint(folder / "m.pth", one_tensor((2,), (1,)), small_storage()),
                                         "archive/data.pkl", flag_bits=1),
             r"its member archive/data\.pkl is encrypted"),
        Case("pickle: a member of an unknown compression method", "pytorch",
             lambda folder: patch_member(write_zip_checkpoint(folder / "m.pth", one_tensor((2,), (1,)), small_storage()),
                                         "archive/data.pkl", compress_type=99),
             r"its member archive/data\.pkl is compressed with method 99"),
    ]
    for dtype in ("int8", "int64", "bool"):
        cases.append(Case(f"silently wrong: a resnet18 state dict of {dtype}", "pytorch",
                          lambda folder, dtype=dtype: resnet18_checkpoint(folder / f"resnet18-{dtype}.pth", np.dtype(dtype)),
                          rf"conv1\.weight holds {dtype} values where layer 'conv1_conv' of resnet18 takes float weights",
                          commands=("import", "finetune") if dtype == "int8" else ("import",)))
    return cases


def _safetensors_cases() -> list[Case]:
    entry = {"conv1.weight": tensor_entry("F32", (2,), 0, 8)}
    resnet18_int8 = lambda folder: _resnet18_safetensors(folder / "resnet18-int8.safetensors", np.int8)  # noqa: E731
    return [
        Case("safetensors: a header length of 2**63", "safetensors",
             lambda folder: safetensors_file(folder / "m.safetensors", entry, bytes(8), length=2**63),
             r"is a truncated or damaged safetensors file: its first 8 bytes declare a header of 9,223,372,036,854,775,808"),
        Case("safetensors: a header of 200 MB declared in a 200 MB file", "safetensors",
             lambda folder: _sparse_safetensors(folder / "m.safetensors", 200 * 2**20),
             r"its header declares 209,715,200 bytes, more than the 16,777,216"),
        Case("safetensors: offsets past the file", "safetensors",
             lambda folder: safetensors_file(folder / "m.safetensors", {"a": tensor_entry("F32", (200,), 0, 800)}, bytes(8)),
             r"is not a readable safetensors file \(Error while deserializing header: incomplete metadata, file not "
             r"fully covered"),
        Case("safetensors: overlapping tensors", "safetensors",
             lambda folder: safetensors_file(folder / "m.safetensors", {"a": tensor_entry("F32", (2,), 0, 8),
                                                                        "b": tensor_entry("F32", (2,), 0, 8)}, bytes(8)),
             r"is not a readable safetensors file \(Error while deserializing header: invalid offset"),
        Case("safetensors: an unknown dtype", "safetensors",
             lambda folder: safetensors_file(folder / "m.safetensors", {"a": tensor_entry("XYZ", (2,), 0, 8)}, bytes(8)),
             r"unknown variant `XYZ`"),
        Case("safetensors: F8_E4M3 tensors", "safetensors",
             lambda folder: safetensors_file(folder / "m.safetensors", {"a": tensor_entry("F8_E4M3", (8,), 0, 8)}, bytes(8)),
             r"its tensor a is F8_E4M3, which numpy cannot represent"),
        Case("safetensors: BF16 tensors", "safetensors",
             lambda folder: safetensors_file(folder / "m.safetensors", {"a": tensor_entry("BF16", (4,), 0, 8)}, bytes(8)),
             r"its tensor a is BF16, which numpy cannot represent"),
        Case("safetensors: a header that is not JSON", "safetensors",
             lambda folder: safetensors_file(folder / "m.safetensors", b"{not json at all}"),
             r"its header is not JSON"),
        Case("safetensors: a header nested 100,000 deep", "safetensors",
             lambda folder: safetensors_file(folder / "m.safetensors", b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
             r"its header nests too deep"),
        Case("safetensors: a header entry that is a number", "safetensors",
             lambda folder: safetensors_file(folder / "m.safetensors", {"conv1.weight": 5}),
             r"is not a readable safetensors file \(Error while deserializing header: invalid JSON"),
        Case("safetensors: a .safetensors file of something else", "safetensors",
             lambda folder: write(folder / "m.safetensors", b"[1, 2, 3]" * 10),
             r"is not a safetensors file: it does not start with a header's length"),
        Case("safetensors: a tensor name with a newline", "safetensors",
             lambda folder: safetensors_file(folder / "m.safetensors", {"conv1.weight\nError: injected": tensor_entry(
                 "F32", (2,), 0, 8)}, bytes(8)),
             r"has a tensor name of 28 characters that is not a plain one-line name"),
        Case("safetensors: a truncated file", "safetensors",
             lambda folder: write(folder / "m.safetensors", _small_safetensors(folder / "full.safetensors").read_bytes()[:1000]),
             r"is not a readable safetensors file \(Error while deserializing header: incomplete metadata"),
        Case("silently wrong: a resnet18 safetensors file of int8", "safetensors", resnet18_int8,
             r"conv1\.weight holds int8 values where layer 'conv1_conv' of resnet18 takes float weights"),
    ]


def _resnet18_safetensors(path: Path, dtype=np.float32) -> Path:
    arrays = {key: np.array(value if key.endswith("num_batches_tracked") else value.astype(dtype), order="C")
              for key, value in resnet18_arrays().items()}
    safetensors.numpy.save_file(arrays, str(path))
    return path


def _small_safetensors(path: Path) -> Path:
    safetensors.numpy.save_file({f"layer{index}.weight": np.ones(1000, "float32") for index in range(4)}, str(path))
    return path


def _sparse_safetensors(path: Path, header_size: int) -> Path:
    """A file of `header_size` + 8 bytes (sparse on disk) whose header would take all of it."""
    with open(path, "wb") as file:
        file.write(struct.pack("<Q", header_size) + b'{"')
        file.truncate(header_size + 8)
    return path


def _caffe_cases() -> list[Case]:
    good_blob = caffe_blob((2, 2), struct.pack("<4f", 1, 2, 3, 4))

    def valid(folder: Path) -> Path:
        rng = np.random.default_rng(0)
        layers = [("conv1", "Convolution", [rng.normal(size=(96, 3, 11, 11)), rng.normal(size=96)])]
        return write_caffemodel(folder / "full.caffemodel", layers)

    return [
        Case("caffe: a length field of 2**40", "caffe",
             lambda folder: write(folder / "m.caffemodel", varint(100 << 3 | 2) + varint(2**40) + b"x" * 100),
             r"is not a Caffe model \(a field runs past the end\)", model="alexnet"),
        Case("caffe: messages nested 10,000 deep", "caffe",
             lambda folder: write(folder / "m.caffemodel", functools.reduce(lambda inner, _: field(100, 2, inner),
                                                                            range(10_000), good_blob)),
             r"is not a Caffe model with weights \(no layer holds blobs\)", model="alexnet"),
        Case("caffe: a blob of 10**6 x 10**6 with 4 values", "caffe",
             lambda folder: write(folder / "m.caffemodel", caffe_layer("conv1", [caffe_blob((10**6, 10**6), bytes(16))])),
             r"a blob of shape \[1000000, 1000000\] holds 4 values", model="alexnet"),
        Case("caffe: a shape whose int64 product wraps to 0", "caffe",
             lambda folder: write(folder / "m.caffemodel", caffe_layer("conv1", [caffe_blob((2**32, 2**32), b"")])),
             r"a blob of shape \[4294967296, 4294967296\] holds 0 values", model="alexnet"),
        Case("caffe: a dimension of 2**63", "caffe",
             lambda folder: write(folder / "m.caffemodel", caffe_layer("conv1", [caffe_blob((2**63, 0), b"")])),
             r"a blob shape has more than 32 dimensions or one of 9,223,372,036,854,775,808", model="alexnet"),
        Case("caffe: blob data of 5 bytes", "caffe",
             lambda folder: write(folder / "m.caffemodel", caffe_layer("conv1", [caffe_blob((1,), bytes(5))])),
             r"a blob's data is 5 bytes, not a whole number of 4-byte values", model="alexnet"),
        Case("caffe: a layer type that is a varint of 2**40", "caffe",
             lambda folder: write(folder / "m.caffemodel", field(100, 2, field(1, 2, b"conv1") + field(2, 0, varint(2**40))
                                                                  + field(7, 2, good_blob))),
             r"keeps only the layers with weights, so it does not say whether it is BVLC's AlexNet", model="alexnet"),
        Case("caffe: a truncated file", "caffe",
             lambda folder: write(folder / "m.caffemodel", valid(folder).read_bytes()[:20_000]),
             r"is not a Caffe model \(a field runs past the end\)", model="alexnet"),
        Case("caffe: 64 KiB of random bytes", "caffe",
             lambda folder: write(folder / "m.caffemodel", np.random.default_rng(0).bytes(2**16)),
             r"is not a Caffe model", model="alexnet"),
        Case("caffe: 4 MB of unpacked floats", "caffe",
             lambda folder: write(folder / "m.caffemodel", caffe_layer("conv1", [unpacked_floats(800_000)])),
             r"keeps only the layers with weights, so it does not say whether it is BVLC's AlexNet", model="alexnet"),
        Case("caffe: 300,000 empty layers", "caffe",
             lambda folder: write(folder / "m.caffemodel", field(100, 2, b"") * 300_000),
             r"is not a Caffe model \(it has more than 100,000 layers\)", model="alexnet"),
        Case("caffe: a layer name of 2 MB", "caffe",
             lambda folder: write(folder / "m.caffemodel", caffe_layer("n" * 2**21, [good_blob])),
             r"has a tensor or layer name of 2,097,159 characters that is not a plain one-line name", model="alexnet"),
    ]


def _keras_cases() -> list[Case]:
    serving = ("import", "predict", "evaluate")

    def zip_bomb(folder: Path) -> Path:
        path = keras_variant(folder / "bomb.keras", lambda member, data: None if member == "model.weights.h5" else data)
        with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            zeros_member(archive, "model.weights.h5", 2**28)
        return path

    def huge_config(folder: Path) -> Path:
        return patch_member(keras_variant(folder / "config.keras"), "config.json", file_size=2**32 - 2)

    def in_keras(build: Callable[[h5py.File], None]) -> Callable[[Path], Path]:
        return lambda folder: keras_variant(folder / "model.keras", replace_weights(build))

    return [
        Case("keras: a .keras member named ../../escape.txt", "keras",
             lambda folder: keras_variant(folder / "traversal.keras", extra={"../../escape.txt": b"x"}),
             r"its member '\.\./\.\./escape\.txt' points outside the archive", model="lenet5", commands=serving),
        Case("keras: a .keras member with an absolute name", "keras",
             lambda folder: keras_variant(folder / "absolute.keras", extra={"/tmp/escape.txt": b"x"}),
             r"its member '/tmp/escape\.txt' points outside the archive", model="lenet5"),
        Case("keras: a Lambda layer", "keras", lambda folder: lambda_model(folder / "lambda.keras"),
             r"refusing to load .*: it contains Python code \(a Lambda layer", model="lenet5", commands=serving),
        Case("keras: a config naming os.system", "keras",
             lambda folder: keras_variant(folder / "system.keras", edit_config(set_activation("os", "system"))),
             r"cannot load .* as a Keras model: Could not locate function 'system'", model="lenet5", commands=serving),
        Case("keras: a config naming builtins.eval", "keras",
             lambda folder: keras_variant(folder / "eval.keras", edit_config(set_activation("builtins", "eval"))),
             r"cannot load .* as a Keras model: Could not locate function 'eval'", model="lenet5"),
        Case("keras: a config naming the class os.system", "keras",
             lambda folder: keras_variant(folder / "class.keras", edit_config(
                 lambda config: config["config"]["layers"][1].update(module="os", class_name="system"))),
             r"Could not locate class 'system'", model="lenet5"),
        Case("keras: a StringLookup reading /etc/passwd", "keras",
             lambda folder: vocabulary_model(folder / "vocabulary.keras", "/etc/passwd"),
             r"Keras's safe mode refuses it \(Requested the loading of a vocabulary file outside of the model archive\. ",
             model="lenet5", commands=serving),
        Case("keras: a 256 MiB zip bomb inside a .keras", "keras", zip_bomb,
             r"its member model\.weights\.h5 declares 268,435,456 bytes", model="lenet5", commands=("import", "finetune", "predict", "evaluate")),
        Case("keras: a config.json declaring 4 GiB", "keras", huge_config,
             r"its member config\.json declares 4,294,967,294 bytes, more than the 16,777,216", model="lenet5",
             commands=serving),
        Case("keras: a config.json nested 100,000 deep", "keras",
             lambda folder: keras_variant(folder / "deep.keras", lambda member, data: b"[" * 100_000 + b"]" * 100_000
                                          if member == "config.json" else data),
             r"its config nests deeper than any model's does", model="lenet5", commands=serving),
        Case("keras: a bad CRC in config.json", "keras",
             lambda folder: patch_member(keras_variant(folder / "crc.keras"), "config.json", corrupt=True),
             r"is damaged: its member config\.json cannot be read \(Bad CRC-32", model="lenet5", commands=serving),
        Case("keras: an encrypted member", "keras",
             lambda folder: patch_member(keras_variant(folder / "encrypted.keras"), "config.json", flag_bits=1),
             r"its member config\.json is encrypted", model="lenet5", commands=serving),
        Case("keras: a member of an unknown compression method", "keras",
             lambda folder: patch_member(keras_variant(folder / "method.keras"), "model.weights.h5", compress_type=99),
             r"its member model\.weights\.h5 is compressed with method 99", model="lenet5", commands=serving),
        Case("keras: a weights record with wrong types", "keras",
             lambda folder: keras_variant(folder / "record.keras", extra={"zoo_weights.json": json.dumps(
                 {"model": "lenet5", "weights": "x", "options": 5}).encode()}),
             r"its weights record \(zoo_weights\.json\) has options = 5", model="lenet5", commands=("import", "predict")),
        Case("keras: a weights record with an option the model lacks", "keras",
             lambda folder: keras_variant(folder / "option.keras", extra={"zoo_weights.json": json.dumps(
                 {"model": "lenet5", "weights": "x", "options": {"evil": 1}}).encode()}),
             r"gives lenet5 the option 'evil'=1, which it does not take", model="lenet5"),
        Case("keras: a weights record nested 100,000 deep", "keras",
             lambda folder: keras_variant(folder / "deep-record.keras", extra={"zoo_weights.json": b"[" * 100_000 + b"]" * 100_000}),
             r"its zoo_weights\.json nests deeper than any weights record does", model="lenet5",
             commands=("import", "predict")),
        Case("keras: an external link inside a .keras", "keras",
             lambda folder: keras_variant(folder / "link.keras", replace_weights(external_link(
                 write_external_target(folder / "target.h5")))),
             r"refusing to read .*: its layers/conv2d/vars/0 is an external link to .*target\.h5", model="lenet5",
             commands=serving),
        Case("keras: a kernel of another shape (Keras's own reason)", "keras", in_keras(wrong_shape_kernel),
             r"cannot load .* as a Keras model: The shape of the target variable .* must match\. "
             r"variable\.shape=\(5, 5, 1, 6\), Received: value\.shape=\(3,\)$", model="lenet5", commands=serving),
        Case("keras: a fill-value bomb inside a .keras", "keras", in_keras(fill_value_bomb),
             r"its dataset layers/conv2d/vars/0 of shape \(268435456,\) declares 1,073,741,824 bytes", model="lenet5",
             commands=serving),
        Case("hdf5: a kernel stored in another file (external storage)", "hdf5",
             lambda folder: h5_variant(folder / "external.weights.h5", external_storage(write(folder / "secret.bin", b"SECRET" * 200))),
             r"its dataset layers/conv2d/vars/0 keeps its data in another file \(.*secret\.bin\)", model="lenet5",
             commands=("import", "finetune")),
        Case("hdf5: an external link to another file", "hdf5",
             lambda folder: h5_variant(folder / "link.weights.h5", external_link(write_external_target(folder / "target.h5"))),
             r"its layers/conv2d/vars/0 is an external link to .*target\.h5", model="lenet5",
             commands=("import", "finetune")),
        Case("hdf5: an external link to /etc/passwd", "hdf5",
             lambda folder: h5_variant(folder / "passwd.weights.h5", external_link(Path("/etc/passwd"))),
             r"its layers/conv2d/vars/0 is an external link to /etc/passwd", model="lenet5"),
        Case("hdf5: a soft link", "hdf5", lambda folder: h5_variant(folder / "soft.weights.h5", soft_link),
             r"its layers/conv2d/vars/0 is a soft link to /layers/conv2d_1/vars/0", model="lenet5"),
        Case("hdf5: a virtual dataset", "hdf5",
             lambda folder: h5_variant(folder / "virtual.weights.h5", virtual_dataset(write_external_target(folder / "target.h5"))),
             r"its dataset layers/conv2d/vars/0 is virtual", model="lenet5"),
        Case("hdf5: a 1 GiB dataset of fill value in a small file", "hdf5",
             lambda folder: h5_variant(folder / "fill.weights.h5", fill_value_bomb),
             r"its dataset layers/conv2d/vars/0 of shape \(268435456,\) declares 1,073,741,824 bytes", model="lenet5",
             commands=("import", "finetune")),
        Case("hdf5: integer kernels", "hdf5", lambda folder: h5_variant(folder / "int.weights.h5", integer_kernel),
             r"c1/kernel holds int8 values where layer 'c1' of lenet5 takes float weights", model="lenet5"),
        Case("hdf5: a layer group that is missing", "hdf5",
             lambda folder: legacy_h5(folder / "missing.h5", [b"c1"]),
             r"is not a Keras weights file: /c1 should be a group and is nothing", model="lenet5"),
        Case("hdf5: a dataset where a layer group belongs", "hdf5",
             lambda folder: legacy_h5(folder / "dataset.h5", [b"c1"], lambda file: file.create_dataset("c1", data=[1.0])),
             r"is not a Keras weights file: /c1 should be a group and is a dataset", model="lenet5"),
        Case("hdf5: a weight name that is missing", "hdf5",
             lambda folder: legacy_h5(folder / "weight.h5", [b"c1"], lambda file: file.create_group("c1").attrs.create(
                 "weight_names", [b"c1/kernel:0"])),
             r"/c1/c1/kernel:0 should be a dataset and is nothing", model="lenet5"),
        Case("hdf5: layer names that are numbers", "hdf5",
             lambda folder: legacy_h5(folder / "numbers.h5", np.arange(3)),
             r"has a name in layer_names that is a int64, not a string", model="lenet5"),
        Case("hdf5: a 'layers' dataset in a Keras 3 file", "hdf5",
             lambda folder: h5_variant(folder / "layers.weights.h5", lambda file: (file.__delitem__("layers"),
                                                                                   file.create_dataset("layers", data=[1]))),
             r"is not a Keras weights file: /layers should be a group and is a dataset", model="lenet5"),
        Case("hdf5: variables that are not numbered", "hdf5",
             lambda folder: h5_variant(folder / "vars.weights.h5", lambda file: file.move("layers/conv2d/vars/0",
                                                                                          "layers/conv2d/vars/kernel")),
             r"layers/conv2d/vars holds .*kernel, not numbered variables", model="lenet5"),
        Case("hdf5: a string dataset where weights belong", "hdf5",
             lambda folder: h5_variant(folder / "text.weights.h5", lambda file: (file.__delitem__("layers/conv2d/vars/0"),
                                       file.create_dataset("layers/conv2d/vars/0", data=np.array([b"x"] * 4)))),
             r"its dataset /layers/conv2d/vars/0 holds \|S1 values, not numbers", model="lenet5"),
    ]


def all_cases() -> list[Case]:
    return [*_pickle_cases(), *_exhaustion_cases(), *_safetensors_cases(), *_caffe_cases(), *_keras_cases()]


# -- measuring ------------------------------------------------------------------------------------------------
def _resident_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith(key + ":"))
    except (OSError, StopIteration):
        return None


def measure(function: Callable[[], object]) -> tuple[object, int, float]:
    """(what `function` returned or raised, its peak memory in bytes, seconds).

    The peak is the process's resident-set high-water mark over the call, reset before it
    (Linux's /proc/self/clear_refs), so it counts C allocations (h5py, numpy, TensorFlow) too;
    where that is not available, Python's own allocations (tracemalloc)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        before = _resident_kib("VmRSS")
        traced = False
    except OSError:
        before, traced = None, True
        tracemalloc.start()
    start = time.perf_counter()
    try:
        outcome = function()
    except BaseException as error:  # noqa: BLE001 - the outcome is what the caller checks
        outcome = error
    seconds = time.perf_counter() - start
    if traced:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    else:
        peak = max(0, (_resident_kib("VmHWM") or 0) - before) * 1024
    return outcome, peak, seconds



# -- checking -------------------------------------------------------------------------------------------------
MEMORY_ALLOWANCE = 256 * 2**20  # what refusing any case may take, beyond a few times the file's size
SECONDS = 60
MESSAGE_LENGTH = 1000


def check_refusal(outcome, path: Path, pattern: str) -> str:
    """A ZooError of one bounded line that names the file and says what the case's pattern says."""
    assert isinstance(outcome, zoo.ZooError), repr(outcome)
    message = str(outcome)
    assert len(message.splitlines()) == 1 and len(message) < MESSAGE_LENGTH, message[:2000]
    assert str(path) in message, message
    assert re.search(pattern, message), f"{pattern!r} not in {message!r}"
    return message


def check_bounds(path: Path, peak: int, seconds: float) -> None:
    assert peak < min(2**31, MEMORY_ALLOWANCE + 3 * path.stat().st_size), f"{peak / 2**20:.0f} MiB"
    assert seconds < SECONDS, f"{seconds:.0f} s"


def cli_arguments(command: str, case: Case, path: Path, folder: Path, data: Path, image: Path) -> list[str]:
    """The `zoo` command line that hands the case's file to `command`."""
    if command == "import":
        return ["import", case.model, "--weights", str(path), "--out", str(folder / "imported.keras")]
    if command == "finetune":
        return ["finetune", case.model, "--weights", str(path), "--data", str(data), "--epochs", "1", "--batch-size",
                "4", "--image-size", "32", "--strategy", "one", "--out", str(folder / "run"), "--quiet"]
    if command == "predict":
        return ["predict", str(path), str(image)]
    return ["evaluate", str(path), "--data", str(data)]


def run_case(case: Case, folder: Path, data: Path, image: Path, capsys, main) -> None:
    """Builds the case's file and hands it to `zoo.create` and to each of the case's commands
    (`main` is finetune.cli.main, run in this process): each refuses it with one line naming it,
    runs nothing, writes nothing and stays within the memory and time bounds."""
    path = case.build(folder)
    shape = None if case.model == "lenet5" else (32, 32, 3)  # small inputs: the file is refused before or at loading
    outcome, peak, seconds = measure(lambda: zoo.create(case.model, weights=str(path), input_shape=shape))
    check_refusal(outcome, path, case.message)
    check_bounds(path, peak, seconds)
    assert not (folder / MARKER).exists()
    for command in case.commands:
        capsys.readouterr()
        code, peak, seconds = measure(lambda: main(cli_arguments(command, case, path, folder, data, image)))
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and len(lines) == 1 and lines[0].startswith("Error: "), (command, code, lines)
        check_refusal(zoo.ZooError(lines[0].removeprefix("Error: ")), path, case.message)
        check_bounds(path, peak, seconds)
        assert not (folder / MARKER).exists() and not (folder / "imported.keras").exists(), command
        assert not (folder / "run" / "best.keras").exists(), command


def command_inputs(root: Path) -> tuple[Path, Path]:
    """A class-folder dataset (red, green, blue) and an image, for the commands that take them."""
    layouts.class_folders(root / "colours", count=4)
    return root / "colours", layouts.save_image(root / "red.png", "red")
