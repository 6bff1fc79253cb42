"""A trained classifier with what serving it needs: its preprocessing and class names.

`load_model` reads a ``.keras`` file or a run folder, for export, predict and evaluate alike:
- a ``.keras`` file: preprocessing and class names from the record `zoo import` keeps in it
  (`zoo.weights.files.WEIGHTS_METADATA`: the weights' own convention), else preprocessing from the
  zoo spec of ``model.name`` (identity, with a warning, for models the zoo does not know); class
  names from a labels file, else ImageNet's for 1000 outputs when Keras's class index is cached,
  else ``class_0, class_1, ...``;
- a run folder: ``config.json`` and/or ``classes.json`` (``model``, ``input_shape``, ``class_names``,
  ``preprocessing``, ``evaluation``) beside ``best.keras`` (or ``last.keras``).
The evaluation transform (resize and crop, `zoo.eval_transform`) comes from the same records: the
weights' source's for an imported tag or a run fine-tuned from one; the squash of the whole image
to the input where they say nothing (runs from before it was recorded, files from elsewhere).
Models trained with mixed precision load computing in float32 (`float32_model`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path


from finetune import files
from finetune.serving.staging import find_saved_model
from finetune.training.precision import float32_model
from zoo import imagenet, registry
from zoo.errors import ZooError
from zoo.eval_transform import SQUASH_BILINEAR, EvalTransform
from zoo.preprocessing import Preprocessing
from zoo.weights.archives import read_json_member
from zoo.weights.files import KERAS_CONFIG, load_model_file, read_keras_metadata
from zoo.weights.pretrained import preprocessing_from_dict

logger = logging.getLogger(__name__)

RUN_METADATA = (files.CONFIG, files.CLASSES)  # read in this order, the latter winning

IDENTITY = Preprocessing("identity", mean=(0.0,), std=(1.0,))


@dataclasses.dataclass
class LoadedModel:
    """A Keras classifier with what serving it needs: its preprocessing and class names."""

    model: object  # keras.Model taking preprocessed pixels, ending in softmax
    preprocessing: Preprocessing
    class_names: list[str]
    keras_path: str  # the .keras file it was loaded from
    warnings: list[str] = dataclasses.field(default_factory=list)
    evaluation: EvalTransform = SQUASH_BILINEAR  # how an image of any size becomes its input

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(dim) for dim in self.model.input_shape[1:])


def read_labels(path) -> list[str]:
    """Class names from a text file, one per line, in the model's output order."""
    try:
        lines = Path(path).read_text(encoding="utf8").splitlines()
    except OSError as error:
        raise ZooError(f"cannot read the labels file {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ZooError(f"{path} is not UTF-8 text: save the labels file as UTF-8, one class name per line") from None
    names = [line.strip() for line in lines]
    while names and not names[-1]:
        names.pop()
    return names


def _output_size(model, source) -> int:
    shape = model.output_shape
    if not isinstance(shape, tuple) or len(shape) != 2:
        raise ZooError(f"{source} is not a classifier: its output has shape {shape}, not (batch, classes)")
    return int(shape[-1])


def _preprocessing_from_spec(model, warnings: list[str]) -> Preprocessing:
    channels = int(model.input_shape[-1])
    if model.name in registry.list_models():
        return registry.get_spec(model.name).preprocessing.for_channels(channels)
    warnings.append(f"{model.name} is not a zoo model and its file says nothing of preprocessing: "
                    f"pixels in [0, 255] go in unchanged")
    return IDENTITY


def default_class_names(num_classes: int, warnings: list[str]) -> list[str]:
    if num_classes == 1000:
        names = imagenet.class_names(download=False)
        if names is not None:
            return names
    warnings.append("no class names known: pass --labels FILE (one name per line) to name them")
    return [f"class_{index}" for index in range(num_classes)]


def _is_run_folder(folder: Path) -> bool:
    return folder.is_dir() and any((folder / name).is_file() for name in RUN_METADATA)


def _run_metadata(folder: Path) -> dict:
    """config.json and classes.json of a run folder, merged; classes.json (the run's resolved
    class names, input shape and preprocessing) wins where both say something."""
    metadata: dict = {}
    for name in RUN_METADATA:
        path = folder / name
        if not path.is_file():
            continue
        try:
            values = json.loads(path.read_text(encoding="utf8"))
        except (OSError, ValueError, RecursionError) as error:
            raise ZooError(f"cannot read {path}: {error}") from None
        metadata.update(values if isinstance(values, dict) else {"class_names": values})
    return metadata


def _run_model_path(folder: Path) -> str:
    for name in files.RUN_MODELS:
        if (folder / name).is_file():
            return str(folder / name)
    raise ZooError(f"{folder} holds no trained model ({' or '.join(files.RUN_MODELS)}); has the run saved an epoch yet?")


def _not_a_model(source: Path) -> ZooError:
    """What to say of a SOURCE that is neither a run folder nor a `.keras` file."""
    export = find_saved_model(source) if source.is_dir() else None
    if export is None and source.is_dir():  # a TF Serving base folder: BASE/NAME/VERSION
        export = next(filter(None, (find_saved_model(child) for child in sorted(source.iterdir())
                                    if child.is_dir())), None)
    if export is not None:
        return ZooError(f"{source} is a SavedModel export, which only `zoo predict` takes: give the run folder or "
                        f".keras file it was exported from (the export keeps a copy, "
                        f"{export / files.EXPORT_KERAS_COPY})")
    if not source.exists():
        return ZooError(f"no such run folder or .keras file: {source}")
    return ZooError(f"{source} is neither a .keras file nor a run folder (with {' or '.join(RUN_METADATA)})")


def load_model(source, labels=None) -> LoadedModel:
    """Loads a `.keras` file or a run folder (see the module docstring for where each piece comes from).

    Args:
        source: a `.keras` file or a run folder.
        labels: an optional text file of class names, which overrides any other.
    """
    source = Path(source)
    warnings: list[str] = []
    if task_of(source) == CAPTIONING:
        raise ZooError(f"{source} is a captioning model, not a classifier: caption images with `zoo caption`, "
                       f"evaluate and export it with `zoo evaluate` and `zoo export`")
    if _is_run_folder(source):
        keras_path = _run_model_path(source)
        model = float32_model(load_model_file(keras_path))
        metadata = _run_metadata(source)
        preprocessing = (Preprocessing(**{key: tuple(value) if isinstance(value, list) else value
                                          for key, value in metadata["preprocessing"].items()})
                         if "preprocessing" in metadata else _preprocessing_from_spec(model, warnings))
        class_names = metadata.get("class_names")
        evaluation = metadata.get("evaluation")
    elif source.suffix == ".keras":
        keras_path = str(source)
        model = float32_model(load_model_file(keras_path))
        record = read_keras_metadata(keras_path) or {}
        preprocessing = (preprocessing_from_dict(record["preprocessing"]).for_channels(int(model.input_shape[-1]))
                         if record.get("preprocessing") else _preprocessing_from_spec(model, warnings))
        class_names = record.get("class_names") if isinstance(record.get("class_names"), list) else None
        evaluation = record.get("evaluation")
    else:
        raise _not_a_model(source)
    num_classes = _output_size(model, source)
    if labels is not None:
        class_names = read_labels(labels)
    if class_names is None:
        class_names = default_class_names(num_classes, warnings)
    if len(class_names) != num_classes:
        raise ZooError(f"{source} has {num_classes} outputs but {len(class_names)} class names were given")
    for warning in warnings:
        logger.warning(warning)
    return LoadedModel(model, preprocessing, [str(name) for name in class_names], keras_path, warnings,
                       EvalTransform.from_dict(evaluation) if evaluation else SQUASH_BILINEAR)


CLASSIFICATION, CAPTIONING = "classification", "captioning"


def task_of(source) -> str | None:
    """What a trained SOURCE does: "classification" or "captioning" (None when it is neither a
    run folder, a `.keras` file nor an export of the kit). Run folders and exports say so in their
    config.json / assets.extra/zoo.json (runs from before the captioner have no "task": classifiers);
    a `.keras` file holding a zoo Captioner is a captioner."""
    source = Path(source)
    if source.is_dir():
        config = source / files.CONFIG
        if config.is_file():
            try:
                values = json.loads(config.read_text(encoding="utf8"))
            except (OSError, ValueError, RecursionError) as error:
                raise ZooError(f"cannot read {config}: {error}") from None
            return values.get("task", CLASSIFICATION) if isinstance(values, dict) else None
        if (source / files.CLASSES).is_file():
            return CLASSIFICATION
        for folder in [source, *sorted(child for child in source.iterdir() if child.is_dir())]:
            metadata = folder / files.EXPORT_METADATA
            if metadata.is_file():
                try:
                    return json.loads(metadata.read_text(encoding="utf8")).get("task", CLASSIFICATION)
                except (OSError, ValueError, RecursionError) as error:
                    raise ZooError(f"cannot read {metadata}: {error}") from None
        return None
    if source.suffix == ".keras" and source.is_file():
        try:  # read within bounds: the file may come from anywhere
            config = read_json_member(str(source), KERAS_CONFIG, "Keras model")
        except ZooError:
            return None  # not a readable .keras archive: the loader says what is wrong with it
        if config is None:
            return None
        return CAPTIONING if isinstance(config, dict) and config.get("class_name") == "Captioner" else CLASSIFICATION
    return None


def _listed(names, limit: int = 5) -> str:
    names = list(names)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_class_names(data_names, model_names, data: str, model: str) -> None:
    """Refuses to score a model on data labelled with other classes (the accuracy would be
    meaningless), saying which classes differ, or that the order does."""
    data_names, model_names = [str(name) for name in data_names], [str(name) for name in model_names]
    if data_names == model_names:
        return
    only_data = [name for name in data_names if name not in model_names]
    only_model = [name for name in model_names if name not in data_names]
    if not only_data and not only_model:
        raise ZooError(f"{data} has the classes of {model} in another order ({_listed(data_names)} against "
                       f"{_listed(model_names)}): labels would be compared with the wrong classes")
    parts = []
    if only_data:
        parts.append(f"{data} has {_listed(only_data)}, which {model} does not predict")
    if only_model:
        parts.append(f"{model} predicts {_listed(only_model)}, which {data} does not have")
    raise ZooError("; ".join(parts) + ": score it on data with the classes it was trained on")
