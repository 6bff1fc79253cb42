"""`zoo caption`: describe images with a trained captioner."""

from __future__ import annotations

import json
from pathlib import Path

import click

from zoo.cli.app import cli
from zoo.errors import ZooError

SAVED_MODEL_FILE = "saved_model.pb"
EXPORT_METADATA = Path("assets.extra") / "zoo.json"


def _read_images(paths) -> list[bytes]:
    """The bytes of each image file, each checked to decode, so a bad file is named."""
    import tensorflow as tf

    encoded = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise ZooError(f"no image at {path}")
        data = path.read_bytes()
        try:
            tf.io.decode_image(data, expand_animations=False)
        except (tf.errors.InvalidArgumentError, ValueError):
            raise ZooError(f"{path} is not an image TensorFlow can read (PNG, JPEG, GIF or BMP)") from None
        encoded.append(data)
    return encoded


def _find_saved_model(source: Path) -> Path | None:
    """`source` itself when it is a SavedModel, or the latest numbered version inside it."""
    if (source / SAVED_MODEL_FILE).is_file():
        return source
    if source.is_dir():
        versions = [child for child in source.iterdir() if child.name.isdigit() and (child / SAVED_MODEL_FILE).is_file()]
        if versions:
            return max(versions, key=lambda child: int(child.name))
    return None


def _caption_with_saved_model(folder: Path, encoded: list[bytes], beam_width: int | None) -> list[str]:
    import tensorflow as tf

    metadata_file = folder / EXPORT_METADATA
    metadata = json.loads(metadata_file.read_text()) if metadata_file.is_file() else {}
    exported_width = metadata.get("beam_width")
    loaded = tf.saved_model.load(str(folder))
    if beam_width == 1 and "greedy" in loaded.signatures:
        signature = loaded.signatures["greedy"]
    elif beam_width is None or beam_width == exported_width:
        signature = loaded.signatures["serving_default"]
    else:
        raise ZooError(f"{folder} was exported with beam width {exported_width} (and greedy search, --beam 1); "
                       "caption with its .keras model for another width")
    outputs = signature(images=tf.constant(encoded))
    if "captions" not in outputs:
        raise ZooError(f"{folder} is a SavedModel, but not a captioner's (its outputs: {', '.join(outputs)})")
    return [caption.decode("utf-8") for caption in outputs["captions"].numpy()]


def _caption_with_keras(source: Path, encoded: list[bytes], beam_width: int | None) -> list[str]:
    import tensorflow as tf

    from finetune.captioning import load_captioner
    from zoo import decoding

    generator = decoding.CaptionGenerator(load_captioner(source))
    pixels = decoding.decode_images(tf.constant(encoded), generator.image_shape)
    return generator(pixels, beam_width=beam_width or decoding.DEFAULT_BEAM_WIDTH)


@cli.command("caption")
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--beam", "beam_width", type=click.IntRange(min=1), default=None,
              help="Beam width; 1 is greedy search. Default: 3, or the width an export was made with.")
def caption_command(source, images, beam_width):
    """Caption IMAGES with SOURCE: a captioning run folder, a .keras file or an exported SavedModel."""
    if not source.exists():
        raise ZooError(f"no captioner at {source}: give a run folder, a .keras file or an exported SavedModel")
    encoded = _read_images(images)
    saved_model = _find_saved_model(source)
    if saved_model is not None:
        captions = _caption_with_saved_model(saved_model, encoded, beam_width)
    else:
        captions = _caption_with_keras(source, encoded, beam_width)
    for path, caption in zip(images, captions):
        click.echo(f"{path}: {caption}")
