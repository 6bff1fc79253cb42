"""Model ensembles (CS231n: "train several independent models and average their predictions"):
the members' predicted probabilities averaged, in one Keras model that exports as one SavedModel.

The ensemble takes raw pixels in [0, 255]: each member keeps its own preprocessing (and input size,
through a Resizing layer) inside the ensemble's graph, so runs with different conventions combine.
Its folder is a run folder (best.keras, classes.json with identity preprocessing, ensemble.json),
so `zoo predict`, `zoo evaluate` and `zoo export` take it like any run.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras

from finetune import files
from finetune.data.pipeline import load_data
from finetune.serving.loading import CAPTIONING, IDENTITY, LoadedModel, check_class_names, load_model, task_of
from finetune.training.evaluation import evaluate
from finetune.training.runfolder import prepare
from zoo.errors import ZooError
from zoo.layers import preprocessing_layer

# Settings that decide which examples a run's validation split holds.
SPLIT_SETTINGS = ("data", "labels", "seed", "validation_fraction", "max_examples", "data_dir")


def load_members(sources) -> list[LoadedModel]:
    """Loads run folders (or .keras files) that can be averaged: same classes in the same order,
    same channels."""
    if len(sources) < 2:
        raise ZooError("an ensemble needs at least two runs")
    for source in sources:
        if task_of(source) == CAPTIONING:
            raise ZooError(f"{source} is a captioning run: ensembles average classifiers' probabilities")
    members = [load_model(source) for source in sources]
    first = members[0]
    for source, member in zip(sources[1:], members[1:]):
        if member.class_names != first.class_names:
            raise ZooError(f"{source} predicts classes {_short(member.class_names)} but {sources[0]} predicts "
                           f"{_short(first.class_names)}: ensemble only runs trained on the same classes")
        if member.input_shape[-1] != first.input_shape[-1]:
            raise ZooError(f"{source} takes {member.input_shape[-1]}-channel images and {sources[0]} "
                           f"{first.input_shape[-1]}-channel ones: ensemble runs with the same --channels")
    return members


def _short(names: list[str]) -> str:
    return "[" + ", ".join(names[:5]) + (", ..." if len(names) > 5 else "") + "]"


def build_ensemble(members: list[LoadedModel]) -> tuple[keras.Model, list[keras.Model]]:
    """The ensemble (raw pixels -> averaged probabilities) and, sharing its layers, each member
    as a raw-pixels model (for comparing members with the ensemble on the same data)."""
    height = max(member.input_shape[0] for member in members)
    width = max(member.input_shape[1] for member in members)
    channels = members[0].input_shape[-1]
    pixels = keras.Input(shape=(height, width, channels), name="image")
    outputs = []
    for index, member in enumerate(members):
        x = pixels
        if member.input_shape[:2] != (height, width):
            x = keras.layers.Resizing(*member.input_shape[:2], name=f"resize_{index}")(x)
        x = preprocessing_layer(member.preprocessing, name=f"preprocessing_{index}")(x)
        member.model.name = f"member_{index}"  # members are often the same architecture: names must differ
        outputs.append(member.model(x, training=False))
    ensemble = keras.Model(pixels, keras.layers.Average(name="predictions")(outputs), name="ensemble")
    pipelines = [keras.Model(pixels, output, name=f"member_{index}_pipeline") for index, output in enumerate(outputs)]
    return ensemble, pipelines


def split_settings(source) -> dict:
    """What decides a run's validation split, from its config.json (empty for a bare .keras file)."""
    path = Path(source) / files.CONFIG
    if not path.is_file():
        return {}
    values = json.loads(path.read_text())
    return {key: values.get(key) for key in SPLIT_SETTINGS}


def data_settings(sources, split: str) -> dict:
    """The members' common data settings. On the validation split they must agree: a member whose
    split differs trained on some of the others' validation examples, which would flatter it."""
    settings = [split_settings(source) for source in sources]
    if split == "validation" and any(other != settings[0] for other in settings[1:]):
        differing = sorted({key for other in settings[1:] for key in SPLIT_SETTINGS
                            if other.get(key) != settings[0].get(key)})
        raise ZooError(f"the runs differ in {', '.join(differing)}, so their validation splits hold different "
                       f"examples: use --split test, or runs trained with the same data and --seed")
    return settings[0]


@dataclasses.dataclass
class EnsembleResult:
    members: list[dict]  # per member: source and metrics
    ensemble: dict  # the ensemble's metrics
    split: str
    out: Path | None

    @property
    def gain(self) -> float:
        """The ensemble's accuracy over the members' mean accuracy."""
        mean = sum(member["accuracy"] for member in self.members) / len(self.members)
        return self.ensemble["accuracy"] - mean


def ensemble(sources, out=None, *, data=None, split: str = "validation", batch_size: int = 64,
             max_examples: int | None = None) -> EnsembleResult:
    """Averages the runs in `sources`, evaluates each and the ensemble on `split` of `data`
    (default: the runs' own data and split), and writes the ensemble's run folder to `out`."""
    sources = [str(source) for source in sources]
    members = load_members(sources)
    settings = data_settings(sources, split)
    model, pipelines = build_ensemble(members)
    bundle = load_data(
        data if data is not None else settings.get("data"), image_size=tuple(model.input_shape[1:]),
        batch_size=batch_size, preprocessing=None, seed=settings.get("seed") or 0,
        validation_fraction=settings.get("validation_fraction") or 0.2, data_dir=settings.get("data_dir"),
        max_examples=max_examples if max_examples is not None else settings.get("max_examples"), shuffle_buffer=0,
        labels=settings.get("labels") if data is None else None)
    dataset = bundle.test if split == "test" else bundle.validation
    if dataset is None:
        raise ZooError(f"{bundle.description} has no {split} split")
    check_class_names(bundle.class_names, members[0].class_names, bundle.description.split(" (")[0], "the runs")
    top_k = min(5, len(members[0].class_names))
    results = [{"source": source, **evaluate(pipeline, dataset, top_k)} for source, pipeline in zip(sources, pipelines)]
    result = EnsembleResult(results, evaluate(model, dataset, top_k), split, Path(out) if out is not None else None)
    if out is not None:
        save(model, members, result)
    return result


def save(model: keras.Model, members: list[LoadedModel], result: EnsembleResult) -> None:
    """The ensemble's run folder: best.keras, classes.json (raw pixels in), ensemble.json."""
    out = prepare(result.out, resumable=False)
    files.save_model_atomically(model, out / files.BEST)
    channels = int(model.input_shape[-1])
    files.write_json(out / files.CLASSES, {
        "model": "ensemble", "class_names": members[0].class_names, "input_shape": list(model.input_shape[1:]),
        "preprocessing": IDENTITY.for_channels(channels).to_dict()})
    files.write_json(out / files.ENSEMBLE, {"split": result.split, "members": result.members,
                                         "ensemble": result.ensemble, "gain": result.gain})
