"""ONNX and LiteRT exports, float or quantized, with the accuracy they keep.

Layout, the SavedModel's BASE/NAME/VERSION (Triton's model repository layout for ONNX too)::

    BASE/NAME/VERSION/model.onnx or model.tflite   uint8 images [N, H, W, C] -> probabilities [N, classes]
    BASE/NAME/VERSION/labels.txt                    class names, one per line, in output order
    BASE/NAME/VERSION/zoo.json                      input, preprocessing, classes, quantization report

The model's preprocessing is inside the graph. An ONNX model also carries zoo.json's description
(all but the report) as its metadata properties, so the .onnx file alone is enough. Quantized exports are checked on the run's
validation split in their own runtime, and the report (sizes, accuracy before and after, top-1
agreement with Keras) goes into zoo.json.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from finetune import files
from finetune.serving import litert_format, onnx_format
from finetune.serving.export import check_names_fit_labels_file
from finetune.serving.loading import LoadedModel, check_class_names, load_model
from finetune.serving.pixels import OUTPUT_NAME, describe, pixels_model, pixels_signature
from finetune.serving.rundata import first_pixels, load_run_data
from finetune.serving.runtimes import LITERT, MODEL_FILES, ONNX, open_model
from finetune.serving.staging import default_name, staged_export
from zoo.errors import ZooError

SAVED_MODEL = "savedmodel"
FORMATS = (SAVED_MODEL, ONNX, LITERT)
QUANTIZATIONS = ("none", "float16", "int8")
CALIBRATION_IMAGES = 300  # TFLite's and ONNX Runtime's guides calibrate on a few hundred samples
RUNTIME_NAMES = {ONNX: "ONNX Runtime", LITERT: "LiteRT"}


def check_format(export_format: str, quantize: str) -> None:
    """Refuses unknown formats and quantizations, and quantized SavedModels."""
    if export_format not in FORMATS:
        raise ZooError(f"unknown export format {export_format!r}; the formats are {', '.join(FORMATS)}")
    if quantize not in QUANTIZATIONS:
        raise ZooError(f"unknown quantization {quantize!r}; choose {', '.join(QUANTIZATIONS)}")
    if export_format == SAVED_MODEL and quantize != "none":
        raise ZooError(f"SavedModel exports stay float32; for {quantize} export to --format litert or onnx")


def export_portable(source, base_dir, export_format: str, quantize: str = "none", *, name: str | None = None,
                    version: int | None = None, labels=None, data=None,
                    calibration_images: int = CALIBRATION_IMAGES) -> Path:
    """Exports a classifier run folder, ensemble or `.keras` file as ONNX or LiteRT to
    ``base_dir/name/version`` and returns that folder.

    Args:
        export_format: "onnx" or "litert".
        quantize: "none", "float16" or "int8" (calibrated on `calibration_images` training images).
        labels: an optional text file of class names, one per line.
        data: the data to calibrate on and check against (default: the run's own); quantizing a
            bare `.keras` file needs it.
    """
    check_format(export_format, quantize)
    if export_format == SAVED_MODEL:
        raise ZooError("SavedModel exports are written by finetune.serving.export.export_model")
    loaded = load_model(source, labels)
    check_names_fit_labels_file(loaded.class_names)
    validation = calibration = None
    if quantize != "none":  # before converting: a missing data spec should not cost a conversion
        # the validation images up to the crop, which the export's own evaluation transform then makes
        pre_crop, (height, width) = loaded.evaluation.before_crop(*loaded.input_shape[:2])
        bundle = load_run_data(source, (height, width, loaded.input_shape[-1]), data=data, required=True,
                               shuffle_training=True, evaluation=pre_crop)
        check_class_names(bundle.class_names, loaded.class_names, bundle.description.split(" (")[0], str(source))
        validation = bundle.validation
        if quantize == "int8":
            calibration = first_pixels(bundle.train, calibration_images)

    def write(folder: Path) -> None:
        write_portable(loaded, folder, export_format, quantize, calibration, validation)

    return staged_export(base_dir, name or default_name(source), version, write)


def write_portable(loaded: LoadedModel, folder: Path, export_format: str, quantize: str,
                   calibration: np.ndarray | None = None, validation=None) -> None:
    """Converts `loaded` and writes the model, labels.txt and zoo.json into `folder`."""
    model, signature = pixels_model(loaded), pixels_signature(loaded)
    metadata = describe(loaded, export_format, quantize)
    if export_format == ONNX:
        content = onnx_format.with_metadata(onnx_format.convert(model, signature, quantize, calibration), metadata)
    else:
        content = litert_format.convert(model, signature, quantize, calibration)
    report = {"size_bytes": len(content), "float32_weights_bytes": 4 * loaded.model.count_params()}
    if calibration is not None:
        report["calibration_images"] = len(calibration)
    if validation is not None:
        report.update(compare(model, open_model(content, export_format), validation))
    (folder / MODEL_FILES[export_format]).write_bytes(content)
    (folder / files.LABELS).write_text("\n".join(loaded.class_names) + "\n", encoding="utf8")
    files.write_json(folder / files.PORTABLE_METADATA, {**metadata, "report": report})


def compare(model, runtime, dataset) -> dict:
    """Top-1 accuracy of the Keras pixels model and of the export in its runtime on `dataset`
    (batches of pixels in [0, 255] and integer labels), and how often their top-1 classes agree."""
    keras_correct = export_correct = agree = count = 0
    for images, labels in dataset:
        pixels = np.asarray(images).astype(np.uint8)
        expected = np.argmax(model(pixels, training=False)[OUTPUT_NAME], axis=-1)
        served = np.argmax(runtime.probabilities(pixels), axis=-1)
        labels = np.asarray(labels)
        keras_correct += int(np.sum(expected == labels))
        export_correct += int(np.sum(served == labels))
        agree += int(np.sum(served == expected))
        count += len(labels)
    if count == 0:
        raise ZooError("the validation split is empty: there is nothing to check the quantized export on")
    return {"split": "validation", "examples": count, "keras_accuracy": keras_correct / count,
            "export_accuracy": export_correct / count, "top1_agreement": agree / count}


def summary_lines(metadata: dict) -> list[str]:
    """What `zoo export` prints about an ONNX or LiteRT export (its zoo.json): input and output,
    size and, when quantized, the accuracy it keeps."""
    export_format, quantize, report = metadata["format"], metadata["quantize"], metadata.get("report", {})
    dimensions = ", ".join("any" if dimension is None else str(dimension) for dimension in metadata["input"]["shape"][1:])
    lines = [f"  {MODEL_FILES[export_format]}: images (uint8 [N, {dimensions}]) -> probabilities "
             f"(float32 [N, {len(metadata['class_names'])}]); class names in {files.LABELS}"]
    if "evaluation_description" in metadata:
        lines.append(f"  each image: {metadata['evaluation_description']}, inside the model")
    if "size_bytes" in report:
        kind = "float32" if quantize == "none" else quantize
        lines.append(f"  size: {report['size_bytes'] / 2**20:.2f} MiB ({kind}); the float32 weights: "
                     f"{report['float32_weights_bytes'] / 2**20:.2f} MiB")
    if "export_accuracy" in report:
        change = report["export_accuracy"] - report["keras_accuracy"]
        lines.append(f"  validation accuracy on {report['examples']} images: Keras {report['keras_accuracy']:.4f}, "
                     f"{RUNTIME_NAMES[export_format]} {quantize} {report['export_accuracy']:.4f} ({change:+.4f}); "
                     f"the same top-1 class for {report['top1_agreement']:.1%} of them")
    return lines
