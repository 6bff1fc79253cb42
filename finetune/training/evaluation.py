"""A model's metrics on a dataset, scored by a task's objective (`finetune.training.objectives`)."""

from __future__ import annotations

import time
import weakref

import numpy as np
import tensorflow as tf

from finetune.training.objectives import Classification

# One traced evaluation step per (model, objective settings), reused across epochs.
_STEPS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _step(model, objective, collect: bool):
    key = (type(objective).__name__, tuple(sorted(vars(objective).items())), collect)
    steps = _STEPS.setdefault(model, {})
    if key not in steps:
        @tf.function(reduce_retracing=True)
        def step(inputs, labels):
            outputs = model(inputs, training=False)
            sums = objective.sums(labels, outputs)
            return (sums, objective.predictions(labels, outputs)) if collect else (sums, ())

        steps[key] = step
    return steps[key]


def evaluate_objective(model, dataset, objective, collect: bool = False):
    """The objective's metrics of `model` over a dataset of (inputs, labels) batches: each sum over
    the dataset divided by the count, plus "examples" (the count) and "seconds".

    With `collect` (objectives with `predictions`), also the true and predicted class of every example.
    """
    step = _step(model, objective, collect)
    totals: dict[str, float] = {}
    truths, predictions = [], []
    started = time.perf_counter()
    for inputs, labels in dataset:
        sums, predicted = step(inputs, labels)
        for name, value in sums.items():
            totals[name] = totals.get(name, 0.0) + float(value)
        if collect:
            truths.append(predicted[0].numpy())
            predictions.append(predicted[1].numpy())
    count = totals.pop("count", 0.0)
    metrics = {name: value / max(count, 1.0) for name, value in totals.items()}
    metrics.setdefault("loss", 0.0)
    metrics.setdefault("accuracy", 0.0)
    metrics.update(examples=int(count), seconds=time.perf_counter() - started)
    if collect:
        empty = np.zeros(0, np.int64)
        return metrics, (np.concatenate(truths) if truths else empty), (np.concatenate(predictions) if predictions else empty)
    return metrics


def evaluate(model, dataset, top_k: int = 5, label_smoothing: float = 0.0, collect: bool = False):
    """Loss, accuracy and top-k accuracy of a classifier on a dataset of (images, labels) batches.

    Top-k accuracy is reported only for more than k classes (below that it is always 1). With
    `collect`, also returns the true and predicted class of every example.
    """
    result = evaluate_objective(model, dataset, Classification(label_smoothing, top_k), collect=collect)
    metrics = result[0] if collect else result
    if model.output_shape[-1] <= top_k:
        metrics.pop(f"top{top_k}_accuracy", None)
    return result
