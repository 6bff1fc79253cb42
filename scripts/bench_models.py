"""Zoo models vs their keras.applications twins: inference and training throughput, side by side.

    python scripts/bench_models.py                     # every twin, batches 1, 16, 64 at 224x224
    python scripts/bench_models.py --quick             # resnet50 at 64x64, batches 1 and 8
    python scripts/bench_models.py --models resnet50,vgg16 --batches 1,32 --size 160 --repeats 7

Both models of a pair get the same weights (copied from the keras.applications model), the same
inputs and the same compiled paths: a tf.function'd `model(x, training=False)` for inference and a
tf.function'd SGD step (sparse cross-entropy) for training. Each round times zoo, keras, zoo
training, keras training and a 4096x4096 float32 matmul in alternation (reversed every other
round). The ratio is the median of per-round keras/zoo ratios (> 1: zoo faster) with its
interquartile range, in process CPU time (robust to other work on a shared CPU) and in wall time.
Achieved GFLOP/s use `zoo.flops.count` (training: 3x the forward FLOPs, the usual forward + two
backward products), and, per CPU-second, as a fraction of the matmul's. A batch whose training
step would not fit in memory (extrapolated from the batches before it) is lowered to the largest
multiple of 8 that fits. Writes its section of BENCHMARKS.md unless --quick or --no-write.
"""

from __future__ import annotations

import argparse
import gc
import math
import resource
import sys
import threading

import benchmarks  # noqa: E402  (sets sys.path and TF_CPP_MIN_LOG_LEVEL first)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import zoo  # noqa: E402
from zoo import flops as zoo_flops  # noqa: E402

SECTION = "bench_models"
TWINS = {
    "vgg16": keras.applications.VGG16, "vgg19": keras.applications.VGG19,
    "resnet50": keras.applications.ResNet50, "resnet101": keras.applications.ResNet101,
    "resnet152": keras.applications.ResNet152, "resnet50v2": keras.applications.ResNet50V2,
    "resnet101v2": keras.applications.ResNet101V2, "resnet152v2": keras.applications.ResNet152V2,
}
DEFAULT_MODELS = ["vgg16", "vgg19", "resnet50", "resnet101", "resnet152", "resnet50v2"]
RECHECK = 2  # a pair that does not tie is timed again with this many times the rounds and sample length
TRAINING_FLOPS_FACTOR = 3  # forward, plus the gradients with respect to inputs and to weights
# Before two batch sizes have been measured, a training step is assumed to need this many bytes
# per layer output element: measured here, ResNet-50 needs 2.4 and VGG16 8.6.
TRAINING_BYTES_PER_ACTIVATION = 10


def forward_function(model):
    return tf.function(lambda images: model(images, training=False))


def training_step(model, learning_rate: float = 1e-6):
    """One SGD step; the tiny learning rate keeps the weights (and so the arithmetic) steady."""
    optimizer = keras.optimizers.SGD(learning_rate)
    optimizer.build(model.trainable_variables)

    @tf.function
    def step(images, labels):
        with tf.GradientTape() as tape:
            probabilities = model(images, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, probabilities))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    return step


def activation_elements(model) -> int:
    """Output elements of every layer for one example: what a training step keeps alive."""
    total = 0
    for layer in model.layers:
        for output in tf.nest.flatten(layer.output):
            total += math.prod(dim for dim in output.shape[1:])
    return total


def current_memory_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


