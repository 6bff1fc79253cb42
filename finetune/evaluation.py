"""`zoo evaluate`: a trained model's metrics on a data split."""

from __future__ import annotations

import json
from pathlib import Path

from finetune.inference import RUN_CONFIG, load_model
from finetune.trainer import evaluate


def evaluate_source(source, *, data=None, split="validation", batch_size=64, max_examples=None, top_k=5) -> dict:
    """Loss, accuracy and top-k accuracy of a run folder or `.keras` file on `split` of `data`
    (default: the run's own data, with the run's seed, so its validation split is the same)."""
    from finetune.data import load_data

    loaded = load_model(source)
    run_config = {}
    if Path(source).is_dir() and (Path(source) / RUN_CONFIG).is_file():
        run_config = json.loads((Path(source) / RUN_CONFIG).read_text())
    bundle = load_data(
        data if data is not None else run_config.get("data"), image_size=loaded.input_shape, batch_size=batch_size,
        preprocessing=loaded.preprocessing, seed=run_config.get("seed", 0),
        validation_fraction=run_config.get("validation_fraction", 0.2), data_dir=run_config.get("data_dir"),
        max_examples=max_examples, shuffle_buffer=0,
    )
    dataset = bundle.test if split == "test" else bundle.validation
    if dataset is None:
        from zoo.errors import ZooError

        raise ZooError(f"{bundle.description} has no {split} split")
    metrics = evaluate(loaded.model, dataset, top_k=min(top_k, len(loaded.class_names)))
    metrics["split"] = split
    return metrics
