"""Where one training step's time goes: TensorFlow's profiler, op by op, per precision and oneDNN setting.

    python scripts/profile_step.py                                  # resnet50 at 128x128, batch 16
    python scripts/profile_step.py --model resnet18 --size 64 --precisions float32 --no-write

Each setting runs in a process of its own (oneDNN is fixed when TensorFlow starts): the kit's
training step (`finetune.training.trainer.Trainer`, full mode, Adam, 1000 classes) is warmed up,
then one step is traced with `tf.profiler.experimental` and the trace (the XPlane protobuf the
profiler writes, read with its own schema) is summed per op type and per kind of work:
convolutions, BatchNorm, casts, layout changes, the optimizer update and the rest. The first
step's extra time over a steady one (tracing, and oneDNN creating its primitives) is reported beside.

Op times are summed over TensorFlow's inter-op threads, which run independent ops at once, so
their total can pass the step's wall-clock time.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import tempfile
import time
from pathlib import Path

import benchmarks  # noqa: F401  (sets sys.path and TF_CPP_MIN_LOG_LEVEL first)
import finetune  # noqa: F401  (the kit's start-up settings come before TensorFlow starts)

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.util import _pywrap_util_port  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

from finetune.training import modeling  # noqa: E402
from finetune.training.classification import classifier_trainer  # noqa: E402
from finetune.training.config import FinetuneConfig  # noqa: E402
from finetune.training.precision import set_precision  # noqa: E402
import peers  # noqa: E402

SECTION = "profile_step"
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}
CONVOLUTION_TYPES = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter", "DepthwiseConv2dNative")
LAYOUT_TYPES = ("Transpose", "Reshape", "Pad", "Slice", "Tile", "ConcatV2")
TOP_OPS = 14  # op types listed one by one; the rest are summed per kind only
# Names of the kit's optimizers' ops: "adam/...", "adam_1/..." (a second optimizer), ...
OPTIMIZER_PATH = re.compile(r"(^|/)(adam|adamw|sgd|rmsprop|optimizer)(_\d+)?/")
# Executor and function frames that contain ops rather than being ones.
CONTAINERS = ("ExecutorState", "Process", "PartitionedCall", "StatefulPartitionedCall", "While")


def kind_of(name: str, op_type: str) -> str:
    """The kind of work an op does, from its type and its name's path."""
    path = name.lower()
    base_type = op_type.removeprefix("_MklNative").removeprefix("_Mkl").removeprefix("_Fused")
    if OPTIMIZER_PATH.search(path) or op_type.startswith(("ResourceApply", "Assign")):
        return "optimizer update"
    if "FusedBatchNorm" in op_type or "_bn" in path or "batch_normalization" in path:
        return "BatchNorm"
    if base_type in CONVOLUTION_TYPES or "Conv2D" in op_type:
        return "convolution"
    if op_type == "Cast":
        return "casts"
    if base_type in LAYOUT_TYPES or "ToTf" in op_type or "Reorder" in op_type:
        return "layout and copies"
    if "MatMul" in op_type:
        return "dense"
    return "other"


def op_table(trace: Path) -> tuple[dict, dict]:
    """Seconds summed over the host's compute threads of the trace: {op type: [seconds, count, the
    kind of work most of its time went to]} and {kind of work: seconds}."""
    space = xplane_pb2.XSpace()
    space.ParseFromString(next(trace.rglob("*.xplane.pb")).read_bytes())
    table: dict = {}
    kinds = collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:"):
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                label = plane.event_metadata[event.metadata_id].name
                name, _, op_type = label.rpartition(":")
                if not name or op_type.startswith(CONTAINERS) or name.startswith(CONTAINERS):
                    continue
                seconds, kind = event.duration_ps * 1e-12, kind_of(name, op_type)
                entry = table.setdefault(op_type, [0.0, 0, collections.Counter()])
                entry[0] += seconds
                entry[1] += 1
                entry[2][kind] += seconds
                kinds[kind] += seconds
    types = {op_type: [seconds, count, by_kind.most_common(1)[0][0]]
             for op_type, (seconds, count, by_kind) in table.items()}
    return types, dict(kinds)