class PeakMemory:
    """The highest resident memory of this process while the block runs, sampled by a thread
    (the kernel's own high-water mark never comes down after a larger model)."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, current_memory_bytes())
            self._stop.wait(self.interval)

    def __enter__(self):
        self.start = current_memory_bytes()
        self.peak = self.start
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_memory_bytes())


def fitting_batch(wanted: int, models, budget_bytes: float, measured: list[tuple[int, int, int]]) -> int:
    """The largest batch up to `wanted` whose training step should keep the process's memory under
    `budget_bytes` (a multiple of 8 when lowered).

    `measured` holds (batch, memory before, peak memory) of the batches already run. From two of
    them, the cost per example is the slope between their peaks; from one, its whole growth counts
    as per-example cost (an overestimate); before any, an estimate from the layer output sizes.
    """
    if len(measured) >= 2 and measured[-1][0] != measured[-2][0]:
        (small, _, small_peak), (large, _, large_peak) = measured[-2], measured[-1]
        per_example = max((large_peak - small_peak) / (large - small), 1.0)
        base = large_peak - large * per_example
    elif measured:
        batch, before, peak = measured[-1]
        per_example = max((peak - before) / batch, 1.0)
        base = before
    else:
        per_example = max(activation_elements(model) for model in models) * TRAINING_BYTES_PER_ACTIVATION
        base = current_memory_bytes() + sum(model.count_params() for model in models) * 4 * 2
    fits = int((budget_bytes - base) // per_example)
    if fits >= wanted:
        return wanted
    return max(1, fits - fits % 8) if fits >= 8 else max(1, fits)


def pair(name: str, size: int):
    """The zoo model and its keras.applications twin, with the same weights."""
    keras.backend.clear_session()
    gc.collect()
    keras.utils.set_random_seed(0)
    reference = TWINS[name](weights=None, input_shape=(size, size, 3))
    model = zoo.create(name, input_shape=(size, size, 3))
    reference_weights = reference.get_weights()
    if [w.shape for w in reference_weights] != [tuple(w.shape) for w in model.weights]:
        raise SystemExit(f"{name}: the zoo model's weights do not line up with keras.applications'")
    model.set_weights(reference_weights)
    return model, reference


def bench_model(name: str, size: int, batches: list[int], repeats: int, min_seconds: float,
                memory_fraction: float, matmul, matmul_flops: int) -> list[dict]:
    model, reference = pair(name, size)
    flops = zoo_flops.count(model)
    if zoo_flops.count(reference) != flops:
        benchmarks.log(f"  note: keras.applications' {name} counts {zoo_flops.count(reference):,} FLOPs, "
                       f"the zoo's {flops:,}")
    rows, measured = [], []
    for wanted in sorted(batches):
        available = benchmarks.available_memory_bytes() or 8 * 2**30
        budget = current_memory_bytes() + memory_fraction * available
        batch = fitting_batch(wanted, (model, reference), budget, measured)
        rng = np.random.default_rng(batch)
        images = tf.constant(rng.normal(size=(batch, size, size, 3)).astype("float32"))
        labels = tf.constant(rng.integers(0, model.output_shape[-1], size=batch))
        forward = {"zoo": forward_function(model), "keras": forward_function(reference)}
        train = {"zoo": training_step(model), "keras": training_step(reference)}
        calls = {
            "zoo inference": lambda f=forward["zoo"]: f(images),
            "keras inference": lambda f=forward["keras"]: f(images),
            "zoo training": lambda f=train["zoo"]: f(images, labels),
            "keras training": lambda f=train["keras"]: f(images, labels),
            "matmul": matmul,
        }
        benchmarks.log(f"  {name} batch {batch}: timing {repeats} interleaved rounds")
        with PeakMemory() as memory:
            times = benchmarks.interleaved(calls, repeats, min_seconds=min_seconds)
        for mode, factor in (("inference", 1), ("training", TRAINING_FLOPS_FACTOR)):
            # The verdict compares CPU time: the same operations, without the waits for a core.
            ratio, low, high = benchmarks.speedup(times.cpu[f"keras {mode}"], times.cpu[f"zoo {mode}"])
            rechecked = benchmarks.verdict(ratio, low, high) != "tie"
            if rechecked:
                # Twins built layer for layer should tie: a difference must survive a second,
                # longer look at just the pair before it is reported.
                benchmarks.log(f"  {name} batch {batch} {mode}: x{ratio:.2f}, rechecking in {RECHECK * repeats} rounds")
                pair_calls = {key: calls[key] for key in (f"zoo {mode}", f"keras {mode}")}
                again = benchmarks.interleaved(pair_calls, RECHECK * repeats, min_seconds=RECHECK * min_seconds)
                for key in pair_calls:
                    times[key], times.cpu[key] = again[key], again.cpu[key]
                ratio, low, high = benchmarks.speedup(times.cpu[f"keras {mode}"], times.cpu[f"zoo {mode}"])
            zoo_seconds, keras_seconds = times[f"zoo {mode}"], times[f"keras {mode}"]
            wall_ratio, wall_low, wall_high = benchmarks.speedup(keras_seconds, zoo_seconds)
            zoo_rate = batch / benchmarks.median(zoo_seconds)
            achieved = zoo_rate * factor * flops / 1e9
            # FLOPs per CPU-second, the model's over the matmul's (medians: a recheck has more rounds)
            efficiency = ((batch * factor * flops / benchmarks.median(times.cpu[f"zoo {mode}"]))
                          / (matmul_flops / benchmarks.median(times.cpu["matmul"])))
            rows.append({
                "model": name, "batch": batch, "wanted_batch": wanted, "mode": mode, "zoo": zoo_rate,
                "keras": batch / benchmarks.median(keras_seconds), "ratio": ratio, "low": low, "high": high,
                "wall_ratio": wall_ratio, "wall_low": wall_low, "wall_high": wall_high,
                "verdict": benchmarks.verdict(ratio, low, high) + (" (rechecked)" if rechecked else ""),
                "gflops": achieved, "efficiency": efficiency,
                "matmul_gflops": [matmul_flops / seconds / 1e9 for seconds in times["matmul"]],
            })
        measured.append((batch, memory.start, memory.peak))
        for row in rows[-2:]:
            row["memory"] = memory.peak
        del forward, train, calls
        gc.collect()
    del model, reference
    return rows


def run_peak(rows: list[dict], first_peak: float) -> float:
    """The best float32 matmul rate of the run: the first measurement and every round's."""
    return max([first_peak, *(rate for row in rows for rate in row["matmul_gflops"])])


