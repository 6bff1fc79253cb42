"""Serving benchmarks and the import check against keras.applications.

    python scripts/bench_serving.py latency [--run RUN | --model resnet18 --size 64 --epochs 6] [--repeats 10]
        Latency and throughput of every way the kit serves a trained run (the SavedModel's
        signatures, the ONNX export in ONNX Runtime and the LiteRT export in the LiteRT interpreter,
        float32 and int8) against model.predict and a direct model(x, training=False) call, at
        batch 1 and 32, timed in alternation (scripts/benchmarks.py); the served-vs-Keras
        difference; and each export's size and validation accuracy (float16 too). Without --run it
        first trains MODEL on the built-in shapes at SIZE (int8 is calibrated on a run's own
        training images, and an accuracy change needs a model that has learned something).
        Writes its section of BENCHMARKS.md unless --no-write.

    python scripts/bench_serving.py compare [--models vgg16,resnet50] [--notop-size 160]
        For each keras.applications twin, with and without top: the largest output difference
        between keras.applications and the zoo model loaded from the same (random) weight file.
        Writes its section of BENCHMARKS.md unless --no-write.

Timings depend on the machine; they are printed and written, never asserted.
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
from pathlib import Path

import benchmarks  # noqa: E402  (sets sys.path and TF_CPP_MIN_LOG_LEVEL first)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import zoo  # noqa: E402
from finetune import files  # noqa: E402
from finetune.serving.export import export_model  # noqa: E402
from finetune.serving.loading import load_model  # noqa: E402
from finetune.serving.portable import RUNTIME_NAMES, export_portable  # noqa: E402
from finetune.serving.runtimes import find_portable_model, open_model  # noqa: E402
from finetune.training.classification import finetune  # noqa: E402
from finetune.training.config import FinetuneConfig  # noqa: E402
from zoo.layers import preprocessing_layer  # noqa: E402
from zoo.weights.files import save_legacy_weights  # noqa: E402

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
    "ONNX Runtime float32": "`zoo export --format onnx` in an ONNX Runtime CPU session: uint8 pixels in; "
                            "preprocessing, model and softmax out",
    "ONNX Runtime int8": "`--format onnx --quantize int8` (QDQ, calibrated on 300 training images), in ONNX Runtime",
    "LiteRT float32": "`zoo export --format litert` in the LiteRT interpreter (XNNPACK, one thread per core)",
    "LiteRT int8": "`--format litert --quantize int8` (calibrated on 300 training images), in the LiteRT interpreter",
}
# (format, quantize) of the exports timed above, and of those only sized and checked for accuracy
TIMED_EXPORTS = {"ONNX Runtime float32": ("onnx", "none"), "ONNX Runtime int8": ("onnx", "int8"),
                 "LiteRT float32": ("litert", "none"), "LiteRT int8": ("litert", "int8")}
ALL_EXPORTS = [("onnx", "none"), ("onnx", "float16"), ("onnx", "int8"),
               ("litert", "none"), ("litert", "float16"), ("litert", "int8")]


def trained_run(model_name: str, size: int, epochs: int, out: Path) -> Path:
    """A run of MODEL on the built-in shapes at SIZE, in OUT."""
    benchmarks.log(f"  training {model_name} at {size}x{size} for {epochs} epochs on builtin:zoo_shapes/{size}")
    finetune(FinetuneConfig(model=model_name, data=f"builtin:zoo_shapes/{size}", image_size=size, channels=3,
                            epochs=epochs, seed=0), out=out, verbose=0)
    return out


def export_everything(run: Path, base: Path) -> tuple[Path, dict]:
    """The run's SavedModel, and its ONNX and LiteRT exports by (format, quantize)."""
    benchmarks.log("  exporting the SavedModel")
    saved_model = export_model(run, base)
    folders = {}
    for export_format, quantize in ALL_EXPORTS:
        benchmarks.log(f"  exporting {export_format} {quantize}")
        folders[export_format, quantize] = export_portable(run, base, export_format, quantize,
                                                           name=f"{export_format}-{quantize}")
    return saved_model, folders


