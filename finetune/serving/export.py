"""SavedModel export for TF Serving: images in, class names and probabilities out.

Layout, as TF Serving expects it (``--model_base_path=BASE/NAME``)::

    BASE/NAME/VERSION/saved_model.pb, variables/
    BASE/NAME/VERSION/assets/labels.txt          class names, one per line (the graph's lookup table reads it)
    BASE/NAME/VERSION/assets.extra/model.keras   the Keras model it was made from
    BASE/NAME/VERSION/assets.extra/zoo.json      input shape, preprocessing, top-k, source

Signatures:
- ``serving_default``: ``images`` tf.string [N] (encoded JPEG/PNG/GIF/BMP/WebP files, any sizes);
- ``serve_pixels``: ``images`` uint8 [N, height, width, channels] (any one size per batch);
both resize and crop each image to the model's input by its evaluation transform (the resize and
centre crop its weights' source evaluates with, `zoo.layers.eval_transform`);
both return ``classes`` (string [N, k]), ``scores`` (float32 [N, k]) and ``probabilities`` (float32
[N, classes]). TF Serving ignores ``assets.extra/`` and any folder whose name is not a number, so
a version is written to a hidden sibling folder and renamed into place when complete
(`finetune.serving.staging`).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import keras

from finetune import files
from finetune.serving.classifier import Classifier, class_name_table
from finetune.serving.loading import load_model
from finetune.serving.staging import default_name, staged_export, write_metadata
from zoo.errors import ZooError


def check_names_fit_labels_file(class_names: list[str]) -> None:
    for name in class_names:
        if not name or "\n" in name or "\r" in name:
            raise ZooError(f"class names must be non-empty single lines for {files.LABELS}, not {name!r}")


def write_saved_model(loaded, directory: Path, top_k: int) -> None:
    """Writes `loaded` as a SavedModel with the two image signatures into `directory`."""
    check_names_fit_labels_file(loaded.class_names)
    with tempfile.TemporaryDirectory() as scratch:
        # the lookup table reads labels.txt; the SavedModel copies it into assets/ as its asset
        labels = Path(scratch) / files.LABELS
        labels.write_text("\n".join(loaded.class_names) + "\n", encoding="utf8")
        table = class_name_table(loaded.class_names, labels_file=labels)
        classifier = Classifier(loaded, top_k, class_table=table)
        archive = keras.export.ExportArchive()
        archive.track(loaded.model)
        archive.track(table)
        archive.add_endpoint("serving_default", classifier.classify_encoded, classifier.encoded_signature())
        archive.add_endpoint("serve_pixels", classifier.classify_pixels, classifier.pixels_signature())
        archive.write_out(str(directory), verbose=False)
    (directory / files.EXPORT_KERAS_COPY).parent.mkdir(exist_ok=True)
    shutil.copyfile(loaded.keras_path, directory / files.EXPORT_KERAS_COPY)
    write_metadata(directory, {
        "task": "classification", "model": loaded.model.name, "input_shape": list(loaded.input_shape),
        "preprocessing": loaded.preprocessing.to_dict(), "evaluation": loaded.evaluation.to_dict(),
        "num_classes": len(loaded.class_names),
        "top_k": classifier.top_k, "source": str(Path(loaded.keras_path).resolve()),
    })


def export_model(source, base_dir, name: str | None = None, version: int | None = None, top_k: int = 5,
                 labels=None) -> Path:
    """Exports a `.keras` file or a run folder to ``base_dir/name/version`` and returns that path.

    Args:
        source: a `.keras` file or a run folder (see finetune.serving.loading.load_model).
        base_dir: the TF Serving base folder; created if missing.
        name: the served model's name; by default the run folder's or the file's name.
        version: a new version number; by default one more than the highest already there.
        top_k: how many classes the `classes` and `scores` outputs hold.
        labels: an optional text file of class names, one per line.
    """
    if top_k < 1:
        raise ZooError(f"top-k must be at least 1, got {top_k}")
    loaded = load_model(source, labels)
    return staged_export(base_dir, name or default_name(source), version,
                         lambda folder: write_saved_model(loaded, folder, top_k))
