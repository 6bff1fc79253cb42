"""Tensor layout on this machine: channels-last (NHWC, Keras' default) vs channels-first (NCHW).

    python scripts/bench_layout.py                     # ResNet-50 at 128x128, batch 32
    python scripts/bench_layout.py --quick             # 64x64, batch 8, 2 rounds
    python scripts/bench_layout.py --model vgg16 --size 160 --batch 16 --repeats 8

The zoo's models are built channels-last. keras.applications builds either layout (from
`keras.config.image_data_format()` at build time), so its twin of a zoo model answers whether the
other layout would pay: both layouts are built in this process with the same weights (the kernels
have the same shapes in both layouts) and timed in alternation, inference (`model(x,
training=False)` in a tf.function) and an SGD training step, as in scripts/bench_models.py. The
channels-first model gets its inputs already transposed, so the comparison holds the model alone.
Writes its section of BENCHMARKS.md unless --quick or --no-write.
"""

from __future__ import annotations

import argparse
import sys

import benchmarks  # noqa: E402  (sets sys.path and TF_CPP_MIN_LOG_LEVEL first)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench_models import TWINS, forward_function, training_step  # noqa: E402

SECTION = "bench_layout"
LAYOUTS = ("channels_last", "channels_first")


def build(name: str, size: int, layout: str):
    previous = keras.config.image_data_format()
    keras.config.set_image_data_format(layout)
    try:
        shape = (size, size, 3) if layout == "channels_last" else (3, size, size)
        return TWINS[name](weights=None, input_shape=shape)
    finally:
        keras.config.set_image_data_format(previous)


def bench(name: str, size: int, batch: int, repeats: int, min_seconds: float) -> list[dict]:
    keras.utils.set_random_seed(0)
    models = {layout: build(name, size, layout) for layout in LAYOUTS}
    models["channels_first"].set_weights(models["channels_last"].get_weights())
    rng = np.random.default_rng(0)
    images = rng.normal(size=(batch, size, size, 3)).astype("float32")
    inputs = {"channels_last": tf.constant(images), "channels_first": tf.constant(images.transpose(0, 3, 1, 2))}
    labels = tf.constant(rng.integers(0, 1000, size=batch))
    outputs = {layout: forward_function(models[layout])(inputs[layout]).numpy() for layout in LAYOUTS}
    agreement = float(np.abs(outputs["channels_first"] - outputs["channels_last"]).max())
    calls = {}
    for layout in LAYOUTS:
        forward, step = forward_function(models[layout]), training_step(models[layout])
        calls[f"{layout} inference"] = lambda f=forward, x=inputs[layout]: f(x)
        calls[f"{layout} training"] = lambda f=step, x=inputs[layout]: f(x, labels)
    times = benchmarks.interleaved(calls, repeats, min_seconds=min_seconds)
    rows = []
    for mode in ("inference", "training"):
        ratio, low, high = benchmarks.speedup(times[f"channels_last {mode}"], times[f"channels_first {mode}"])
        rows.append({
            "case": f"{name} {size}x{size}", "batch": batch, "mode": mode,
            "last": batch / benchmarks.median(times[f"channels_last {mode}"]),
            "first": batch / benchmarks.median(times[f"channels_first {mode}"]),
            "ratio": ratio, "low": low, "high": high, "verdict": benchmarks.verdict(ratio, low, high),
            "difference": agreement,
        })
    return rows


def table(rows) -> str:
    body = [[row["case"], row["batch"], row["mode"], f"{row['last']:.1f}", f"{row['first']:.1f}",
             benchmarks.format_ratio(row["ratio"], row["low"], row["high"]), row["verdict"],
             f"{row['difference']:.1e}"] for row in rows]
    return benchmarks.markdown_table(["case", "batch", "mode", "img/s channels-last", "img/s channels-first",
                                      "channels-first speedup (IQR)", "verdict", "largest output difference"], body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet50", help=f"from {', '.join(TWINS)}")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--min-seconds", type=float, default=0.5)
    parser.add_argument("--quick", action="store_true", help="64x64, batch 8, 2 rounds")
    parser.add_argument("--no-write", action="store_true")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.size, arguments.batch, arguments.repeats, arguments.min_seconds = 64, 8, 2, 0.1
    if arguments.model not in TWINS:
        raise SystemExit(f"unknown model {arguments.model!r}; choose from {', '.join(TWINS)}")
    machine = benchmarks.describe_machine()
    benchmarks.log(f"{arguments.model} at {arguments.size}x{arguments.size}, batch {arguments.batch}: "
                   f"{arguments.repeats} interleaved rounds")
    rows = bench(arguments.model, arguments.size, arguments.batch, arguments.repeats, arguments.min_seconds)
    slower = all(row["verdict"] == "slower" for row in rows)
    faster = all(row["verdict"] == "faster" for row in rows)
    conclusion = ("channels-first is slower in both modes: the zoo's channels-last layout is the right one here."
                  if slower else "channels-first is faster in both modes: worth offering as a build option."
                  if faster else "neither layout wins in both modes beyond noise: channels-last, Keras' default, stays.")
    body = "\n\n".join([
        machine,
        f"keras.applications {arguments.model} built in each layout with the same weights; median of "
        f"{arguments.repeats} interleaved rounds of wall-clock time; the speedup is channels-last's time over "
        "channels-first's per round (> 1: channels-first faster).",
        table(rows), f"Conclusion: {conclusion}"])
    print(body, flush=True)
    if not (arguments.quick or arguments.no_write):
        benchmarks.write_section(SECTION, "Layout: channels-last vs channels-first (scripts/bench_layout.py)", body,
                                 benchmarks.rerun_command())


if __name__ == "__main__":
    sys.exit(main())