def latency(run: Path, loaded, repeats: int, min_seconds: float) -> tuple[str, str, dict]:
    """The latency table (markdown), a line on the served-vs-Keras differences, and each ONNX and
    LiteRT export's report (size, validation accuracy) by (format, quantize)."""
    model, size = loaded.model, loaded.input_shape
    rows, differences = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        exported, folders = export_everything(run, Path(scratch) / "serving")
        served = tf.saved_model.load(str(exported))
        runtimes = {label: open_model(*find_portable_model(folders[key])) for label, key in TIMED_EXPORTS.items()}
        preprocess = preprocessing_layer(loaded.preprocessing)
        serve_pixels, serve_encoded = served.signatures["serve_pixels"], served.signatures["serving_default"]
        forward = tf.function(lambda x: model(x, training=False))

        for batch in (1, 32):
            pixels = np.random.default_rng(batch).integers(0, 256, (batch, *size), dtype=np.uint8)
            pixel_tensor = tf.constant(pixels)
            encoded = tf.constant([tf.io.encode_jpeg(image, quality=95).numpy() for image in pixels])
            model_input = tf.constant(preprocess(pixels.astype("float32")))
            expected = model(model_input, training=False).numpy()
            outputs = {"serve_pixels": serve_pixels(images=pixel_tensor)["probabilities"].numpy(),
                       **{label: runtimes[label].probabilities(pixels) for label in ("ONNX Runtime float32",
                                                                                     "LiteRT float32")}}
            for label, output in outputs.items():
                differences[label] = max(differences.get(label, 0.0), float(np.abs(output - expected).max()))
            calls = {
                "model.predict": lambda: model.predict(model_input, batch_size=batch, verbose=0),
                "model(x)": lambda: forward(model_input),
                "serve_pixels": lambda: serve_pixels(images=pixel_tensor),
                "serving_default": lambda: serve_encoded(images=encoded),
                **{label: (lambda runtime=runtime: runtime.probabilities(pixels)) for label, runtime in runtimes.items()},
            }
            benchmarks.log(f"  batch {batch}: timing {repeats} interleaved rounds")
            times = benchmarks.interleaved(calls, repeats, min_seconds=min_seconds)
            for label in calls:
                seconds = benchmarks.median(times[label])
                ratio, low, high = benchmarks.speedup(times["model.predict"], times[label])
                rows.append([batch, label, f"{seconds * 1000:.2f}", f"{batch / seconds:.1f}",
                             benchmarks.format_ratio(ratio, low, high)])
        reports = {key: json.loads((folder / files.PORTABLE_METADATA).read_text())["report"]
                   for key, folder in folders.items()}
    headers = ["batch", "path", "latency ms", "images/s", "speed vs model.predict (IQR)"]
    difference = "Largest |served - Keras| probability difference on the same pixels: " + ", ".join(
        f"{label} {value:.2e}" for label, value in differences.items()) + "."
    return benchmarks.markdown_table(headers, rows), difference, reports


def keras_accuracy(reports: dict) -> float:
    return next(report["keras_accuracy"] for report in reports.values() if "keras_accuracy" in report)


def accuracy_table(reports: dict) -> str:
    """Each export's file size and its validation accuracy against the Keras model's."""
    rows = []
    for (export_format, quantize), report in reports.items():
        accuracy = report.get("export_accuracy", 0.0)
        rows.append([RUNTIME_NAMES[export_format], "float32" if quantize == "none" else quantize,
                     f"{report['size_bytes'] / 2**20:.1f}",
                     f"{report['size_bytes'] / report['float32_weights_bytes']:.2f}",
                     f"{accuracy:.4f}" if quantize != "none" else "-",
                     f"{accuracy - keras_accuracy(reports):+.4f}" if quantize != "none" else "-",
                     f"{report['top1_agreement']:.1%}" if quantize != "none" else "-"])
    headers = ["runtime", "weights", "size MiB", "size / float32 weights", "validation accuracy",
               "change vs Keras", "same top-1 as Keras"]
    return benchmarks.markdown_table(headers, rows)


def closing_note(reports: dict) -> str:
    """The sizes and the accuracy change of the quantized exports, in a sentence."""
    def size(key):
        return f"{reports[key]['size_bytes'] / 2**20:.1f} MiB"

    def change(key):
        return f"{reports[key]['export_accuracy'] - keras_accuracy(reports):+.4f}"

    return (f"The float32 exports weigh {size(('onnx', 'none'))} (ONNX) and {size(('litert', 'none'))} (LiteRT); "
            f"int8 shrinks them to {size(('onnx', 'int8'))} and {size(('litert', 'int8'))}, changing validation "
            f"accuracy (Keras: {keras_accuracy(reports):.4f}) by {change(('onnx', 'int8'))} in ONNX Runtime and "
            f"{change(('litert', 'int8'))} in LiteRT; float16 halves them ({size(('onnx', 'float16'))}, "
            f"{size(('litert', 'float16'))}) for {change(('onnx', 'float16'))} and {change(('litert', 'float16'))}.")


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
    timing = commands.add_parser("latency", help="SavedModel, ONNX and LiteRT exports vs model.predict and model(x)")
    timing.add_argument("--run", type=Path, help="a trained run folder (default: train MODEL first)")
    timing.add_argument("--model", default="resnet18")
    timing.add_argument("--size", type=int, default=64)
    timing.add_argument("--epochs", type=int, default=6)
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
        with tempfile.TemporaryDirectory() as scratch:
            run = arguments.run or trained_run(arguments.model, arguments.size, arguments.epochs,
                                               Path(scratch) / arguments.model)
            loaded = load_model(run)
            table, difference, reports = latency(run, loaded, arguments.repeats, arguments.min_seconds)
        origin = (f"the run {arguments.run}" if arguments.run else
                  f"trained {arguments.epochs} epochs on builtin:zoo_shapes/{arguments.size}")
        paths = "\n".join(f"- `{label}`: {text}" for label, text in PATHS.items())
        body = "\n\n".join([
            machine,
            f"{loaded.model.name} at {'x'.join(map(str, loaded.input_shape))}, {len(loaded.class_names)} classes, "
            f"{origin}; each export written by `zoo export`'s writers; median of {arguments.repeats} interleaved "
            "rounds. The last column is the median per-round ratio of model.predict's time to the path's (> 1: "
            "faster than model.predict).",
            paths, table, difference,
            "Each ONNX and LiteRT export's size and validation accuracy (the quantized ones checked by the export "
            "itself, in their runtime, on the run's validation split):",
            accuracy_table(reports), closing_note(reports)])
        section, title = ("bench_serving", "Serving: SavedModel, ONNX Runtime and LiteRT vs model.predict "
                                           "(scripts/bench_serving.py latency)")
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
