"""The work of `zoo import`, `zoo export` and `zoo predict` (declared in `finetune.cli.serving`)."""

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
from finetune.serving.portable import summary_lines
from finetune.serving.predictor import load_predictor
from finetune.training.runfolder import check_writable
from zoo import imagenet
from zoo.errors import ZooError
from zoo.eval_transform import EvalTransform, overridden
from zoo.weights.files import WEIGHTS_METADATA
from zoo.weights.keras_applications import IMAGENET_CLASSES
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


def import_weights(name, weights, num_classes, input_size, channels, no_top, pooling, out, eval_resize=None,
                   eval_crop=None):
    """`zoo import NAME --weights W --out FILE`: the model with its weights, saved with their record."""
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
    record = _weights_record(name, weights, model)
    evaluation = overridden(EvalTransform.from_dict(record["evaluation"]) if record.get("evaluation") else None,
                            eval_resize, eval_crop, input_side=model.input_shape[1])
    record["evaluation"] = evaluation.to_dict()
    files.save_model_atomically(model, out, {WEIGHTS_METADATA: json.dumps(record)})
    shape = "x".join(str(dim) for dim in model.input_shape[1:])
    click.echo(f"Wrote {out}: {model.name} with {weights} weights, input {shape}, output "
               f"{tuple(model.output_shape[1:])}, {model.count_params():,} parameters; images evaluated with: "
               f"{evaluation.describe(*model.input_shape[1:3]) if model.input_shape[1] else evaluation.short()}")



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


def export(source, base_dir, export_format, quantize, data, name, version, top_k, labels):
    """`zoo export SOURCE --out BASE`: the export, and what its signatures take."""
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


def predict(source, images, top_k, output, labels, batch_size):
    """`zoo predict SOURCE IMAGES`: the top classes per image, on the screen and in --output."""
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
