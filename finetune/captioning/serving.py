"""A trained captioner, loaded from a run folder or a `.keras` file, and exported as a SavedModel
whose signatures take encoded images and return captions."""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from finetune import files
from finetune.serving.staging import default_name, find_saved_model, read_metadata, staged_export, write_metadata
from zoo import decoding
from zoo.errors import ZooError
from zoo.models.captioner import Captioner
from zoo.weights.files import load_model_file


def load_captioner(source) -> Captioner:
    """A captioner from a run folder (its best.keras, else last.keras) or a `.keras` file."""
    source = Path(source)
    if source.is_dir():
        candidates = [source / name for name in files.RUN_MODELS]
        path = next((candidate for candidate in candidates if candidate.is_file()), None)
        if path is None:
            raise ZooError(f"{source} holds no trained captioner ({' or '.join(files.RUN_MODELS)}); has its run finished an epoch?")
    elif source.suffix == ".keras" and source.is_file():
        path = source
    else:
        raise ZooError(f"{source} is neither a captioning run folder nor a .keras file")
    model = load_model_file(str(path))
    if not isinstance(model, Captioner):
        raise ZooError(f"{path} holds a {type(model).__name__}, not a captioner: classify images with `zoo predict`")
    return model


def export_captioner(source, base_dir, name: str | None = None, version: int | None = None, *,
                     beam_width: int = decoding.DEFAULT_BEAM_WIDTH,
                     length_penalty: float = decoding.DEFAULT_LENGTH_PENALTY) -> Path:
    """Exports a captioner (run folder, `.keras` file or model) as a SavedModel at base_dir/name/version.

    Signatures: ``serving_default`` takes ``images``, encoded images tf.string [N] (PNG, JPEG, GIF,
    BMP, any size), and returns ``captions`` tf.string [N] by beam search of `beam_width`;
    ``greedy`` does the same by greedy search. TensorFlow alone can load and run it.
    """
    captioner = source if isinstance(source, Captioner) else load_captioner(source)
    name = name or (default_name(source) if not isinstance(source, Captioner) else captioner.name)
    generator = decoding.CaptionGenerator(captioner, length_penalty=length_penalty)

    def write(folder: Path) -> None:
        archive = keras.export.ExportArchive()
        archive.track(captioner)
        archive.track(generator.words)  # the id -> word lookup table
        for endpoint, width in (("serving_default", beam_width), ("greedy", 1)):
            archive.add_endpoint(endpoint, _serving_function(generator, width))
        archive.write_out(str(folder), verbose=False)
        (folder / files.EXPORT_KERAS_COPY).parent.mkdir(exist_ok=True)
        captioner.save(folder / files.EXPORT_KERAS_COPY)
        write_metadata(folder, {
            "task": "captioning", "model": captioner.name, "input_shape": list(captioner.image_shape),
            "beam_width": beam_width, "length_penalty": length_penalty,
            "max_caption_length": captioner.max_caption_length,
            "source": str(Path(source).resolve()) if not isinstance(source, Captioner) else None})

    return staged_export(base_dir, name, version, write)


def _serving_function(generator, beam_width: int):
    """Encoded images tf.string [N] -> {"captions": tf.string [N]}, as a graph (the search loops
    are tf.while_loops already, so AutoGraph has nothing to convert)."""
    def serve(images):
        return {"captions": generator.caption_encoded(images, beam_width)}

    return tf.function(serve, input_signature=[tf.TensorSpec([None], tf.string, name="images")], autograph=False)


def read_images(paths) -> list[bytes]:
    """The bytes of each image file, each checked to decode, so a bad file is named."""
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


def _caption_with_saved_model(folder: Path, encoded: list[bytes], beam_width: int | None) -> list[str]:
    exported_width = read_metadata(folder).get("beam_width")
    try:
        loaded = tf.saved_model.load(str(folder))
    except (OSError, ValueError, tf.errors.OpError) as error:
        raise ZooError(f"cannot load the SavedModel in {folder}: {error}") from None
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


def caption_files(source, paths, beam_width: int | None = None) -> list[str]:
    """Captions of image files with SOURCE: a captioning run folder, a `.keras` file or an export.

    `beam_width` None is 3 (or, for an export, the width it was exported with); 1 is greedy search.
    """
    source = Path(source)
    if not source.exists():
        raise ZooError(f"no captioner at {source}: give a run folder, a .keras file or an exported SavedModel")
    encoded = read_images(paths)
    saved_model = find_saved_model(source)
    if saved_model is not None:
        return _caption_with_saved_model(saved_model, encoded, beam_width)
    generator = decoding.CaptionGenerator(load_captioner(source))
    pixels = decoding.decode_images(tf.constant(encoded), generator.image_shape)
    return generator(pixels, beam_width=beam_width or decoding.DEFAULT_BEAM_WIDTH)
