"""What every benchmark script shares: interleaved timing, paired ratios, the machine's matmul
peak, markdown tables and BENCHMARKS.md sections.

Timings on a shared machine drift by tens of percent between minutes; a ratio of two things timed
in alternation (A B, B A, A B, ...) within one process drifts far less. So every comparison here is
interleaved, and reported as the median of per-round ratios with their interquartile range.

Import it from a script in scripts/ (the script's folder is on sys.path):

    import benchmarks
    times = benchmarks.interleaved({"zoo": run_zoo, "keras": run_keras}, repeats=5)
    benchmarks.write_section("bench_models", "Zoo vs keras.applications", body, command)

Importing it does not start TensorFlow (the functions that need it import it): settings that
TensorFlow reads once at start-up, such as oneDNN's, are still the script's (or the kit's) to make.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from finetune.runtime import cpu_kind  # noqa: E402  (imports nothing of TensorFlow)

BENCHMARKS_FILE = ROOT / "BENCHMARKS.md"
TITLE = ("# Benchmarks\n\nWritten by the scripts in `scripts/` (each replaces only its own section); "
         "rerun a section with the command it gives. Timings are medians of interleaved repetitions; "
         "ratios are medians of per-round ratios, with their interquartile range. Each section names the "
         "machine it ran on; sections that differ by machine kind (avx2, avx512_bf16, amx, gpu: "
         "`benchmarks.machine_kind`) carry the kind in their name.\n")
TIE_TOLERANCE = 0.03  # ratios within 3% of 1 are a tie on a shared CPU


# -- timing --------------------------------------------------------------------------------------

def block(result):
    """Waits for a TensorFlow result (a tensor, or a structure of them) to exist on the host."""
    import tensorflow as tf

    for tensor in tf.nest.flatten(result):
        if hasattr(tensor, "numpy"):
            tensor.numpy()
    return result


def calibrate(call: Callable[[], object], min_seconds: float) -> int:
    """How many calls one timing sample should make so that it lasts at least `min_seconds`
    (short calls are dominated by timer and scheduler noise). Also serves as the warm-up."""
    block(call())  # tracing, compilation and first allocations are not steady-state costs
    start = time.perf_counter()
    block(call())
    once = max(time.perf_counter() - start, 1e-6)
    return max(1, int(min_seconds / once + 0.999))


def time_once(call: Callable[[], object]) -> float:
    """Seconds of one blocking call."""
    start = time.perf_counter()
    block(call())
    return time.perf_counter() - start


class Timings(dict):
    """Wall-clock seconds per call, {name: [sample, ...]}, with the process CPU seconds of the same
    samples in `.cpu`.

    On a CPU shared with other work, wall time counts the time this process waits for a core; CPU
    time counts only the work it does, so two models doing the same operations compare far more
    steadily in CPU time (measured here: per-round ratios within +-3% where wall time gave +-20%).
    Settings that change how many threads work (XLA, oneDNN) must be compared in wall time.
    """

    def __init__(self, wall: dict[str, list[float]], cpu: dict[str, list[float]]):
        super().__init__(wall)
        self.cpu = cpu


def interleaved(calls: dict[str, Callable[[], object]], repeats: int, min_seconds: float = 0.2,
                numbers: dict[str, int] | None = None) -> Timings:
    """Seconds per call of each entry, `repeats` samples each, taken in alternating order.

    Round r times every call once (forward order on even rounds, backward on odd ones, so no
    entry always follows the same neighbour); each sample repeats its call enough times to last
    `min_seconds`, then divides. Calls must block (see `block`). Returns wall-clock seconds, with
    the process CPU seconds of the same samples in `.cpu`.
    """
    numbers = dict(numbers or {})
    for name, call in calls.items():
        if name not in numbers:
            numbers[name] = calibrate(call, min_seconds)
    times: dict[str, list[float]] = {name: [] for name in calls}
    cpu_times: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for round_index in range(repeats):
        for name in names if round_index % 2 == 0 else names[::-1]:
            call, number = calls[name], numbers[name]
            start, cpu_start = time.perf_counter(), time.process_time()
            for _ in range(number):
                block(call())
            times[name].append((time.perf_counter() - start) / number)
            cpu_times[name].append((time.process_time() - cpu_start) / number)
    return Timings(times, cpu_times)


def median(values) -> float:
    return statistics.median(values)


def quartiles(values) -> tuple[float, float]:
    values = sorted(values)
    if len(values) < 4:
        return values[0], values[-1]
    low, _, high = statistics.quantiles(values, n=4, method="inclusive")
    return low, high


def paired_ratios(numerator: list[float], denominator: list[float]) -> list[float]:
    """Per-round ratios of two interleaved series (same round, same machine load)."""
    return [a / b for a, b in zip(numerator, denominator)]


def speedup(baseline_seconds: list[float], candidate_seconds: list[float]) -> tuple[float, float, float]:
    """How many times faster the candidate is: median and quartiles of baseline/candidate per round."""
    ratios = paired_ratios(baseline_seconds, candidate_seconds)
    low, high = quartiles(ratios)
    return median(ratios), low, high


def verdict(ratio: float, low: float, high: float, tolerance: float = TIE_TOLERANCE) -> str:
    """"faster", "slower" or "tie": beyond noise only when the whole interquartile range is past
    the tolerance."""
    if low > 1 + tolerance:
        return "faster"
    if high < 1 - tolerance:
        return "slower"
    return "tie"


def format_ratio(ratio: float, low: float, high: float) -> str:
    return f"{ratio:.2f} ({low:.2f}-{high:.2f})"


# -- the machine ---------------------------------------------------------------------------------

def matmul_call(size: int = 4096, dtype: str = "float32"):
    """A call timing one size x size matmul, and its FLOPs (2 n^3)."""
    import tensorflow as tf

    a = tf.random.normal([size, size], dtype=tf.float32)
    b = tf.random.normal([size, size], dtype=tf.float32)
    if dtype != "float32":
        a, b = tf.cast(a, dtype), tf.cast(b, dtype)
    multiply = tf.function(tf.linalg.matmul)
    return (lambda: multiply(a, b)), 2 * size**3


def matmul_peak(size: int = 4096, repeats: int = 5, dtype: str = "float32") -> float:
    """The machine's dense matmul rate in GFLOP/s: the best of `repeats` timed matmuls."""
    call, flops = matmul_call(size, dtype)
    times = interleaved({"matmul": call}, repeats, min_seconds=0.3)["matmul"]
    return flops / min(times) / 1e9


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = line.split(":", 1)[1].split()
                wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile", "bf16")
                return [flag for flag in wanted if flag in flags]
    except OSError:
        pass
    return []


