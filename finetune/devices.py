"""Picks the tf.distribute strategy and the precision for a run.

Every strategy runs the same custom training step under `strategy.run`: Keras 3's `model.fit`
fails under MultiWorkerMirroredStrategy on this stack (REFERENCE.md), a step under strategy.run
does not.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras
import tensorflow as tf

from zoo.errors import ZooError

CPU_REPLICAS_ENV = "ZOO_CPU_REPLICAS"  # split the CPU into N logical devices (to test MirroredStrategy)


def split_cpu(replicas: int) -> None:
    """Makes `replicas` logical CPU devices; must run before TensorFlow initializes its devices."""
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * replicas)
    except RuntimeError as error:
        raise ZooError(f"cannot split the CPU into {replicas} devices after TensorFlow started: {error}") from None


def _tpu_resolver():
    if not (os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR") or os.path.exists("/dev/accel0")):
        return None
    try:
        return tf.distribute.cluster_resolver.TPUClusterResolver()
    except (ValueError, tf.errors.NotFoundError):
        return None


def make_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """auto: a TPU if one is reachable, else every local GPU (MirroredStrategy), else one device."""
    if os.environ.get(CPU_REPLICAS_ENV) and not tf.config.list_physical_devices("GPU"):
        split_cpu(int(os.environ[CPU_REPLICAS_ENV]))
    # Physical listings only: listing logical devices would start TensorFlow's context, after which
    # neither the CPU split nor MultiWorkerMirroredStrategy's collectives can be configured.
    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        if _tpu_resolver() is not None:
            name = "tpu"
        elif len(gpus) > 1:
            name = "mirrored"
        else:
            name = "one"
    if name == "one":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    if name == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy()
        return tf.distribute.MirroredStrategy([device.name for device in tf.config.list_logical_devices("CPU")])
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ZooError("--strategy multiworker needs TF_CONFIG (cluster and task) in the environment")
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError:
            raise ZooError("TF_CONFIG is not valid JSON") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = _tpu_resolver()
        if resolver is None:
            raise ZooError("--strategy tpu: no TPU is reachable (set TPU_NAME, or use --strategy auto)")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ZooError(f"unknown strategy {name!r}")


def is_tpu(strategy) -> bool:
    return isinstance(strategy, tf.distribute.TPUStrategy)


def is_chief(strategy) -> bool:
    """Only the chief writes the run folder under MultiWorkerMirroredStrategy."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type in (None, "chief") or (task_type == "worker" and task_id == 0
                                            and "chief" not in resolver.cluster_spec().as_dict())


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
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            if set(line.split(":", 1)[1].split()) & set(BFLOAT16_CPU_FLAGS):
                return True
    return False


def precision_policy(precision: str, strategy) -> str:
    """The Keras dtype policy for a run's `precision`:

    - float32;
    - mixed: float16 with loss scaling on GPU, bfloat16 on TPU and CPU;
    - auto (the default), the fastest correct choice per device: bfloat16 on TPU (its native
      matmul type); float16 on GPUs with tensor cores; on CPU, bfloat16 where the CPU multiplies
      it natively (measured with oneDNN on AVX512-BF16: training 1.2-1.3x, inference 1.3-1.4x
      faster, the same validation accuracy; BENCHMARKS.md, bench_knobs and bench_finetune), else
      float32.
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
        return "mixed_bfloat16" if cpu_has_bfloat16() else "float32"
    return "mixed_float16" if gpus else "mixed_bfloat16"


def set_precision(policy: str) -> None:
    keras.mixed_precision.set_global_policy(policy)
