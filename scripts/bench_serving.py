"""Serving benchmarks and the import check against keras.applications.

    python scripts/bench_serving.py latency [--model resnet18] [--size 128] [--repeats 20]
        Latency and throughput of the exported signatures against model.predict and a direct
        model(x, training=False) call, at batch 1 and 32, and the served-vs-Keras difference.

    python scripts/bench_serving.py compare [--models vgg16,resnet50] [--notop-size 160]
        For each keras.applications twin, with and without top: the largest output difference
        between keras.applications and the zoo model loaded from the same (random) weight file.

Timings depend on the machine; they are printed, never asserted.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import zoo  # noqa: E402
from zoo.weights import save_legacy_weights  # noqa: E402

APPLICATIONS = {
    "vgg16": keras.applications.VGG16, "vgg19": keras.applications.VGG19,
    "resnet50": keras.applications.ResNet50, "resnet101": keras.applications.ResNet101,
    "resnet152": keras.applications.ResNet152, "resnet50v2": keras.applications.ResNet50V2,
    "resnet101v2": keras.applications.ResNet101V2, "resnet152v2": keras.applications.ResNet152V2,
}


def table(headers, rows) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    lines = [" | ".join(str(cell).rjust(width) for cell, width in zip(headers, widths))]
    lines.append("-|-".join("-" * width for width in widths))
    lines += [" | ".join(str(cell).rjust(width) for cell, width in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def median_seconds(call, repeats: int) -> float:
    call()  # warm-up: tracing and first allocation are not serving costs
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def latency(model_name: str, size: int, repeats: int) -> None:
    from finetune.export import export_model
    from finetune.inference import load_model

    keras.utils.set_random_seed(0)
    model = zoo.create(model_name, num_classes=10, input_shape=(size, size, 3))
    with tempfile.TemporaryDirectory() as scratch:
        model.save(Path(scratch) / f"{model_name}.keras")
        exported = export_model(Path(scratch) / f"{model_name}.keras", Path(scratch) / "serving")
        served = tf.saved_model.load(str(exported))
        loaded = load_model(Path(scratch) / f"{model_name}.keras")
        preprocess = loaded.preprocessing.layer()
        serve_pixels, serve_encoded = served.signatures["serve_pixels"], served.signatures["serving_default"]

        rows, differences = [], []
        for batch in (1, 32):
            pixels = np.random.default_rng(batch).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
            encoded = tf.constant([tf.io.encode_jpeg(image, quality=95).numpy() for image in pixels])
            model_input = preprocess(pixels.astype("float32"))
            expected = model(model_input, training=False).numpy()
            differences.append(np.abs(serve_pixels(images=tf.constant(pixels))["probabilities"].numpy()
                                      - expected).max())
            calls = {
                "model.predict": lambda: model.predict(model_input, batch_size=batch, verbose=0),
                "model(x, training=False)": lambda: model(model_input, training=False),
                "SavedModel serve_pixels (uint8)": lambda: serve_pixels(images=tf.constant(pixels)),
                "SavedModel serving_default (JPEG)": lambda: serve_encoded(images=encoded),
            }
            baseline = None
            for label, call in calls.items():
                seconds = median_seconds(call, repeats)
                baseline = baseline or seconds
                rows.append([batch, label, f"{seconds * 1000:.2f}", f"{batch / seconds:.1f}",
                             f"{seconds / baseline:.2f}"])
    print(f"{model_name} at {size}x{size}x3, 10 classes, median of {repeats} calls, "
          f"{os.cpu_count()} CPUs visible, TensorFlow {tf.__version__}, devices: "
          f"{', '.join(device.device_type for device in tf.config.list_physical_devices())}")
    print(table(["batch", "path", "latency ms", "images/s", "x predict"], rows))
    print(f"largest |served - Keras| probability difference: {max(differences):.2e}")


def randomize_batch_norm(model, rng) -> None:
    """Non-default BatchNorm statistics, so a misplaced array shows in the outputs."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, variance.shape)])


def compare(model_names: list[str], notop_size: int) -> None:
    rows = []
    rng = np.random.default_rng(0)
    for name in model_names:
        for include_top, size in ((True, 224), (False, notop_size)):
            keras.backend.clear_session()
            gc.collect()
            reference = APPLICATIONS[name](weights=None, include_top=include_top, input_shape=(size, size, 3))
            randomize_batch_norm(reference, rng)
            with tempfile.TemporaryDirectory() as scratch:
                path = save_legacy_weights(reference, Path(scratch) / f"{name}.h5")
                model = zoo.create(name, weights=path, include_top=include_top, input_shape=(size, size, 3))
            inputs = rng.uniform(-120, 120, (2, size, size, 3)).astype("float32")
            expected, actual = reference.predict(inputs, verbose=0), model.predict(inputs, verbose=0)
            largest = float(np.abs(actual - expected).max())
            rows.append([name, "yes" if include_top else "no", f"{size}x{size}", f"{largest:.2e}",
                         f"{largest / float(np.abs(expected).max()):.2e}", tuple(model.output_shape[1:])])
            del reference, model
            print(f"  {name} top={include_top} done", file=sys.stderr, flush=True)
    print(table(["model", "top", "input", "max |zoo - keras|", "relative", "output"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    timing = commands.add_parser("latency", help="exported signatures vs model.predict and model(x)")
    timing.add_argument("--model", default="resnet18")
    timing.add_argument("--size", type=int, default=128)
    timing.add_argument("--repeats", type=int, default=20)
    check = commands.add_parser("compare", help="imported models vs keras.applications")
    check.add_argument("--models", default=",".join(APPLICATIONS))
    check.add_argument("--notop-size", type=int, default=160)
    arguments = parser.parse_args()
    if arguments.command == "latency":
        latency(arguments.model, arguments.size, arguments.repeats)
    else:
        compare(arguments.models.split(","), arguments.notop_size)


if __name__ == "__main__":
    main()
