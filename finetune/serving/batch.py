"""`--mode predict`: a model's top-k predictions for every image of a data spec, as CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

import zoo
from finetune import files
from finetune.data.pipeline import load_data
from finetune.serving.loading import LoadedModel, default_class_names, load_model
from finetune.training.config import FinetuneConfig
from zoo.weights.pretrained import weights_preprocessing


def load_source(config: FinetuneConfig) -> LoadedModel:
    """The model to predict with: a run folder or `.keras` file given as --weights, else the zoo
    model with its pretrained weights (e.g. resnet50 with imagenet) and their class names."""
    if config.weights and Path(config.weights).exists() and (Path(config.weights).is_dir()
                                                             or config.weights.endswith(".keras")):
        return load_model(config.weights)
    spec = zoo.info(config.model)
    model = zoo.create(config.model, weights=config.weights, **config.model_options)
    preprocessing = weights_preprocessing(spec, config.weights, config.model_options).for_channels(model.input_shape[-1])
    warnings: list[str] = []
    return LoadedModel(model, preprocessing, default_class_names(model.output_shape[-1], warnings), "", warnings,
                       config.evaluation_transform())


def predict_data(config: FinetuneConfig, out=None, top_k: int | None = None) -> list[dict]:
    """Top-k predictions on the test split of `config.data` (its validation split when it has no
    test split); written to `out/predictions.csv` and `.json` when `out` is given."""
    loaded = load_source(config)
    top_k = max(1, min(top_k or config.top_k, len(loaded.class_names)))
    bundle = load_data(config.data, image_size=loaded.input_shape, batch_size=config.batch_size,
                       preprocessing=loaded.preprocessing, seed=config.seed,
                       validation_fraction=config.validation_fraction, data_dir=config.data_dir,
                       download=config.download, max_examples=config.max_examples, shuffle_buffer=0,
                       labels=config.labels, evaluation=loaded.evaluation)
    split, dataset = ("test", bundle.test) if bundle.test is not None else ("validation", bundle.validation)
    rows = []
    for images, labels in dataset:
        probabilities = np.asarray(loaded.model.predict_on_batch(images))
        for label, row in zip(np.asarray(labels), probabilities):
            best = np.argsort(-row, kind="stable")[:top_k]
            rows.append({"index": len(rows), "split": split, "label": bundle.class_names[int(label)],
                         "predicted": [loaded.class_names[i] for i in best],
                         "scores": [round(float(row[i]), 6) for i in best]})
    if out is not None:
        out = Path(out)
        files.write_json(out / files.PREDICTIONS_JSON, rows)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["index", "split", "label"] + [f"{kind}_{rank}" for rank in range(1, top_k + 1)
                                                        for kind in ("class", "score")])
        for row in rows:
            cells = [value for pair in zip(row["predicted"], row["scores"]) for value in pair]
            writer.writerow([row["index"], row["split"], row["label"], *cells])
        files.write_atomically(out / files.PREDICTIONS_CSV, buffer.getvalue())
    return rows


def accuracy(rows: list[dict]) -> float:
    return float(np.mean([row["predicted"][0] == row["label"] for row in rows])) if rows else 0.0


def summary(rows: list[dict]) -> str:
    return json.dumps({"examples": len(rows), "top1_agreement_with_labels": accuracy(rows)})
