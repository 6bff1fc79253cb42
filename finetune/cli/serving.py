"""`zoo import`, `zoo export` and `zoo predict`: pretrained weights in; SavedModel, ONNX or LiteRT out;
predictions from any of them.

The commands' work is in `finetune.cli.jobs.serving`, imported when one runs (see `finetune.cli`).
"""

from __future__ import annotations

from pathlib import Path

import click

from finetune.cli.app import cli
from finetune.cli.training import evaluation_options

# the kit's choices (`finetune.serving.portable.FORMATS`, `QUANTIZATIONS`), which a test keeps equal
EXPORT_FORMATS = ("savedmodel", "onnx", "litert")
EXPORT_QUANTIZATIONS = ("none", "float16", "int8")


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
@evaluation_options
def import_command(name, weights, num_classes, input_size, channels, no_top, pooling, out, eval_resize, eval_crop):
    """Build model NAME with pretrained weights and save it as a .keras file, with the record of
    its weights (preprocessing, class names, evaluation transform) that predict and export apply."""
    from finetune.cli.jobs import serving  # the kit, and TensorFlow with it, load when the command runs

    serving.import_weights(name, weights, num_classes, input_size, channels, no_top, pooling, out, eval_resize,
                           eval_crop)


@cli.command("export")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "base_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The base folder; the export goes to OUT/NAME/VERSION (TF Serving's and Triton's layout).")
@click.option("--format", "export_format", type=click.Choice(EXPORT_FORMATS), default="savedmodel",
              show_default=True, help="savedmodel: TF Serving, image files in; onnx: ONNX Runtime; litert: the "
                                      "LiteRT interpreter (TensorFlow Lite). ONNX and LiteRT take uint8 pixels.")
@click.option("--quantize", type=click.Choice(EXPORT_QUANTIZATIONS), default="none", show_default=True,
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
    from finetune.cli.jobs import serving

    serving.export(source, base_dir, export_format, quantize, data, name, version, top_k, labels)


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
    from finetune.cli.jobs import serving

    serving.predict(source, images, top_k, output, labels, batch_size)
