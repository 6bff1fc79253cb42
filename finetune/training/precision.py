"""The dtype policy of a run (mixed precision where the device gains from it), and models that
compute in float32 again for serving."""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

import zoo
from finetune.runtime import cpu_flags
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


# Below this many FLOPs per training step (forward and backward), bfloat16 gains nothing even on
# CPUs that multiply it natively: the casts around every layer and oneDNN's reorders cost as much
# as the faster matmuls save. Measured with oneDNN on AVX512-BF16 (BENCHMARKS.md): LeNet-5 at 32x32,
# batch 64 (0.16 GFLOP a step) x1.02 end to end; ResNet-18 at 64x64, batch 64 (57 GFLOP) x1.21;
# ResNet-50 at 128x128, batch 64 (500 GFLOP) x1.29. The threshold sits well inside that gap.
BFLOAT16_MIN_STEP_FLOPS = 2e9


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
      it natively (AMX, AVX512-BF16, Arm BF16) and the training step (`step_flops`, see
      `training_step_flops`; None: not known) is big enough to gain from it, else float32.
      Measured with oneDNN on AVX512-BF16: training 1.2-1.3x, inference 1.3-1.4x faster, the
      same validation accuracy, for steps from ResNet-18 at 64x64 up; without native bfloat16
      (AVX2 only) oneDNN emulates it and it runs slower than float32 (BENCHMARKS.md, bench_knobs,
      bench_finetune and bench_peers).
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
        big_enough = step_flops is None or step_flops >= BFLOAT16_MIN_STEP_FLOPS
        return "mixed_bfloat16" if cpu_has_bfloat16() and big_enough else "float32"
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