def machine_kind(flags: list[str] | None = None, gpus: list[str] | None = None) -> tuple[str, str]:
    """(key, description) of this machine's kind, e.g. ("avx2", "x86 with AVX2 only: ..."); a GPU
    machine is "gpu" whatever its CPU, a CPU one its kind as the kit tells it
    (`finetune.runtime.cpu_kind`). The key names BENCHMARKS.md sections of that kind."""
    if gpus:
        return "gpu", f"GPU ({', '.join(gpus)})"
    return cpu_kind(_cpu_flags() if flags is None else flags)


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def available_memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def machine() -> dict:
    """CPU, cores, memory, load, software versions and devices, for the section header."""
    import keras
    import tensorflow as tf

    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    gpus = tf.config.list_physical_devices("GPU")
    gpu_names = [gpu.name for gpu in gpus]
    kind, kind_description = machine_kind(gpus=gpu_names)
    log(f"machine kind: {kind} ({kind_description}); {_cpu_model()}")
    return {
        "cpu": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "kind": kind,
        "kind_description": kind_description,
        "cores": cores,
        "usable_cores": usable,
        "memory_gib": _memory_gib(),
        "load_average": load,
        "gpus": gpu_names,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "onednn": _onednn_state(),
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
    }


def _onednn_state() -> str:
    """Whether TensorFlow's oneDNN kernels are on in this process, and who decided: TensorFlow
    turns them on by itself only on CPUs with AVX-512 VNNI or newer; TF_ENABLE_ONEDNN_OPTS overrides."""
    from tensorflow.python.util import _pywrap_util_port

    state = "on" if _pywrap_util_port.IsMklEnabled() else "off"
    setting = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    return f"{state} (TF_ENABLE_ONEDNN_OPTS={setting})" if setting is not None else f"{state} (TensorFlow's default here)"


