"""The harness for hostile and malformed weight files: what an attacker or a careless download
could hand `zoo.create(NAME, weights=FILE)`, `zoo import`, `zoo finetune --weights`, `zoo predict`
and `zoo evaluate`, made by the tests themselves (no PyTorch).

The cases are in tests/hostile_pickles.py (PyTorch checkpoints) and tests/hostile_formats.py
(safetensors, Caffe, `.keras`, `.h5`, `.weights.h5`); the tests (tests/test_untrusted_*.py) and
scripts/untrusted_files.py (the table of cases, messages and peaks) run them through `run_case` or
`measure`. A payload, were it run, would create `MARKER` in the folder its file is built in.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import struct
import time
import tracemalloc
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

import layouts
import zoo
from source_weights import CONVERTER_FIXTURES, load_fixture, random_arrays

MARKER = "payload-ran"


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


@functools.cache
def resnet18_arrays() -> dict[str, np.ndarray]:
    """torchvision's resnet18 keys and shapes, seeded weights (the converter fixture's)."""
    metadata, _, _ = load_fixture(CONVERTER_FIXTURES / "resnet18_torchvision.npz")
    return random_arrays(metadata["shapes"], metadata["seed"], metadata["output_scale"])


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path



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
        size = max(32, zoo.info(case.model).min_input_size)
        return ["finetune", case.model, "--weights", str(path), "--data", str(data), "--epochs", "1", "--batch-size",
                "4", "--image-size", str(size), "--strategy", "one", "--out", str(folder / "run"), "--quiet"]
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