def table(rows: list[dict]) -> str:
    headers = ["model", "batch", "mode", "zoo img/s", "keras img/s", "keras/zoo CPU time (IQR)", "verdict",
               "keras/zoo wall time (IQR)", "zoo GFLOP/s", "of matmul rate", "process GiB"]
    body = []
    for row in rows:
        batch = f"{row['batch']}" + (f" (of {row['wanted_batch']}: memory)" if row["batch"] != row["wanted_batch"] else "")
        body.append([row["model"], batch, row["mode"], f"{row['zoo']:.2f}", f"{row['keras']:.2f}",
                     benchmarks.format_ratio(row["ratio"], row["low"], row["high"]), row["verdict"],
                     benchmarks.format_ratio(row["wall_ratio"], row["wall_low"], row["wall_high"]),
                     f"{row['gflops']:.0f}", f"{100 * row['efficiency']:.0f}%", f"{row['memory'] / 2**30:.1f}"])
    return benchmarks.markdown_table(headers, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help=f"from {', '.join(TWINS)}")
    parser.add_argument("--batches", default="1,16,64")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=6, help="an even number balances the alternating order")
    parser.add_argument("--min-seconds", type=float, default=0.5, help="shortest timing sample")
    parser.add_argument("--memory-fraction", type=float, default=0.6,
                        help="of the memory available at the start of a batch, for its training step")
    parser.add_argument("--quick", action="store_true", help="resnet50 at 64x64, batches 1 and 8, 3 rounds")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.models, arguments.batches, arguments.size, arguments.repeats = "resnet50", "1,8", 64, 3
        arguments.min_seconds = 0.1
    names = [name for name in arguments.models.split(",") if name]
    unknown = [name for name in names if name not in TWINS]
    if unknown:
        parser.error(f"no keras.applications twin for {', '.join(unknown)}; choose from {', '.join(TWINS)}")
    batches = [int(batch) for batch in arguments.batches.split(",")]

    info = benchmarks.machine()
    matmul, matmul_flops = benchmarks.matmul_call(4096)
    peak = benchmarks.matmul_peak(repeats=5)
    benchmarks.log(f"float32 matmul peak {peak:.0f} GFLOP/s")
    rows = []
    for name in names:
        benchmarks.log(f"{name} at {arguments.size}x{arguments.size}")
        rows += bench_model(name, arguments.size, batches, arguments.repeats, arguments.min_seconds,
                            arguments.memory_fraction, matmul, matmul_flops)
        print(table([row for row in rows if row["model"] == name]), flush=True)
    peak = run_peak(rows, peak)
    slower = [row for row in rows if row["verdict"].startswith("slower")]
    summary = (f"Zoo models vs keras.applications at {arguments.size}x{arguments.size}x3, 1000 classes, the same "
               f"weights and inputs; median of {arguments.repeats} interleaved rounds. The process's peak memory per "
               f"batch (both models, training) is in the last column; batches are lowered to stay under "
               f"{arguments.memory_fraction:.0%} of the memory available.\n"
               "The verdict compares process CPU time per round (the same operations on both sides; CPU time "
               "leaves out the waits for a core that other work on a shared machine causes): a tie within 3% or "
               f"where the interquartile range spans 1; a pair that does not tie is timed again ({RECHECK}x the rounds "
               "and sample length) and the recheck decides. Wall-time ratios are shown beside it. img/s and GFLOP/s "
               "are wall-clock medians; training counts 3x the forward FLOPs. The last column is the zoo model's FLOPs "
               "per CPU-second over a 4096x4096 float32 tf.linalg.matmul's, timed in the same rounds (the fastest "
               f"matmul reached {peak:.0f} GFLOP/s wall-clock). oneDNN's convolutions can beat TensorFlow's matmul "
               "kernel, so it can pass 100%.\n\n"
               + ("Slower beyond noise: " + ", ".join(f"{r['model']} b{r['batch']} {r['mode']}" for r in slower)
                  if slower else "No zoo model is slower than its twin beyond noise."))
    report = summary + "\n\n" + table(rows)
    print()
    print(report)
    if not (arguments.quick or arguments.no_write):
        benchmarks.write_section(SECTION, "Zoo models vs keras.applications (scripts/bench_models.py)",
                                 benchmarks.describe_machine(info, peak) + "\n\n" + report,
                                 benchmarks.rerun_command())


if __name__ == "__main__":
    sys.exit(main())
