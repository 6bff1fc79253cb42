"""`zoo evaluate`: a trained model's metrics on a data split."""

from __future__ import annotations

from pathlib import Path

from finetune import files
from finetune.data.pipeline import load_data
from finetune.serving.loading import check_class_names, load_model
from finetune.training.runfolder import RunFolder
from finetune.training.evaluation import evaluate
from zoo.errors import ZooError


def evaluate_source(source, *, data=None, split="validation", batch_size=64, max_examples=None, top_k=5) -> dict:
    """Loss, accuracy and top-k accuracy of a run folder or `.keras` file on `split` of `data`
    (default: the run's own data, with the run's seed, so its validation split is the same)."""
    loaded = load_model(source)
    run_config = {}
    if Path(source).is_dir() and (Path(source) / files.CONFIG).is_file():
        run_config = RunFolder(source, writes=False).read_json(files.CONFIG)
    bundle = load_data(
        data if data is not None else run_config.get("data"), image_size=loaded.input_shape, batch_size=batch_size,
        preprocessing=loaded.preprocessing, seed=run_config.get("seed", 0),
        validation_fraction=run_config.get("validation_fraction", 0.2), data_dir=run_config.get("data_dir"),
        max_examples=max_examples, shuffle_buffer=0, labels=run_config.get("labels") if data is None else None,
    )
    dataset = bundle.test if split == "test" else bundle.validation
    if dataset is None:
        raise ZooError(f"{bundle.description} has no {split} split")
    check_class_names(bundle.class_names, loaded.class_names, bundle.description.split(" (")[0], str(source))
    metrics = evaluate(loaded.model, dataset, top_k=min(top_k, len(loaded.class_names)))
    metrics["split"] = split
    return metrics
