"""The training-memory estimate (`zoo.memory`, `zoo info NAME --memory`) against the measured peak.

Each case runs in a fresh process: TensorFlow is started and a batch made, the process's resident
memory is read, then the model is built and trained for a few steps (Adam, or the optimizer given)
and the peak resident memory read again; the difference is what training took. The estimate comes
from a shapes-only build, before anything is allocated.

The script also refits the estimate's runtime factors (`zoo.memory`: ACTIVATION_FACTOR,
UPDATE_FACTOR, RUNTIME_PER_LAYER, RUNTIME_BASE) by least squares over the cases, and checks each
case against the fit of the others (leave one out), so the factors' predictive error is known.

    python scripts/bench_memory.py            # the table
    python scripts/bench_memory.py --write    # and its BENCHMARKS.md section
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import benchmarks  # noqa: E402  (sets sys.path and TF_CPP_MIN_LOG_LEVEL first)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import zoo  # noqa: E402
from finetune.training import optim  # noqa: E402
from zoo import memory  # noqa: E402
from zoo.flops import shapes_only  # noqa: E402

SECTION = "bench_memory"
# (model, image size, batch, optimizer): small to large activations, and weight-heavy VGG
CASES = [
    ("lenet5", 32, 256, "adam"),
    ("resnet18", 64, 32, "adam"),
    ("resnet18", 64, 128, "adam"),
    ("resnet18", 64, 64, "sgd"),
    ("resnet50", 64, 32, "adam"),
    ("googlenet", 96, 32, "adam"),
    ("vgg11", 64, 32, "adam"),
    ("vgg11_bn", 64, 64, "sgd"),
    ("resnet34", 64, 32, "adam"),
    ("alexnet", 99, 32, "sgd"),
]
STEPS = 3
TOLERANCE = 0.25


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def child(name: str, size: int, batch: int, optimizer: str) -> None:
    """Runs in a fresh process: prints the memory training took, in bytes."""
    channels = zoo.info(name).default_input_shape[-1]
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (batch, size, size, channels)).astype("float32")
    labels = rng.integers(0, 10, batch)
    before = resident_bytes()
    model = zoo.create(name, num_classes=10, input_shape=(size, size, channels))
    model.compile(optimizer=optim.optimizer(optimizer, 1e-3), loss="sparse_categorical_crossentropy")
    for _ in range(STEPS):
        model.train_on_batch(images, labels)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux
    print(json.dumps({"measured": peak - before}))


def measure(name: str, size: int, batch: int, optimizer: str) -> int:
    result = subprocess.run([sys.executable, __file__, "--child", name, str(size), str(batch), optimizer],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])["measured"]


def terms(name: str, size: int, batch: int, optimizer: str) -> dict:
    """The parts of the estimate the fit weighs, in bytes (and the number of layer calls)."""
    model = shapes_only(name, num_classes=10, input_shape=(size, size, zoo.info(name).default_input_shape[-1]))
    estimate = memory.estimate(model, batch, optimizer=optimizer)
    elements, calls = memory.layer_outputs(model)
    return {"estimate": estimate, "weights": estimate.parameters + estimate.gradients + estimate.optimizer,
            "outputs": elements * memory.FLOAT32_BYTES * batch, "inputs": estimate.inputs, "layers": calls}


def fit(rows) -> np.ndarray:
    """Least squares: measured - weights - inputs = update x weights + activation x outputs
    + per_layer x layers + base."""
    design = np.array([[row["weights"], row["outputs"], row["layers"], 1.0] for row in rows])
    target = np.array([row["measured"] - row["weights"] - row["inputs"] for row in rows])
    return np.linalg.lstsq(design, target, rcond=None)[0]


def predict(row, factors) -> float:
    update, activation, per_layer, base = factors
    return (1 + update) * row["weights"] + activation * row["outputs"] + row["inputs"] + per_layer * row["layers"] + base


def table(rows) -> str:
    lines = ["| model | input | batch | optimizer | parameters+gradients+optimizer | activations+inputs | runtime | "
             "estimate | measured peak | estimate / measured | left-one-out fit / measured |",
             "|---|---|--:|---|--:|--:|--:|--:|--:|--:|--:|"]
    for row in rows:
        estimate = row["estimate"]
        lines.append(f"| {row['model']} | {row['size']}x{row['size']} | {row['batch']} | {row['optimizer']} | "
                     f"{memory.human(row['weights'])} | {memory.human(estimate.activations + estimate.inputs)} | "
                     f"{memory.human(estimate.runtime)} | {memory.human(estimate.total)} | "
                     f"{memory.human(row['measured'])} | {estimate.total / row['measured']:.2f} | "
                     f"{row['left_out']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=4, metavar=("MODEL", "SIZE", "BATCH", "OPTIMIZER"), help=argparse.SUPPRESS)
    parser.add_argument("--write", action="store_true", help="Also write the BENCHMARKS.md section.")
    args = parser.parse_args()
    if args.child:
        name, size, batch, optimizer = args.child
        child(name, int(size), int(batch), optimizer)
        return
    rows = []
    for name, size, batch, optimizer in CASES:
        row = {"model": name, "size": size, "batch": batch, "optimizer": optimizer,
               **terms(name, size, batch, optimizer), "measured": measure(name, size, batch, optimizer)}
        rows.append(row)
        print(f"{name} {size} {batch} {optimizer}: estimate {memory.human(row['estimate'].total)}, "
              f"measured {memory.human(row['measured'])}", flush=True)
        keras.backend.clear_session()
    for index, row in enumerate(rows):
        others = fit([other for position, other in enumerate(rows) if position != index])
        row["left_out"] = predict(row, others) / row["measured"]
    update, activation, per_layer, base = fit(rows)
    factors = (f"Fitted over all cases: UPDATE_FACTOR {update:.2f}, ACTIVATION_FACTOR {activation:.2f}, "
               f"RUNTIME_PER_LAYER {per_layer / 2**20:.2f} MiB, RUNTIME_BASE {base / 2**20:.0f} MiB (zoo.memory "
               f"uses {memory.UPDATE_FACTOR}, {memory.ACTIVATION_FACTOR}, {memory.RUNTIME_PER_LAYER / 2**20:.2f} MiB, "
               f"{memory.RUNTIME_BASE / 2**20:.0f} MiB).")
    body = table(rows)
    within = sum(abs(row["estimate"].total / row["measured"] - 1) <= TOLERANCE for row in rows)
    held_out = sum(abs(row["left_out"] - 1) <= TOLERANCE for row in rows)
    summary = (f"{within} of {len(rows)} estimates within {TOLERANCE:.0%} of the measured peak; fitted without "
               f"the case itself, {held_out} of {len(rows)}.")
    print(body)
    print(factors)
    print(summary)
    if args.write:
        benchmarks.write_section(
            SECTION, "Training memory: estimate vs measured peak",
            f"{benchmarks.describe_machine()}\n\n{body}\n\n{summary} {factors} The measured peak is the "
            f"process's resident memory after {STEPS} float32 training steps less what it held before the model "
            f"was built.", "python scripts/bench_memory.py --write")


if __name__ == "__main__":
    main()
