"""Starting TensorFlow: the settings it reads once, as it starts, applied before the kit's first
import of it, and its native start-up messages kept off the terminal (`start_tensorflow`, which
every sub-package of the kit that computes calls before its modules import TensorFlow).

TensorFlow turns its oneDNN kernels on by itself only on x86 CPUs with AVX-512 VNNI or newer
(AVX512-BF16, AMX); on CPUs with AVX2 alone it leaves them off and runs convolutions on Eigen.
There oneDNN's AVX2 kernels train the zoo's CNNs about twice as fast at the same accuracy (the
default job in 82 s instead of 162 s; ResNet-18 and -50 training steps 2.0x); inference of small
models is slower with them (ResNet-18 at 64x64 0.77x, ResNet-50 a tie: BENCHMARKS.md, bench_peers
and bench_defaults). Training is the kit's main job, so it turns them on, unless the user set
TF_ENABLE_ONEDNN_OPTS themselves (TF_ENABLE_ONEDNN_OPTS=0 for inference-only processes there).
"""

from __future__ import annotations

import os
from pathlib import Path

from finetune.quiet import native_stderr_silenced

ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"


def cpu_flags() -> set[str]:
    """The CPU's feature flags (x86 "flags", Arm "Features" in /proc/cpuinfo); empty where unknown."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


# The kinds of CPU whose speeds differ, first match wins: whether bfloat16 is native (AMX,
# AVX512-BF16, Arm BF16) and whether TensorFlow turns oneDNN on by itself (it does where AVX-512
# VNNI or newer is). (key, flags it needs, description); the key names BENCHMARKS.md's sections.
CPU_KINDS = (
    ("amx", ("amx_bf16",), "x86 with AMX (native bfloat16 matmul tiles)"),
    ("avx512_bf16", ("avx512_bf16",), "x86 with AVX512-BF16 (native bfloat16)"),
    ("avx512", ("avx512f",), "x86 with AVX-512, no native bfloat16"),
    ("avx2", ("avx2",), "x86 with AVX2 only: no AVX-512, no native bfloat16"),
    ("arm_bf16", ("bf16",), "Arm with BF16 (native bfloat16)"),
)
OTHER_CPU_KIND = ("other", "CPU without AVX2 or BF16")


def cpu_kind(flags=None) -> tuple[str, str]:
    """(key, description) of this CPU's kind (of `flags`, default the CPU's own), e.g. ("amx", ...)."""
    flags = cpu_flags() if flags is None else set(flags)
    for key, needed, description in CPU_KINDS:
        if all(flag in flags for flag in needed):
            return key, description
    return OTHER_CPU_KIND


def use_onednn(environ=os.environ) -> None:
    """Sets TF_ENABLE_ONEDNN_OPTS=1 on x86 CPUs with AVX2 when the user left it unset; it takes
    effect only if TensorFlow has not started yet (it reads the setting once)."""
    if ONEDNN_ENV not in environ and "avx2" in cpu_flags():
        environ[ONEDNN_ENV] = "1"


def start_tensorflow() -> None:
    """Imports TensorFlow once, after `use_onednn`, with its native start-up messages silenced.

    This function is where the kit's first import of TensorFlow happens, on purpose: the package's
    root and the `zoo` command's parsing import nothing of it, so that `zoo --help`, `zoo list`
    and `zoo info` answer at once, and the kit starts it when a sub-package that computes loads.
    """
    use_onednn()
    with native_stderr_silenced():
        import tensorflow

        # The first device listing probes CUDA, which on a machine without a GPU logs "failed call
        # to cuInit" to stderr; listing physical devices does not start TensorFlow's context.
        tensorflow.config.list_physical_devices("GPU")