def worker(arguments) -> None:
    """Profiles one step in this process and prints the op table and step times as JSON."""
    set_precision(POLICIES[arguments.precision])
    keras.utils.set_random_seed(0)
    case = peers.Case(arguments.model, arguments.size, arguments.batch, arguments.precision)
    config = FinetuneConfig(model=case.model, mode="full", batch_size=case.batch, image_size=case.size,
                            optimizer="adam", lr=peers.LEARNING_RATE, schedule="constant", epochs=1, diagnostics=False)
    strategy = tf.distribute.get_strategy()
    model = modeling.build(config, peers.NUM_CLASSES, (case.size, case.size, 3))
    trainer = classifier_trainer(model, config, strategy, steps_per_epoch=1)
    images, labels = peers.batch(case)
    dataset = tf.data.Dataset.from_tensors((tf.constant(images.transpose(0, 2, 3, 1)), tf.constant(labels))).repeat()
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    step_seconds = []
    for _ in range(3):  # the first traces the step and creates oneDNN's primitives
        started = time.perf_counter()
        trainer.train_epoch(iterator)
        step_seconds.append(time.perf_counter() - started)
    trace = Path(tempfile.mkdtemp(prefix="profile_step-"))
    try:
        tf.profiler.experimental.start(str(trace))
        started = time.perf_counter()
        trainer.train_epoch(iterator)
        profiled = time.perf_counter() - started
        tf.profiler.experimental.stop()
        ops, kinds = op_table(trace)
    finally:
        shutil.rmtree(trace, ignore_errors=True)
    print(json.dumps({"ops": ops, "kinds": kinds, "steps": step_seconds, "profiled_step": profiled,
                      "onednn": bool(_pywrap_util_port.IsMklEnabled())}))


def settings_for(info: dict, precisions: list[str]) -> list[tuple[str, str, dict]]:
    """(label, precision, environment) per profiled process: the kit's settings, and TensorFlow's
    own oneDNN default where the kit changes it."""
    settings = []
    for precision in precisions:
        settings.append((f"{precision}, kit", precision, {}))
        if info["onednn"].startswith("off (TensorFlow"):
            settings.append((f"{precision}, oneDNN off", precision, {"TF_ENABLE_ONEDNN_OPTS": "0"}))
    return settings


def report(results: dict[str, dict]) -> str:
    labels = list(results)
    kinds = collections.defaultdict(lambda: collections.Counter())
    totals = {}
    for label, result in results.items():
        totals[label] = sum(result["kinds"].values())
        for kind, seconds in result["kinds"].items():
            kinds[kind][label] += seconds

    def share(label, seconds):
        return f"{seconds:.2f} ({100 * seconds / totals[label]:.0f}%)" if seconds else "-"

    kind_rows = [[kind, *(share(label, kinds[kind][label]) for label in labels)]
                 for kind in sorted(kinds, key=lambda kind: -max(kinds[kind].values()))]
    kind_rows.append(["all ops", *(f"{totals[label]:.2f}" for label in labels)])
    kind_rows.append(["step, wall-clock (profiled)", *(f"{results[label]['profiled_step']:.2f}" for label in labels)])
    kind_rows.append(["step, wall-clock (steady, unprofiled)", *(f"{results[label]['steps'][-1]:.2f}" for label in labels)])
    kind_rows.append(["first step's extra (tracing, primitive creation)",
                      *(f"{results[label]['steps'][0] - results[label]['steps'][-1]:.2f}" for label in labels)])
    by_type = collections.Counter()
    for result in results.values():
        for op_type, (seconds, _, _) in result["ops"].items():
            by_type[op_type] = max(by_type[op_type], seconds)
    type_rows = []
    for op_type, _ in by_type.most_common(TOP_OPS):
        cells = []
        for label in labels:
            seconds, count, kind = results[label]["ops"].get(op_type, (0.0, 0, ""))
            cells.append(f"{share(label, seconds)} x{count}" if count else "-")
        kind = next(results[label]["ops"][op_type][2] for label in labels if op_type in results[label]["ops"])
        type_rows.append([op_type, kind, *cells])
    return "\n\n".join([
        "Seconds of op time per kind of work in one training step (share of all op time):",
        benchmarks.markdown_table(["kind", *labels], kind_rows),
        f"The {TOP_OPS} op types that take longest (seconds, share, and how many ran):",
        benchmarks.markdown_table(["op type", "kind", *labels], type_rows),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--precisions", default="float32,bfloat16")
    parser.add_argument("--precision", help=argparse.SUPPRESS)  # a worker's own
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true")
    arguments = parser.parse_args()
    if arguments.worker:
        worker(arguments)
        return
    info = benchmarks.machine()
    results = {}
    for label, precision, env in settings_for(info, arguments.precisions.split(",")):
        benchmarks.log(f"  profiling {label}")
        output = benchmarks.run_worker(
            ["scripts/profile_step.py", "--worker", "--model", arguments.model, "--size", str(arguments.size),
             "--batch", str(arguments.batch), "--precision", precision], env)
        results[label] = json.loads(output.strip().splitlines()[-1])
    body = report(results)
    print(body)
    if not arguments.no_write:
        header = (f"{arguments.model} at {arguments.size}x{arguments.size}, batch {arguments.batch}: the kit's "
                  "training step (Adam, 1000 classes), one step traced after three; \"kit\" is oneDNN as the kit "
                  "leaves it (on), \"oneDNN off\" TensorFlow's own default on this kind.")
        benchmarks.write_section(f"{SECTION}_{info['kind']}",
                                 f"Where a training step's time goes, machine kind {info['kind']} (scripts/profile_step.py)",
                                 benchmarks.describe_machine(info) + "\n\n" + header + "\n\n" + body,
                                 benchmarks.rerun_command())


if __name__ == "__main__":
    main()
