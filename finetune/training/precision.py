"""The dtype policy of a run (mixed precision where the device gains from it), and models that
compute in float32 again for serving."""

from __future__ import annotations

import contextlib
import math

import keras
import tensorflow as tf

import zoo
from finetune.runtime import cpu_flags, cpu_kind
from finetune.training.devices import is_tpu


# Mixed float16 pays on GPUs with tensor cores (compute capability 7.0 and up; TensorFlow's mixed
# precision guide); older GPUs run it no faster than float32.
TENSOR_CORE_CAPABILITY = (7, 0)


def gpu_capabilities() -> list[tuple[int, int] | None]:
    """The CUDA compute capability of each local GPU (None where TensorFlow does not report one)."""
    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        capabilities.append(tuple(capability) if capability else None)
    return capabilities


BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86 /proc/cpuinfo flags; "bf16" on Arm


def cpu_has_bfloat16() -> bool:
    """Whether the CPU multiplies bfloat16 natively (AVX512-BF16, AMX, Arm BF16): without it,
    oneDNN emulates bfloat16 and mixed precision runs slower than float32."""
    return bool(cpu_flags() & set(BFLOAT16_CPU_FLAGS))


# How much faster the kit's mixed_bfloat16 training step ran than its float32 one, measured per
# CPU kind (`finetune.runtime.cpu_kind`) at steps of a given size (FLOPs, `training_step_flops`):
# (step FLOPs, float32 step time / bfloat16 step time). `--precision auto` picks bfloat16 on a CPU
# where the measurement nearest the step's size (in log FLOPs) found it faster by more than a tie
# (BFLOAT16_MIN_SPEEDUP: within 3%, float32, which serves without casts, is kept).
# - avx512_bf16 (AMD EPYC, oneDNN; bench_knobs, bench_finetune, before BatchNorm ran fused, which
#   gained bfloat16 more than float32): LeNet-5 at 32x32, batch 64, 1.02 end to end; ResNet-18 at
#   64x64, batch 64, 1.21; ResNet-50 at 128x128, batch 64, 1.29.
# - amx (Intel Xeon, oneDNN, BatchNorm fused; scripts/bench_peers.py, the zoo side, medians of 3
#   rounds): LeNet-5 at 32x32, batch 64, 1.02; ResNet-50 at 224x224, batch 32, 1.87.
# On CPUs without native bfloat16 (avx2, avx512) oneDNN emulates it and runs slower than float32.
BFLOAT16_TRAINING_SPEEDUPS = {
    "avx512_bf16": ((1.6e8, 1.02), (5.7e10, 1.21), (5.0e11, 1.29)),
    "amx": ((1.6e8, 1.02), (7.5e11, 1.87)),
}
BFLOAT16_MIN_SPEEDUP = 1.03
# Kinds with native bfloat16 but no measurement yet (Arm BF16): bfloat16 from this many FLOPs per
# step on, where it paid on the measured kinds (between LeNet-5's and ResNet-18's steps).
BFLOAT16_MIN_STEP_FLOPS = 2e9


def bfloat16_trains_faster(kind: str, step_flops: float | None) -> bool:
    """Whether a mixed_bfloat16 training step of `step_flops` (None: not known, taken as large)
    ran faster than a float32 one on CPUs of `kind`, by the measurements above."""
    if kind not in BFLOAT16_TRAINING_SPEEDUPS:
        return kind == "arm_bf16" and (step_flops is None or step_flops >= BFLOAT16_MIN_STEP_FLOPS)
    measured = BFLOAT16_TRAINING_SPEEDUPS[kind]
    if step_flops is None:
        return measured[-1][1] > BFLOAT16_MIN_SPEEDUP
    nearest = min(measured, key=lambda point: abs(math.log(point[0]) - math.log(max(step_flops, 1.0))))
    return nearest[1] > BFLOAT16_MIN_SPEEDUP


def training_step_flops(model_name: str, input_shape, batch_size: int) -> float:
    """FLOPs of one training step: the forward pass (the zoo's count at its default input, scaled
    by the image area) times 3, as the backward pass costs about twice the forward."""
    spec = zoo.info(model_name)
    if not spec.flops:
        return 0.0
    default_height, default_width = spec.default_input_shape[:2]
    height, width = input_shape[:2]
    return 3.0 * spec.flops * (height * width) / (default_height * default_width) * batch_size


def precision_policy(precision: str, strategy, step_flops: float | None = None) -> str:
    """The Keras dtype policy for a run's `precision`:

    - float32;
    - mixed: float16 with loss scaling on GPU, bfloat16 on TPU and CPU;
    - auto (the default), the fastest correct choice per device: bfloat16 on TPU (its native
      matmul type); float16 on GPUs with tensor cores; on CPU, bfloat16 where the CPU multiplies
      it natively (AMX, AVX512-BF16, Arm BF16) and a training step of this size (`step_flops`,
      see `training_step_flops`; None: not known) was measured faster in it on this kind of CPU
      (`bfloat16_trains_faster`), else float32. The same validation accuracy either way; without
      native bfloat16 (AVX2 only) oneDNN emulates it and it runs slower than float32
      (BENCHMARKS.md, bench_knobs, bench_finetune and bench_peers).
    """
    if precision == "float32":
        return "float32"
    if is_tpu(strategy):
        return "mixed_bfloat16"
    gpus = gpu_capabilities()
    if precision == "auto":
        if gpus:
            tensor_cores = all(gpu is not None and gpu >= TENSOR_CORE_CAPABILITY for gpu in gpus)
            return "mixed_float16" if tensor_cores else "float32"
        faster = cpu_has_bfloat16() and bfloat16_trains_faster(cpu_kind()[0], step_flops)
        return "mixed_bfloat16" if faster else "float32"
    return "mixed_float16" if gpus else "mixed_bfloat16"


def set_precision(policy: str) -> None:
    keras.mixed_precision.set_global_policy(policy)


@contextlib.contextmanager
def precision(policy: str):
    """Sets the global dtype policy for the block, and restores the previous one after it."""
    previous = keras.mixed_precision.global_policy().name
    set_precision(policy)
    try:
        yield policy
    finally:
        set_precision(previous)


def float32_model(model: keras.Model) -> keras.Model:
    """`model` computing in float32. A model trained with mixed precision keeps its mixed dtype
    policy in its .keras file; its variables are float32 already, so a float32 rebuild with the
    same weights serves on any device (bfloat16 runs emulated, and many times slower, on CPUs
    without native support, and has no kernels on older GPUs)."""
    def is_mixed(layer):
        return layer.dtype_policy.name != "float32" or (
            isinstance(layer, keras.Model) and any(is_mixed(inner) for inner in layer.layers))

    if not any(is_mixed(layer) for layer in model.layers):
        return model

    def rebuild(layer):
        config = layer.get_config()
        config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    # Input layers and nested models take the global policy: float32 while cloning.
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        rebuilt = keras.models.clone_model(model, clone_function=rebuild, recursive=True)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    rebuilt.set_weights(model.get_weights())
    return rebuilt
