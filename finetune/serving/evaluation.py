"""`zoo evaluate`: a trained model's metrics on a data split."""

from __future__ import annotations

from finetune.serving.loading import check_class_names, load_model
from finetune.serving.rundata import load_run_data
from finetune.training.evaluation import evaluate
from zoo.errors import ZooError


def evaluate_source(source, *, data=None, split="validation", batch_size=64, max_examples=None, top_k=5) -> dict:
    """Loss, accuracy and top-k accuracy of a run folder or `.keras` file on `split` of `data`
    (default: the run's own data, with the run's seed, so its validation split is the same)."""
    loaded = load_model(source)
    bundle = load_run_data(source, loaded.input_shape, data=data, preprocessing=loaded.preprocessing,
                           batch_size=batch_size, max_examples=max_examples)
    dataset = bundle.test if split == "test" else bundle.validation
    if dataset is None:
        raise ZooError(f"{bundle.description} has no {split} split")
    check_class_names(bundle.class_names, loaded.class_names, bundle.description.split(" (")[0], str(source))
    metrics = evaluate(loaded.model, dataset, top_k=min(top_k, len(loaded.class_names)))
    metrics["split"] = split
    return metrics
