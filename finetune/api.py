"""The kit's Python API: the `zoo` command's jobs as functions.

    >>> import finetune
    >>> result = finetune.finetune("lenet5", epochs=3, out="runs/lenet5")   # built-in shapes
    >>> finetune.evaluate("runs/lenet5")["accuracy"]
    >>> finetune.predict("runs/lenet5", ["a.png", "b.png"])                  # top-5 per image
    >>> finetune.export("runs/lenet5", "serving")                           # serving/lenet5/1
    >>> finetune.export("runs/lenet5", "serving", format="litert", quantize="int8")
    >>> loaded = finetune.load("runs/lenet5")                               # model, preprocessing, classes

Every function takes classifiers and captioners alike (a run folder, a `.keras` file or, for
predict, an export) and says which function to use where a task has no such job.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from finetune import files
from finetune.captioning import CaptioningConfig, evaluate_captioner, export_captioner, load_captioner, train_captioner
from finetune.captioning.serving import caption_files
from finetune.data.captions import load_captions
from finetune.practice.folds import CrossValidation, cross_validate
from finetune.serving.batch import predict_data
from finetune.serving.evaluation import evaluate_source
from finetune.serving.export import export_model
from finetune.serving.loading import CAPTIONING, CLASSIFICATION, LoadedModel, load_model, task_of
from finetune.serving.portable import FORMATS, QUANTIZATIONS, SAVED_MODEL, check_format, export_portable
from finetune.serving.predictor import Prediction, load_predictor
from finetune.training.classification import RunResult
from finetune.training.classification import finetune as train_classifier
from finetune.training.config import FinetuneConfig
from finetune.training.runfolder import check_writable, read_history
from zoo.errors import ZooError

log = logging.getLogger(__name__)
CAPTIONER = "captioner"  # the registry's captioning model: `finetune("captioner")` trains one
EXPORT_FORMATS = FORMATS
EXPORT_QUANTIZATIONS = QUANTIZATIONS


def next_run_folder(model: str, root="runs") -> Path:
    """runs/MODEL-1, runs/MODEL-2, ...: the first that does not exist yet."""
    index = 1
    while Path(root, f"{model}-{index}").exists():
        index += 1
    return Path(root, f"{model}-{index}")


def _settings_error(unknown, known) -> ZooError:
    return ZooError(f"unknown settings: {', '.join(sorted(unknown))}; the settings are {', '.join(sorted(known))}")


def make_config(model: str | FinetuneConfig | None = None, data: str | None = None, **settings) -> FinetuneConfig:
    """A classifier's FinetuneConfig from a model name (or a config to start from) and keywords."""
    known = {field.name for field in dataclasses.fields(FinetuneConfig)}
    unknown = set(settings) - known
    if unknown:
        raise _settings_error(unknown, known)
    if isinstance(model, FinetuneConfig):
        config = dataclasses.replace(model, **settings)
    else:
        config = FinetuneConfig(**({"model": model} if model else {}), **settings)
    if data is not None:
        config.data = str(data)
    return config.validate()


def finetune(model: str | FinetuneConfig = "lenet5", data: str | None = None, *, out=None, resume: bool = False,
             verbose: int = 1, **settings) -> RunResult | CrossValidation:
    """Fine-tunes MODEL on DATA (default: the built-in shapes) and returns the run's result.

    Args:
        model: a zoo model name ("resnet18", "captioner", ...) or a FinetuneConfig to start from.
        data: a data spec: a folder, "tfds:NAME[/CONFIG][:SPLIT]" or "builtin:NAME"; a folder of
            images without class subfolders takes its labels from a CSV (labels="labels.csv",
            or labels.csv / train.csv found in it).
        out: the run folder (None: no folder for classifiers; runs/captioner-N for captioners).
        resume: continue the run in `out`; of the settings given, those a resume can change (epochs,
            early stopping, where the data is) apply, any other that differs is refused by name.
        verbose: 0 silent, 1 progress bars.
        settings: FinetuneConfig's fields for classifiers (epochs, lr, mode, weights, augment, ...),
            CaptioningConfig's for the captioner (backbone, rnn, epochs, ...).

    Returns a RunResult: the final model, history, metrics, class names and run folder. With
    mode="predict" nothing trains: the metrics are the predictions' summary. With `folds=K` (and no
    `fold`), k-fold cross-validation: K runs in out/fold-N, and a CrossValidation with their mean
    and spread (`finetune.practice.folds`).
    """
    if model == CAPTIONER or isinstance(model, CaptioningConfig):
        return _finetune_captioner(model, data, out, resume, verbose, settings)
    if resume:
        if out is None:
            raise ZooError("resume needs the run folder (out) of the run to continue")
        given = dict(settings, **({"data": str(data)} if data is not None else {}))
        known = {field.name for field in dataclasses.fields(FinetuneConfig)}
        if set(given) - known:
            raise _settings_error(set(given) - known, known)
        config, changes = FinetuneConfig.load(out).resumed_with(given)
        for key, value in changes.items():
            log.info("resuming %s with %s=%r", out, key, value)
        return train_classifier(config, out=out, resume=True, verbose=verbose)
    config = make_config(model, data, **settings)
    if config.folds is not None and config.fold is None:
        return cross_validate(config, out if out is not None else next_run_folder(f"{config.model}-cv"), config.folds,
                              verbose=verbose)
    if config.mode == "predict":
        rows = predict_data(config, out=out)
        return RunResult(model=None, history=[], metrics={"predictions": rows}, class_names=[], out=out)
    return train_classifier(config, out=out, verbose=verbose)