def describe_machine(info: dict | None = None, peak_gflops: float | None = None) -> str:
    info = info or machine()
    memory = f"{info['memory_gib']:.0f} GiB" if info["memory_gib"] else "unknown memory"
    flags = f" ({', '.join(info['cpu_flags'])})" if info["cpu_flags"] else ""
    lines = [
        f"- machine kind: {info['kind']} ({info['kind_description']})" if "kind" in info else None,
        f"- machine: {info['cpu']}{flags}, {info['usable_cores']} of {info['cores']} cores usable, {memory}"
        + (f", GPUs: {', '.join(info['gpus'])}" if info["gpus"] else ", no GPU"),
        f"- load average when the run started: {info['load_average']:.1f}" if info["load_average"] is not None else None,
        f"- software: Python {info['python']}, TensorFlow {info['tensorflow']}, Keras {info['keras']}, "
        f"oneDNN {info['onednn']}",
        f"- date: {info['date']}",
        f"- float32 matmul peak measured in this run: {peak_gflops:.0f} GFLOP/s" if peak_gflops else None,
    ]
    return "\n".join(line for line in lines if line)


# -- output --------------------------------------------------------------------------------------

def markdown_table(headers: list[str], rows: list[list]) -> str:
    """A GitHub markdown table, numbers right-aligned; also readable as plain text."""
    # a "|" inside a cell would end it: markdown wants it escaped
    headers = [str(header).replace("|", "\\|") for header in headers]
    cells = [[str(cell).replace("|", "\\|") for cell in row] for row in rows]
    widths = [max(len(str(header)), *(len(row[index]) for row in cells)) if cells else len(str(header))
              for index, header in enumerate(headers)]
    numeric = [all(_looks_numeric(row[index]) for row in cells) if cells else False for index in range(len(headers))]

    def line(row):
        return "| " + " | ".join(cell.rjust(width) if right else cell.ljust(width)
                                 for cell, width, right in zip(row, widths, numeric)) + " |"

    rule = "|" + "|".join(("-" * (width + 1) + ":") if right else ("-" * (width + 2))
                          for width, right in zip(widths, numeric)) + "|"
    return "\n".join([line([str(header) for header in headers]), rule, *(line(row) for row in cells)])


def _looks_numeric(text: str) -> bool:
    head = text.split(" ")[0].rstrip("%x×")
    try:
        float(head.replace(",", ""))
        return True
    except ValueError:
        return head in ("-", "")


def rerun_command(argv: list[str] | None = None) -> str:
    """The command that reproduces this run, relative to the repository root."""
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0]).resolve()
    try:
        argv[0] = str(script.relative_to(ROOT))
    except ValueError:
        pass
    return "python " + " ".join(argv)


@contextlib.contextmanager
def _locked(path: Path):
    # The lock lives outside the working tree (no stray file to commit by mistake); the file itself
    # cannot be the lock, as it is replaced rather than rewritten.
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    lock_path = Path(tempfile.gettempdir()) / f"benchmarks-{digest}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_section(section: str, path: Path = BENCHMARKS_FILE) -> str | None:
    """The text of one script's section of BENCHMARKS.md (between its markers), or None."""
    begin, end = f"<!-- begin {section} -->", f"<!-- end {section} -->"
    text = path.read_text() if path.exists() else ""
    if begin not in text or end not in text:
        return None
    return text.split(begin, 1)[1].split(end, 1)[0]


def write_section(section: str, title: str, body: str, command: str | None = None,
                  path: Path = BENCHMARKS_FILE) -> None:
    """Replaces (or appends) one script's section of BENCHMARKS.md, leaving the others as they are.

    A section runs from `<!-- begin SECTION -->` to `<!-- end SECTION -->`; scripts finishing at
    the same time take turns (a file lock) and the file is replaced atomically.
    """
    begin, end = f"<!-- begin {section} -->", f"<!-- end {section} -->"
    parts = [begin, f"## {title}", ""]
    if command:
        parts += [f"Rerun: `{command}`", ""]
    parts += [body.rstrip(), end]
    block_text = "\n".join(parts)
    with _locked(path):
        text = path.read_text() if path.exists() else TITLE
        if begin in text and end in text:
            before, rest = text.split(begin, 1)
            _, after = rest.split(end, 1)
            text = before + block_text + after
        else:
            text = text.rstrip("\n") + "\n\n" + block_text + "\n"
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(text)
        os.replace(temporary, path)


def run_worker(argv: list[str], env: dict[str, str], timeout: float | None = None,
               python: str | None = None) -> str:
    """Runs a helper process (for settings fixed at TensorFlow start-up, or another framework's
    interpreter `python`) and returns its stdout."""
    full_env = {**os.environ, **env}
    result = subprocess.run([python or sys.executable, *argv], capture_output=True, text=True, env=full_env,
                            timeout=timeout, cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"worker {' '.join(argv)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout


def log(message: str) -> None:
    """Progress on stderr, so stdout keeps only the tables."""
    print(message, file=sys.stderr, flush=True)
