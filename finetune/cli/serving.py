"""`zoo import`, `zoo export` and `zoo predict`: pretrained weights in; SavedModel, ONNX or LiteRT out;
predictions from any of them."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
from pathlib import Path

import click

import zoo
from finetune import api, files
from finetune.cli.app import cli
from finetune.serving.portable import summary_lines
from finetune.serving.predictor import load_predictor
from finetune.training.runfolder import check_writable
from zoo import imagenet
from zoo.errors import ZooError
from zoo.weights.keras_applications import IMAGENET_CLASSES
from zoo.weights.files import WEIGHTS_METADATA
from zoo.weights.pretrained import describe


class _EchoHandler(logging.Handler):
    def emit(self, record):
        prefix = "Warning: " if record.levelno >= logging.WARNING else "Note: "
        click.echo(prefix + record.getMessage(), err=True)


@contextlib.contextmanager
def _notes_on_stderr():
    """Shows the weight loader's notes and the model loader's warnings while a command runs."""
    handler = _EchoHandler(level=logging.INFO)
    loggers = [logging.getLogger(name) for name in ("zoo.weights", "finetune.serving", "finetune.api")]
    saved_levels = [each.level for each in loggers]
    for each in loggers:
        each.addHandler(handler)
        each.setLevel(logging.INFO)
    try:
        yield
    finally:
        for each, level in zip(loggers, saved_levels):
            each.removeHandler(handler)
            each.setLevel(level)


@cli.command("import")
@click.argument("name")
@click.option("--weights", required=True,
              help="A weights tag of the model (e.g. 'imagenet', 'tv_in1k', 'bvlc'; see `zoo info NAME`), or a "
                   "file: .keras, .weights.h5, Keras Applications .h5, PyTorch (.pth, .pt, .bin), .safetensors "
                   "or .caffemodel.")
@click.option("--num-classes", type=click.IntRange(min=1),
              help="Classifier size; another size than the weights' re-initializes the classifier.")
@click.option("--input-size", type=click.IntRange(min=1), help="Input height and width in pixels.")
@click.option("--channels", type=click.Choice(["1", "3"]),
              help="Input channels; the first convolution is adapted when the weights have the other number.")
@click.option("--no-top", is_flag=True, help="Leave out the classifier; the model ends at its features.")
@click.option("--pooling", type=click.Choice(["avg", "max"]), help="With --no-top: pool the features to a vector.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The .keras file to write.")
def import_command(name, weights, num_classes, input_size, channels, no_top, pooling, out):
    """Build model NAME with pretrained weights and save it as a .keras file."""
    if out.suffix != ".keras":
        raise ZooError(f"--out must name a .keras file, not {out}")
    if out.exists():
        raise ZooError(f"{out} exists; pick another --out (a model already written is never overwritten)")
    check_writable(out.parent, "the model")
    input_shape = None
    if input_size or channels:
        height, width, default_channels = zoo.info(name).default_input_shape
        input_shape = (input_size or height, input_size or width, int(channels or default_channels))
    with _notes_on_stderr():
        model = zoo.create(name, weights=weights, num_classes=num_classes, input_shape=input_shape,
                           include_top=not no_top, pooling=pooling)
    out.parent.mkdir(parents=True, exist_ok=True)
    files.save_model_atomically(model, out, {WEIGHTS_METADATA: json.dumps(_weights_record(name, weights, model))})
    shape = "x".join(str(dim) for dim in model.input_shape[1:])
    click.echo(f"Wrote {out}: {model.name} with {weights} weights, input {shape}, output "
               f"{tuple(model.output_shape[1:])}, {model.count_params():,} parameters")


def _weights_record(name: str, weights: str, model) -> dict:
    """What the imported file keeps of its weights: their options, preprocessing and class names
    (ImageNet's names themselves when Keras's class index is cached; none for a new classifier)."""
    record = describe(zoo.info(name), weights)
    outputs = model.output_shape[-1] if len(model.output_shape) == 2 else None
    names = record.get("class_names")
    if names == "imagenet":
        names = imagenet.class_names(download=False) or names if outputs == IMAGENET_CLASSES else None
    elif isinstance(names, list) and len(names) != outputs:
        names = None
    record["class_names"] = names
    return record


@cli.command("export")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "base_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The base folder; the export goes to OUT/NAME/VERSION (TF Serving's and Triton's layout).")
@click.option("--format", "export_format", type=click.Choice(api.EXPORT_FORMATS), default="savedmodel",
              show_default=True, help="savedmodel: TF Serving, image files in; onnx: ONNX Runtime; litert: the "
                                      "LiteRT interpreter (TensorFlow Lite). ONNX and LiteRT take uint8 pixels.")
@click.option("--quantize", type=click.Choice(api.EXPORT_QUANTIZATIONS), default="none", show_default=True,
              help="ONNX and LiteRT: float16 weights, or int8 calibrated on the run's training images; the "
                   "export reports its size and validation accuracy before and after.")
@click.option("--data", help="The data to calibrate and check a quantized export on (default: the run's own).")
@click.option("--name", help="The served model's name (default: the run folder's or the file's name).")
@click.option("--version", type=click.IntRange(min=1), help="The version number (default: the next one).")
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True,
              help="SavedModel: how many classes the 'classes' and 'scores' outputs hold.")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False), help="Class names, one per line.")
def export_command(source, base_dir, export_format, quantize, data, name, version, top_k, labels):
    """Export SOURCE (a .keras file, a run folder or an ensemble) for serving."""
    captioner = api.task_of(source) == api.CAPTIONING
    with _notes_on_stderr():
        path = api.export(source, base_dir, format=export_format, quantize=quantize, name=name, version=version,
                          top_k=top_k, labels=labels, data=data)
    click.echo(f"Exported {source} to {path}")
    if export_format != "savedmodel":
        for line in summary_lines(json.loads((path / files.PORTABLE_METADATA).read_text(encoding="utf8"))):
            click.echo(line)
    elif captioner:
        click.echo("  serving_default: images (encoded JPEG/PNG bytes, [N]) -> captions (beam search)")
        click.echo("  greedy:          images (encoded JPEG/PNG bytes, [N]) -> captions (greedy search)")
    else:
        click.echo("  serving_default: images (encoded JPEG/PNG bytes, [N]) -> classes, scores, probabilities")
        click.echo("  serve_pixels:    images (uint8 [N, height, width, channels]) -> classes, scores, probabilities")


def _write_predictions(predictions, path: Path) -> None:
    """The predictions as .json or .csv, written whole or not at all."""
    if path.suffix == ".json":
        rows = [{"image": files.printable(each.image),
                 "predictions": [{"class": name, "probability": score} for name, score in zip(each.classes, each.scores)]}
                for each in predictions]
        files.write_atomically(path, json.dumps(rows, indent=2) + "\n")
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["image", "rank", "class", "probability"])
    for each in predictions:
        for rank, (name, score) in enumerate(zip(each.classes, each.scores), start=1):
            writer.writerow([files.printable(each.image), rank, name, f"{score:.6f}"])
    files.write_atomically(path, buffer.getvalue())


@cli.command("predict")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True, help="Classes shown per image.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the predictions to a .csv or .json file.")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False), help="Class names, one per line.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
def predict_command(source, images, top_k, output, labels, batch_size):
    """Classify IMAGES with SOURCE: a .keras file, a run folder, an exported SavedModel, or a .onnx or
    .tflite export (run in ONNX Runtime or the LiteRT interpreter)."""
    if output is not None and output.suffix not in (".csv", ".json"):
        raise ZooError(f"--output must end in .csv or .json, not {output.name}")
    if output is not None:
        check_writable(output.parent, "the predictions")
    api.require_task(source, api.CLASSIFICATION, "caption its images with `zoo caption`")
    with _notes_on_stderr():
        predictor = load_predictor(source, labels)
    predictions, skipped = predictor.predict_files(images, top_k=top_k, batch_size=batch_size)
    if not predictions:
        raise ZooError(api.no_readable_image(skipped))
    for path, reason in skipped:
        click.echo(f"Skipped {files.printable(path)}: {reason}", err=True)
    width = max(len(name) for each in predictions for name in each.classes)
    for each in predictions:
        click.echo(files.printable(each.image))
        for rank, (name, score) in enumerate(zip(each.classes, each.scores), start=1):
            click.echo(f"  {rank}. {name.ljust(width)}  {score:.4f}")
    if output is not None:  # the predictions are on the screen already if this fails
        _write_predictions(predictions, output)
        click.echo(f"Wrote {len(predictions)} predictions to {output}")
