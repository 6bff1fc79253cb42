"""Optimizers and learning-rate schedules, from Keras's own classes."""

from __future__ import annotations

import math

import keras

from zoo.errors import ZooError


@keras.saving.register_keras_serializable(package="zoo")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to the base schedule's first value over `warmup_steps`, then the base."""

    def __init__(self, after, warmup_steps: int):
        self.after = after
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warm = self.after(0) * (step + 1.0) / max(self.warmup_steps, 1)
        return keras.ops.where(step < self.warmup_steps, warm, self.after(step - self.warmup_steps))

    def get_config(self):
        return {"after": keras.saving.serialize_keras_object(self.after), "warmup_steps": self.warmup_steps}

    @classmethod
    def from_config(cls, config):
        return cls(keras.saving.deserialize_keras_object(config["after"]), config["warmup_steps"])


def schedule(name: str, lr: float, *, steps_per_epoch: int, epochs: int, warmup_epochs: float = 0.0,
             step_every: int = 10, decay_rate: float = 0.1):
    """A learning-rate schedule over optimizer steps: constant, step decay, exponential or cosine,
    each with an optional linear warmup."""
    steps_per_epoch = max(int(steps_per_epoch), 1)
    warmup_steps = int(round(warmup_epochs * steps_per_epoch))
    decay_steps = max(epochs * steps_per_epoch - warmup_steps, 1)
    if name == "constant":
        base = keras.optimizers.schedules.PiecewiseConstantDecay([1], [lr, lr])
    elif name == "step":
        # PiecewiseConstantDecay keeps a value up to and including its boundary step
        boundaries = [step_every * steps_per_epoch * index - 1
                      for index in range(1, max(epochs // max(step_every, 1), 0) + 1)]
        values = [lr * decay_rate**index for index in range(len(boundaries) + 1)]
        base = (keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values) if boundaries
                else keras.optimizers.schedules.PiecewiseConstantDecay([1], [lr, lr]))
    elif name == "exponential":
        base = keras.optimizers.schedules.ExponentialDecay(lr, steps_per_epoch, decay_rate ** (1.0 / max(step_every, 1)))
    elif name == "cosine":
        base = keras.optimizers.schedules.CosineDecay(lr, decay_steps, alpha=0.0)
    else:
        raise ZooError(f"unknown schedule {name!r}")
    return WarmupSchedule(base, warmup_steps) if warmup_steps else base


def optimizer(name: str, learning_rate, *, momentum: float = 0.9, nesterov: bool = True, weight_decay: float = 0.0,
              clip_norm: float | None = None, ema: float | None = None):
    """A Keras optimizer. Weight decay is decoupled (AdamW-style `weight_decay`) for every optimizer
    that takes it; `clip_norm` clips each gradient's norm; `ema` keeps a moving average of weights."""
    common = {"learning_rate": learning_rate, "weight_decay": weight_decay or None}
    if clip_norm:
        common["clipnorm"] = clip_norm
    if ema:
        common.update(use_ema=True, ema_momentum=ema)
    if name == "sgd":
        return keras.optimizers.SGD(momentum=momentum, nesterov=nesterov, **common)
    if name == "adam":
        return keras.optimizers.Adam(**common)
    if name == "adamw":
        common["weight_decay"] = weight_decay or 0.004
        return keras.optimizers.AdamW(**common)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(momentum=momentum, **common)
    raise ZooError(f"unknown optimizer {name!r}")


def cosine_value(lr: float, step: int, total: int) -> float:
    """The cosine schedule in plain Python (for tests and plots)."""
    return 0.5 * lr * (1 + math.cos(math.pi * min(step, total) / total))
