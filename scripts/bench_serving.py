"""Serving benchmarks and the import check against keras.applications.

    python scripts/bench_serving.py latency [--model resnet18] [--size 128] [--repeats 10]
        Latency and throughput of the exported signatures against model.predict and a direct
        model(x, training=False) call, at batch 1 and 32, timed in alternation (scripts/benchmarks.py),
        and the served-vs-Keras difference. Writes its section of BENCHMARKS.md unless --no-write.

    python scripts/bench_serving.py compare [--models vgg16,resnet50] [--notop-size 160]
        For each keras.applications twin, with and without top: the largest output difference
        between keras.applications and the zoo model loaded from the same (random) weight file.
        Writes its section of BENCHMARKS.md unless --no-write.

Timings depend on the machine; they are printed and written, never asserted.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
from pathlib import Path

import benchmarks  # noqa: E402  (sets sys.path and TF_CPP_MIN_LOG_LEVEL first)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import zoo  # noqa: E402
from finetune.serving.export import export_model  # noqa: E402
from finetune.serving.loading import load_model  # noqa: E402
from zoo.weights import save_legacy_weights  # noqa: E402

APPLICATIONS = {
    "vgg16": keras.applications.VGG16, "vgg19": keras.applications.VGG19,
    "resnet50": keras.applications.ResNet50, "resnet101": keras.applications.ResNet101,
    "resnet152": keras.applications.ResNet152, "resnet50v2": keras.applications.ResNet50V2,
    "resnet101v2": keras.applications.ResNet101V2, "resnet152v2": keras.applications.ResNet152V2,
}
PATHS = {
    "model.predict": "model.predict on preprocessed float32 batches (Keras' own batching loop)",
    "model(x)": "a direct model(x, training=False) call on preprocessed float32 batches",
    "serve_pixels": "the SavedModel's serve_pixels signature: uint8 pixels in; preprocessing, model, "
                    "softmax and top-k classes out",
    "serving_default": "the SavedModel's serving_default signature: JPEG bytes in; decoding, resizing, "
                       "preprocessing, model and top-k out",
}


def latency(model_name: str, size: int, repeats: int, min_seconds: float) -> tuple[str, str]:
    """The latency table (markdown) and a line on the served-vs-Keras difference."""
    keras.utils.set_random_seed(0)
    model = zoo.create(model_name, num_classes=10, input_shape=(size, size, 3))
    rows, differences = [], []
    with tempfile.TemporaryDirectory() as scratch:
        model.save(Path(scratch) / f"{model_name}.keras")
        exported = export_model(Path(scratch) / f"{model_name}.keras", Path(scratch) / "serving")
        served = tf.saved_model.load(str(exported))
        loaded = load_model(Path(scratch) / f"{model_name}.keras")
        preprocess = loaded.preprocessing.layer()
        serve_pixels, serve_encoded = served.signatures["serve_pixels"], served.signatures["serving_default"]
        forward = tf.function(lambda x: model(x, training=False))

        for batch in (1, 32):
            pixels = np.random.default_rng(batch).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
            pixel_tensor = tf.constant(pixels)
            encoded = tf.constant([tf.io.encode_jpeg(image, quality=95).numpy() for image in pixels])
            model_input = tf.constant(preprocess(pixels.astype("float32")))
            expected = model(model_input, training=False).numpy()
            differences.append(np.abs(serve_pixels(images=pixel_tensor)["probabilities"].numpy() - expected).max())
            calls = {
                "model.predict": lambda: model.predict(model_input, batch_size=batch, verbose=0),
                "model(x)": lambda: forward(model_input),
                "serve_pixels": lambda: serve_pixels(images=pixel_tensor),
                "serving_default": lambda: serve_encoded(images=encoded),
            }
            benchmarks.log(f"  {model_name} batch {batch}: timing {repeats} interleaved rounds")
            times = benchmarks.interleaved(calls, repeats, min_seconds=min_seconds)
            for label in calls:
                seconds = benchmarks.median(times[label])
                ratio, low, high = benchmarks.speedup(times["model.predict"], times[label])
                rows.append([batch, label, f"{seconds * 1000:.2f}", f"{batch / seconds:.1f}",
                             benchmarks.format_ratio(ratio, low, high)])
    headers = ["batch", "path", "latency ms", "images/s", "speed vs model.predict (IQR)"]
    difference = f"Largest |served - Keras| probability difference: {max(differences):.2e}."
    return benchmarks.markdown_table(headers, rows), difference


def randomize_batch_norm(model, rng) -> None:
    """Non-default BatchNorm statistics, so a misplaced array shows in the outputs."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, variance.shape)])


def compare(model_names: list[str], notop_size: int) -> str:
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
            benchmarks.log(f"  {name} top={include_top} done")
    return benchmarks.markdown_table(["model", "top", "input", "largest difference, zoo vs keras", "relative", "output"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    timing = commands.add_parser("latency", help="exported signatures vs model.predict and model(x)")
    timing.add_argument("--model", default="resnet18")
    timing.add_argument("--size", type=int, default=128)
    timing.add_argument("--repeats", type=int, default=10)
    timing.add_argument("--min-seconds", type=float, default=0.3, help="shortest timing sample")
    check = commands.add_parser("compare", help="imported models vs keras.applications")
    check.add_argument("--models", default=",".join(APPLICATIONS))
    check.add_argument("--notop-size", type=int, default=160)
    for command in (timing, check):
        command.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    arguments = parser.parse_args()
    machine = benchmarks.describe_machine()
    if arguments.command == "latency":
        table, difference = latency(arguments.model, arguments.size, arguments.repeats, arguments.min_seconds)
        paths = "\n".join(f"- `{label}`: {text}" for label, text in PATHS.items())
        body = "\n\n".join([
            machine,
            f"{arguments.model} at {arguments.size}x{arguments.size}x3, 10 classes, exported with `zoo export`'s "
            f"writer; median of {arguments.repeats} interleaved rounds. The last column is the median per-round "
            "ratio of model.predict's time to the path's (> 1: faster than model.predict).",
            paths, table, difference])
        section, title = "bench_serving", "Serving: exported signatures vs model.predict (scripts/bench_serving.py latency)"
    else:
        table = compare(arguments.models.split(","), arguments.notop_size)
        body = "\n\n".join([
            machine,
            "Each keras.applications model with random weights (and non-default BatchNorm statistics) saved "
            "as a Keras Applications .h5 file, loaded into the zoo twin with `zoo.create(..., weights=path)`; "
            "the largest output difference on the same inputs.", table])
        section, title = "bench_serving_compare", "Imported weights vs keras.applications (scripts/bench_serving.py compare)"
    print(body, flush=True)
    if not arguments.no_write:
        benchmarks.write_section(section, title, body, benchmarks.rerun_command())


if __name__ == "__main__":
    main()
