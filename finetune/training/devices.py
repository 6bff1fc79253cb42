"""Picks the tf.distribute strategy for a run.

Every strategy runs the same custom training step under `strategy.run`: Keras 3's `model.fit`
fails under MultiWorkerMirroredStrategy on this stack (Keras issue 20585), a step under strategy.run
does not.
"""

from __future__ import annotations

import json
import os

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


def task_id(strategy) -> int:
    """This worker's index in a multi-worker cluster (0 for every other strategy)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return int(getattr(resolver, "task_id", 0) or 0)
