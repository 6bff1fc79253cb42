"""The learning-rate range test (Smith 2017; fastai's lr_find): raise the learning rate
exponentially over a few hundred steps, watch the loss, suggest a rate where it falls fastest."""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np

from finetune.training import modeling, optim
from finetune.training.config import FinetuneConfig
from finetune.training.inputs import load
from finetune.training.objectives import per_example_loss


@dataclasses.dataclass
class RangeTest:
    learning_rates: list[float]
    losses: list[float]  # exponentially smoothed
    suggestion: float | None
    minimum_loss_lr: float | None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def suggest(learning_rates, smoothed) -> float | None:
    """The rate of the steepest descent of the smoothed loss, before it blows up."""
    if len(smoothed) < 5:
        return None
    log_lr = np.log10(learning_rates)
    slopes = np.gradient(np.asarray(smoothed), log_lr)
    end = int(np.argmin(smoothed))  # past the minimum the loss only rises
    if end < 3:
        return float(learning_rates[end]) / 10
    return float(learning_rates[int(np.argmin(slopes[:end]))])


def range_test(model, dataset, *, optimizer="sgd", start_lr=1e-7, end_lr=10.0, steps=100, smoothing=0.9,
               divergence=4.0, label_smoothing=0.0, **optimizer_options) -> RangeTest:
    """Trains `model` for up to `steps` batches with an exponentially rising learning rate.

    Stops early when the smoothed loss exceeds `divergence` times its minimum. The model's weights
    are restored afterwards, so the test leaves it as it was.
    """
    saved = [weight.numpy() for weight in model.weights]
    rate = optim.optimizer(optimizer, start_lr, **optimizer_options)
    model.compile(optimizer=rate, loss=lambda y, p: per_example_loss(y, p, label_smoothing))
    factor = (end_lr / start_lr) ** (1.0 / max(steps - 1, 1))
    learning_rates, smoothed = [], []
    average, best = 0.0, math.inf
    batches = iter(dataset.repeat())
    for step in range(steps):
        lr = start_lr * factor**step
        model.optimizer.learning_rate = lr
        images, labels = next(batches)
        loss = float(model.train_on_batch(images, labels))
        if not math.isfinite(loss):
            break
        average = smoothing * average + (1 - smoothing) * loss
        value = average / (1 - smoothing ** (step + 1))  # bias-corrected, as in Adam
        learning_rates.append(lr)
        smoothed.append(value)
        best = min(best, value)
        if step > 5 and value > divergence * best:
            break
    for weight, value in zip(model.weights, saved):
        weight.assign(value)
    minimum = float(learning_rates[int(np.argmin(smoothed))]) if smoothed else None
    return RangeTest(learning_rates, smoothed, suggest(learning_rates, smoothed), minimum)


def lr_find(config: FinetuneConfig, steps: int = 100, start_lr: float = 1e-7, end_lr: float = 10.0) -> RangeTest:
    """The range test for a fine-tuning config, on its training data and model."""
    keras.utils.set_random_seed(config.seed)
    bundle, train, _, _, _ = load(config, config.batch_size, drop_remainder=False)
    model = modeling.build(config, bundle.num_classes, config.input_shape())
    return range_test(model, train, optimizer=config.optimizer, start_lr=start_lr, end_lr=end_lr, steps=steps,
                      label_smoothing=config.label_smoothing, momentum=config.momentum, nesterov=config.nesterov,
                      weight_decay=config.weight_decay)
