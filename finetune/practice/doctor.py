"""`zoo doctor`: the sanity checks of the CS231n notes ("babysitting the learning process"), run
on a model and its training data before a long training run.

The doctor measures (initial loss, gradient norms, activation statistics, initialization scales,
update/weight ratios, an overfit test, a learning-rate range test) and hands each measurement to
its check (`finetune.practice.checks`, where the thresholds and their reasons are); the report
(`finetune.practice.report`) holds the verdicts and plots.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import keras
import numpy as np

from finetune.practice.checks import (ACTIVATION_EXAMPLES, FAIL, OVERFIT_CHECK_EVERY, PASS, WARN, check_activations,
                                      check_gradient_flow, check_initial_loss, check_initialization,
                                      check_learning_rate, check_overfit, check_update_ratios,
                                      initialization_scales, off_scale_layers)
from finetune.practice.lr_find import lr_find
from finetune.practice.report import Report, write_report
from finetune.training import diagnostics, modeling, optim
from finetune.training.config import FinetuneConfig
from finetune.training.inputs import load
from finetune.training.objectives import per_example_loss

__all__ = ["FAIL", "PASS", "WARN", "Report", "doctor", "examine"]


def initial_loss(model, images, labels) -> float:
    """The data loss alone (no regularization, dropout off), as the expected ln C assumes."""
    return float(diagnostics.loss_of(model, images, labels, training=False, regularization=False))


def _compile(model, optimizer) -> None:
    model.compile(optimizer=optimizer, loss=lambda truth, probabilities: per_example_loss(truth, probabilities))


def measure_update_ratios(model, images, labels, optimizer, steps: int = 5) -> dict[str, float]:
    """The mean per-step update/weight ratio of each layer over the first `steps` steps, the ones a
    too-high learning rate wrecks the network in (later ones may look calm on saturated units)."""
    _compile(model, optimizer)
    totals: dict[str, float] = {}
    for _ in range(steps):
        before = diagnostics.snapshot(model)
        model.train_on_batch(images, labels)
        for path, ratio in diagnostics.update_ratios(before, diagnostics.snapshot(model)).items():
            totals[path] = totals.get(path, 0.0) + ratio / steps
    return totals


def overfit(model, images, labels, optimizer, max_steps: int = 300):
    """Trains on one small batch until it is memorized (or `max_steps`); returns (training accuracy,
    steps taken, the loss before training and after every step).

    Accuracy is measured as training sees it (BatchNorm on batch statistics, which a few hundred
    steps leave the moving averages far from), without changing the model's state.
    """
    truth = np.asarray(labels)
    losses, accuracy = [initial_loss(model, images, labels)], 0.0
    _compile(model, optimizer)
    while len(losses) - 1 < max_steps:
        for _ in range(OVERFIT_CHECK_EVERY):
            losses.append(float(model.train_on_batch(images, labels)))
        if not math.isfinite(losses[-1]):
            break
        with diagnostics.state_preserved(model):
            predicted = np.argmax(model(images, training=True), axis=-1)
        accuracy = float(np.mean(predicted == truth))
        if accuracy >= 1.0:
            break
    return accuracy, len(losses) - 1, losses


def examine(build_model, images, labels, num_classes: int, make_optimizer, *, overfit_examples: int = 20,
            overfit_steps: int = 300, training: bool = True):
    """Runs every model check on a batch. `build_model()` must return the same freshly initialized
    model each call (the overfit and update checks train their own copy); `make_optimizer()` a new
    optimizer. Returns (checks, measurements for the plots)."""
    model = build_model()
    input_std = float(np.std(np.asarray(images, dtype=np.float64)))
    _, norms = diagnostics.gradient_norms(model, images, labels, training=training)
    # Every layer's output is held at once: a slice of the batch keeps big models in memory.
    statistics = diagnostics.activation_statistics(model, images[:ACTIVATION_EXAMPLES], training=training)
    scales = initialization_scales(model)
    checks = [check_initial_loss(initial_loss(model, images, labels), num_classes),
              check_initialization(scales), check_gradient_flow(norms), check_activations(statistics, input_std)]
    ratios = measure_update_ratios(build_model(), images, labels, make_optimizer())
    checks.append(check_update_ratios(ratios, off_scale_layers(scales)))
    accuracy, steps, losses = overfit(build_model(), images[:overfit_examples], labels[:overfit_examples],
                                      make_optimizer(), max_steps=overfit_steps)
    checks.append(check_overfit(accuracy, steps, len(labels[:overfit_examples]), losses))
    return checks, {"gradient_norms": norms, "activations": statistics, "update_ratios": ratios,
                    "overfit_losses": losses}


def clean_config(config: FinetuneConfig) -> FinetuneConfig:
    """The config with regularization, augmentation and schedules off: the checks' assumptions."""
    return dataclasses.replace(config, dropout=0.0, weight_decay=0.0, label_smoothing=0.0, augment="none",
                               augment_options={}, mixup=0.0, cutmix=0.0, ema=None, schedule="constant",
                               warmup_epochs=0.0, strategy="one", precision="float32").validate()


def doctor(config: FinetuneConfig, out=None, *, overfit_examples: int = 20, overfit_steps: int = 300,
           lr_find_steps: int = 100) -> Report:
    """Every check on `config`'s model and training data; with `out`, writes doctor.json and plots."""
    config.validate()
    clean = clean_config(config)
    batch_size = max(config.batch_size, overfit_examples)
    bundle, train, _, _, _ = load(clean, batch_size, drop_remainder=False)
    images, labels = next(iter(train))
    images, labels = images.numpy(), labels.numpy()
    shape = clean.input_shape()

    def build_model():
        keras.utils.set_random_seed(clean.seed)
        return modeling.build(clean, bundle.num_classes, shape)

    def make_optimizer():
        return optim.optimizer(clean.optimizer, clean.lr, momentum=clean.momentum, nesterov=clean.nesterov,
                               clip_norm=clean.clip_norm)

    # Pretrained BatchNorm runs in inference mode in these models, as in training; from scratch it learns.
    checks, measured = examine(build_model, images, labels, bundle.num_classes, make_optimizer,
                               overfit_examples=overfit_examples, overfit_steps=overfit_steps)
    range_test = lr_find(config, steps=lr_find_steps) if lr_find_steps else None
    if range_test is not None:
        checks.append(check_learning_rate(config.lr, range_test))
    report = Report(config.model, config.data or "builtin:zoo_shapes", bundle.num_classes, checks,
                    Path(out) if out is not None else None)
    if out is not None:
        write_report(report, measured, range_test)
    return report
