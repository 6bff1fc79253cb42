"""Picks the tf.distribute strategy for a run, and stops the workers of a multi-worker run together.

Every strategy runs the same custom training step under `strategy.run`: Keras 3's `model.fit`
fails under MultiWorkerMirroredStrategy on this stack (Keras issue 20585), a step under strategy.run
does not.
"""

from __future__ import annotations

import contextlib
import json
import os
import re

import tensorflow as tf
from tensorflow.python.eager import context

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


# The key under which a failing worker leaves its error in the coordination service's key-value store.
FAILURE_KEY = "keras_zoo/failed_worker"
FAILURE_READ_MILLISECONDS = 2000


def is_multiworker(strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


@contextlib.contextmanager
def stopping_together(strategy):
    """Under MultiWorkerMirroredStrategy, a worker that fails tells the others, which stop with one
    error naming it, rather than with the traceback of a collective op that lost its peer.

    The failing worker leaves its error in the coordination service's key-value store, then reports
    an error to the cluster, which aborts the collective ops the others are waiting in (TensorFlow's
    `report_error_to_cluster`). A worker that dies without a word (killed) is named from the
    coordination service's report of the tasks that stopped sending heartbeats.
    """
    if not is_multiworker(strategy):
        yield
        return
    worker = task_id(strategy)
    try:
        yield
    except tf.errors.OpError as error:
        peer_failure = _peer_failure(worker, error)
        if peer_failure is None:
            _announce_failure(worker, error)
            raise
        raise ZooError(f"{peer_failure}; worker {worker} stopped too. Fix what that worker's message says and start "
                       f"every worker again") from None
    except BaseException as error:
        _announce_failure(worker, error)
        raise


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _announce_failure(worker: int, error: BaseException) -> None:
    what = "was interrupted" if isinstance(error, KeyboardInterrupt) else f"failed: {_first_line(error)}"
    try:
        context.context().set_config_key_value(FAILURE_KEY, json.dumps({"worker": worker, "what": what}))
        context.context().report_error_to_cluster(tf.errors.ABORTED, f"worker {worker} {what}")
    except (tf.errors.OpError, ValueError):
        pass  # another worker failed first (the key is set), or the cluster is already gone: nothing to tell


def _peer_failure(worker: int, error: tf.errors.OpError) -> str | None:
    """What another worker's failure was, when `error` comes from it; None when the error is this worker's."""
    try:
        announced = json.loads(context.context().get_config_key_value(FAILURE_KEY, FAILURE_READ_MILLISECONDS))
        if announced["worker"] != worker:
            return f"worker {announced['worker']} of this multi-worker run {announced['what']}"
        return None
    except (tf.errors.OpError, ValueError, KeyError, TypeError):
        pass
    # The store lives on worker 0: when it is worker 0 that failed, it may be gone already, but the
    # aborted op's message carries the report.
    reported = re.search(r"worker (\d+) (failed: [^\n\[]*|was interrupted)", str(error))
    if reported and int(reported[1]) != worker:
        return f"worker {reported[1]} of this multi-worker run {reported[2].strip()}"
    silent = sorted({int(task) for task in re.findall(r"/job:\w+/replica:\d+/task:(\d+)", str(error))} - {worker})
    if silent and "heartbeat" in str(error):
        return (f"worker {', '.join(map(str, silent))} of this multi-worker run stopped responding (killed, or out "
                f"of memory?); see its output")
    return None