def _finetune_captioner(model, data, out, resume, verbose, settings) -> RunResult:
    if isinstance(model, CaptioningConfig):
        settings = {**{key: value for key, value in model.to_dict().items() if key != "task"}, **settings}
    out = Path(out) if out is not None else next_run_folder(CAPTIONER)
    settings.setdefault("verbose", 2 if verbose else 0)
    metrics = train_captioner(out=out, resume=resume, data=data, **settings)
    return RunResult(model=load_captioner(out), history=read_history(out / files.HISTORY), metrics=metrics,
                     class_names=[], out=out)


def require_task(source, task: str, instead: str) -> None:
    found = task_of(source)
    if found is not None and found != task:
        raise ZooError(f"{source} is a {found} model: {instead}")


def load(source):
    """A trained model from a run folder or `.keras` file: a LoadedModel (model, preprocessing,
    class names) for classifiers, the Captioner for captioners."""
    if task_of(source) == CAPTIONING:
        return load_captioner(source)
    return load_model(source)


def predict(source, images, *, top_k: int = 5, labels=None, batch_size: int = 32) -> list[Prediction]:
    """The top-k classes of each image file, most probable first, with SOURCE: a run folder, a
    `.keras` file, an exported SavedModel or an ONNX or LiteRT export (run in ONNX Runtime or the
    LiteRT interpreter). Unreadable images are skipped with a warning."""
    require_task(source, CLASSIFICATION, "caption its images with finetune.caption (zoo caption)")
    predictor = load_predictor(source, labels)
    predictions, skipped = predictor.predict_files([str(image) for image in images], top_k=top_k,
                                                   batch_size=batch_size)
    if not predictions:
        raise ZooError(no_readable_image(skipped))
    for path, reason in skipped:
        log.warning("skipped %s: %s", path, reason)
    return predictions


def no_readable_image(skipped: list[tuple[str, str]]) -> str:
    """The error when no image could be read: each (the first few) with its reason."""
    shown = "; ".join(f"{files.printable(path)} ({reason})" for path, reason in skipped[:3])
    more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    return f"none of the images could be read: {shown}{more}; give JPEG, PNG, GIF or BMP files"


def caption(source, images, *, beam_width: int | None = None) -> list[str]:
    """Captions of image files with a captioning run folder, `.keras` file or export; beam_width
    None is 3 (or an export's own), 1 is greedy search."""
    require_task(source, CAPTIONING, "classify its images with finetune.predict (zoo predict)")
    return caption_files(source, images, beam_width)


def evaluate(source, data: str | None = None, *, split: str = "validation", batch_size: int = 64,
             max_examples: int | None = None, eval_resize=None, eval_crop: float | None = None) -> dict:
    """Metrics of a trained model on a split of DATA (default: the run's own data and split):
    loss, accuracy and top-5 accuracy for classifiers, their images resized and cropped as the
    model's weights were evaluated (or by eval_resize: N, NxN or "none"; eval_crop: crop_pct);
    BLEU-1..4 of greedy and beam search for captioners."""
    if task_of(source) != CAPTIONING:
        return evaluate_source(source, data=data, split=split, batch_size=batch_size, max_examples=max_examples,
                               eval_resize=eval_resize, eval_crop=eval_crop)
    config = CaptioningConfig.load(source) if Path(source).is_dir() else CaptioningConfig()
    bundle = load_captions(data if data is not None else config.data, image_size=config.image_size,
                           seed=config.seed, data_dir=config.data_dir, download=config.download,
                           max_examples=max_examples)
    dataset = bundle.test if split == "test" else bundle.validation
    if dataset is None:
        raise ZooError(f"{bundle.description} has no {split} split")
    metrics = evaluate_captioner(load_captioner(source), dataset, beam_width=config.beam_width,
                                 length_penalty=config.length_penalty, batch_size=batch_size)
    metrics["split"] = split
    return metrics


def export(source, out, *, format: str = SAVED_MODEL, quantize: str = "none", name: str | None = None,
           version: int | None = None, top_k: int = 5, labels=None, data: str | None = None) -> Path:
    """Exports a run folder or `.keras` file (a classifier, an ensemble or a captioner) under the
    serving base folder OUT, as OUT/NAME/VERSION; returns that folder.

    Args:
        format: "savedmodel" (TF Serving; encoded images in, classes and probabilities out),
            "onnx" or "litert" (uint8 pixels in, probabilities out; see finetune.serving.portable).
        quantize: "none", "float16" or "int8" (ONNX and LiteRT); the export's zoo.json reports the
            size and the validation accuracy before and after.
        top_k: how many classes a SavedModel's `classes` and `scores` outputs hold.
        data: the data to calibrate and check a quantized export on (default: the run's own).
    """
    check_format(format, quantize)
    check_writable(out, "the export")
    if task_of(source) == CAPTIONING:
        if format != SAVED_MODEL:
            raise ZooError(f"captioners export as SavedModels only (--format {SAVED_MODEL}): their caption search "
                           f"turns word ids into text with a string lookup table and a string join "
                           f"(LookupTableFindV2, ReduceJoin), which tf2onnx leaves unconverted and LiteRT runs only "
                           f"with TensorFlow kernels that its interpreter lacks")
        return export_captioner(source, out, name=name, version=version)
    if format == SAVED_MODEL:
        return export_model(source, out, name=name, version=version, top_k=top_k, labels=labels)
    return export_portable(source, out, format, quantize, name=name, version=version, labels=labels, data=data)


__all__ = ["CAPTIONER", "CAPTIONING", "CLASSIFICATION", "CrossValidation", "LoadedModel", "RunResult", "caption",
           "cross_validate", "evaluate", "export", "finetune", "load", "make_config", "next_run_folder", "predict",
           "task_of"]
