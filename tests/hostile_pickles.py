"""Hostile PyTorch checkpoints: pickles written opcode by opcode (pickletools' names) and laid
out as torch.save lays them out, a zip archive (ARCHIVE/data.pkl, ARCHIVE/data/KEY) or the legacy
stream, with payloads, poisons of the allow-list, malformed tensors and storages, and files made
to exhaust memory (`pickle_cases`).
"""

from __future__ import annotations

import pickle
import struct
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from hostile_files import MARKER, Case, patch_member, resnet18_arrays, write, zeros_member

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


def _payload_cases() -> list[Case]:
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



def pickle_cases() -> list[Case]:
    return [*_payload_cases(), *_exhaustion_cases()]
