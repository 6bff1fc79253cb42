"""Numbers that tell whether a network is learning, after the CS231n notes on babysitting training.

- per-layer gradient norms, activation statistics and update/weight ratios (`zoo doctor` checks
  them before a run; the `TrainingMonitor` logs them to TensorBoard during one);
- `diagnose`: a one-line verdict on a run from its train/validation history.

A "layer" here is a leaf layer with trainable weights (nested models such as the fine-tunable
model's backbone are looked into), named by its path, e.g. ``backbone/c1``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf

from finetune.training.objectives import per_example_loss

# Activations that squash, with the output range where a unit is saturated (its gradient ~0).
SATURATION = {"tanh": 0.99, "sigmoid": 0.99, "hard_sigmoid": 0.99, "softsign": 0.99}
RECTIFIERS = ("relu", "relu6", "elu", "selu", "gelu", "silu", "swish", "leaky_relu")
HISTOGRAM_VALUES = 4000  # values kept per layer for the histograms


def _sublayers(model, prefix=""):
    """(path, layer) of every layer, looking inside nested models, in order."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        path = f"{prefix}{layer.name}"
        if isinstance(layer, keras.Model):
            yield from _sublayers(layer, prefix=f"{path}/")
        else:
            yield path, layer


def weighted_layers(model) -> list[tuple[str, keras.layers.Layer]]:
    """(path, layer) of the leaf layers that have trainable weights."""
    return [(path, layer) for path, layer in _sublayers(model) if layer.trainable_weights]


def kernel_of(layer):
    """A layer's main weight (the first trainable one of rank 2 or more), or None."""
    return next((weight for weight in layer.trainable_weights if len(weight.shape) >= 2), None)


def glorot_and_he_std(shape) -> tuple[float, float]:
    """The standard deviations Glorot (2 / (fan_in + fan_out)) and He (2 / fan_in) initialization
    give a kernel of `shape` (dense: (in, out); convolution: (*window, in, out))."""
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    fan_in, fan_out = receptive * int(shape[-2]), receptive * int(shape[-1])
    return math.sqrt(2.0 / (fan_in + fan_out)), math.sqrt(2.0 / fan_in)


def activation_name(layer) -> str | None:
    """The nonlinearity a layer applies to its output (fused, e.g. Conv2D(activation=...), or its
    own layer), or None for linear layers and for layers without one."""
    if isinstance(layer, keras.layers.ReLU):
        return "relu"
    if isinstance(layer, keras.layers.LeakyReLU):
        return "leaky_relu"
    function = getattr(layer, "activation", None)
    name = getattr(function, "__name__", None)
    return None if name in (None, "linear") else name


@contextlib.contextmanager
def state_preserved(model):
    """Restores the non-trainable variables (BatchNorm's moving statistics) on exit, so a forward
    pass in training mode leaves the model as it found it."""
    saved = [(variable, variable.numpy()) for variable in model.non_trainable_variables]
    try:
        yield
    finally:
        for variable, value in saved:
            variable.assign(value)


def loss_of(model, images, labels, training: bool = False, regularization: bool = True):
    """Mean cross-entropy of `model` on a batch (plus regularization losses, when asked)."""
    probabilities = model(images, training=training)
    loss = tf.reduce_mean(per_example_loss(tf.convert_to_tensor(labels), probabilities))
    if regularization and model.losses:
        loss += tf.add_n(model.losses)
    return loss


def gradient_norms(model, images, labels, training: bool = True) -> tuple[float, dict[str, float]]:
    """The loss of a batch and the gradient norm of each weighted layer (all its trainable
    variables together); a layer missing from the loss gets 0. The model is left unchanged."""
    layers = weighted_layers(model)
    with state_preserved(model):
        with tf.GradientTape() as tape:
            loss = loss_of(model, images, labels, training=training)
        gradients = tape.gradient(loss, [layer.trainable_weights for _, layer in layers])
    norms = {}
    for (path, _), layer_gradients in zip(layers, gradients):
        present = [tf.cast(gradient, tf.float32) for gradient in layer_gradients if gradient is not None]
        norms[path] = float(tf.linalg.global_norm(present)) if present else 0.0
    return float(loss), norms


def snapshot(model) -> dict[str, list[np.ndarray]]:
    """A copy of each weighted layer's trainable weights."""
    return {path: [variable.numpy() for variable in layer.trainable_weights] for path, layer in weighted_layers(model)}


def _norm(arrays) -> float:
    return math.sqrt(sum(float(np.sum(np.square(array, dtype=np.float64))) for array in arrays))


def weight_norms(weights: dict[str, list[np.ndarray]]) -> dict[str, float]:
    return {path: _norm(values) for path, values in weights.items()}


def update_ratios(before: dict, after: dict, steps: int = 1) -> dict[str, float]:
    """Per layer, the norm of the update of one step over the norm of the weights (CS231n: about
    1e-3 is healthy). With `steps` > 1, the update between the snapshots is spread evenly over them.
    A layer whose weights were all zero gets inf when they moved, and no entry when they did not."""
    ratios = {}
    for path, old in before.items():
        new = after.get(path)
        if new is None:
            continue
        scale = _norm(old)
        update = _norm([n - o for n, o in zip(new, old)]) / max(steps, 1)
        if scale == 0 and update == 0:
            continue  # all-zero weights that do not move: no ratio (the initialization check says why)
        ratios[path] = update / scale if scale > 0 else math.inf
    return ratios


@dataclasses.dataclass
class LayerActivations:
    """Statistics of one layer's outputs on a batch."""

    path: str
    activation: str  # the nonlinearity: relu, tanh, sigmoid, ...
    mean: float
    std: float
    dead_fraction: float  # rectifiers: units (channels) never positive on the batch
    saturated_fraction: float  # squashing functions: outputs within 1% of their bounds
    values: np.ndarray  # a sample of the outputs, for histograms

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values.pop("values")
        return values


@contextlib.contextmanager
def recorded_outputs(layers: dict):
    """Records the output of each layer in `layers` ({path: layer}) while the block runs eagerly.

    Each layer's `call` is wrapped for the duration (an instance attribute over the method), which
    reaches layers inside nested models and works for any architecture, where a probe model built
    from `layer.output` cannot see past a nested model's own graph.
    """
    outputs: dict = {}
    for path, layer in layers.items():
        def record(*args, _call=layer.call, _path=path, **kwargs):
            outputs[_path] = result = _call(*args, **kwargs)
            return result
        object.__setattr__(layer, "call", record)  # past Keras's attribute tracking
    try:
        yield outputs
    finally:
        for layer in layers.values():
            object.__delattr__(layer, "call")


def activation_statistics(model, images, training: bool = True, seed: int = 0) -> list[LayerActivations]:
    """Statistics of the output of every layer with a nonlinearity (softmax aside), in order."""
    layers = {path: layer for path, layer in _sublayers(model) if activation_name(layer) not in (None, "softmax")}
    with state_preserved(model), recorded_outputs(layers) as outputs:
        model(images, training=training)
    rng = np.random.default_rng(seed)
    statistics = []
    for path, layer in layers.items():
        if path not in outputs:
            continue
        name = activation_name(layer)
        values = np.asarray(outputs[path], dtype=np.float64)
        units = values.reshape(-1, values.shape[-1])
        dead = float(np.mean(np.all(units <= 0, axis=0))) if name in RECTIFIERS else 0.0
        bound = SATURATION.get(name)
        if bound is None:
            saturated = 0.0
        elif name == "tanh" or name == "softsign":
            saturated = float(np.mean(np.abs(values) > bound))
        else:
            saturated = float(np.mean((values > bound) | (values < 1 - bound)))
        flat = values.ravel()
        sample = rng.choice(flat, size=min(HISTOGRAM_VALUES, flat.size), replace=False)
        statistics.append(LayerActivations(path, name, float(flat.mean()), float(flat.std()), dead, saturated, sample))
    return statistics


class TrainingMonitor:
    """During training: per-layer update/weight ratios (the first steps of each epoch) and
    gradient norms (on a fixed batch, at each epoch's end), written to TensorBoard as
    ``update_ratio/<layer>`` and ``gradient_norm/<layer>`` beside the epoch scalars.

    The trainer calls `before_epoch` and `after_first_steps`; the loop calls `end_epoch`.
    """

    def __init__(self, model, sample, writer):
        self.model = model
        self.images, self.labels = sample
        self.writer = writer
        self._before: dict | None = None
        self.ratios: dict[str, float] = {}

    def before_epoch(self) -> None:
        self._before = snapshot(self.model)

    def after_first_steps(self, steps: int) -> None:
        if self._before is not None:
            self.ratios = update_ratios(self._before, snapshot(self.model), steps)
            self._before = None  # a copy of every weight: free it now

    def end_epoch(self, epoch: int) -> dict:
        _, norms = gradient_norms(self.model, self.images, self.labels)
        with self.writer.as_default(step=epoch):
            for path, value in norms.items():
                tf.summary.scalar(f"gradient_norm/{path}", value)
            for path, value in self.ratios.items():
                if math.isfinite(value):
                    tf.summary.scalar(f"update_ratio/{path}", value)
        self.writer.flush()
        return {"gradient_norms": norms, "update_ratios": dict(self.ratios)}


def monitor_for(config, model, dataset, writer) -> TrainingMonitor | None:
    """The monitor of a run, on the first batch of `dataset`; None when config.diagnostics is off,
    there is no TensorBoard writer (no run folder) or no batch."""
    if not config.diagnostics or writer is None:
        return None
    sample = next(iter(dataset), None)
    return TrainingMonitor(model, sample, writer) if sample is not None else None


# --- the verdict on a finished run -----------------------------------------------------------------

# Train accuracy this far above validation accuracy is overfitting (a gap of 10 points is where
# CS231n's notes and most practice call the gap "large").
OVERFIT_GAP = 0.10
# Validation loss this far above its best, with the training loss still falling, is overfitting.
VALIDATION_LOSS_RISE = 0.10
# Validation loss over this many times the training loss is overfitting even with close accuracies
# (train loss 0.006 and validation 0.42 came with accuracies 9 points apart), where it is also
# OVERFIT_LOSS_EXCESS above it: two tiny losses (0.001 and 0.004) are no sign of it.
OVERFIT_LOSS_RATIO = 2.0
OVERFIT_LOSS_EXCESS = 0.05
# A last epoch that still made this much of the loss's whole descent means the run stopped too early.
STILL_IMPROVING = 0.05
# Below this training accuracy, with no gap and no progress, the model underfits.
UNDERFIT_ACCURACY = 0.90


def _last_gain(losses: list[float]) -> float:
    """The last epoch's drop in loss as a fraction of the run's whole drop (so a tiny loss that
    still halves counts for little, and a big one still falling fast counts for much)."""
    descent = losses[0] - min(losses)
    return (losses[-2] - losses[-1]) / descent if descent > 0 else 0.0


def diagnose(history: list[dict]) -> dict:
    """A verdict on a run from its history rows (loss, accuracy, val_loss, val_accuracy per epoch):
    {"verdict": overfitting | not converged | underfitting | good fit | too short, "message": ...}.

    Order matters: a gap between train and validation (in accuracy, or validation loss a multiple of
    the training loss) says overfitting whatever else is true; losses still falling at the end say
    train longer before judging capacity.
    """
    rows = [{key: float(row[key]) for key in ("loss", "accuracy", "val_loss", "val_accuracy")} for row in history]
    if len(rows) < 3:
        return {"verdict": "too short", "message": "too few epochs (under 3) to judge the curves: train longer"}
    last = rows[-1]
    gap = last["accuracy"] - last["val_accuracy"]
    val_losses = [row["val_loss"] for row in rows]
    best_epoch = int(np.argmin(val_losses))
    rise = val_losses[-1] / val_losses[best_epoch] - 1 if val_losses[best_epoch] > 0 else 0.0
    train_falling = last["loss"] < rows[best_epoch]["loss"]
    ratio = last["val_loss"] / last["loss"] if last["loss"] > 0 else math.inf
    losses_apart = ratio > OVERFIT_LOSS_RATIO and last["val_loss"] - last["loss"] > OVERFIT_LOSS_EXCESS
    accuracies = f"train accuracy {last['accuracy']:.3f}, validation {last['val_accuracy']:.3f}"
    losses = f"train loss {last['loss']:.3f}, validation {last['val_loss']:.3f}"
    if gap > OVERFIT_GAP or losses_apart or (rise > VALIDATION_LOSS_RISE and train_falling):
        return {"verdict": "overfitting",
                "message": f"overfitting ({accuracies}; {losses}, {ratio:.1f}x; validation loss best at epoch "
                           f"{best_epoch + 1}): increase regularization (--weight-decay, --dropout, --augment) "
                           f"or get more data"}
    train_gain = _last_gain([row["loss"] for row in rows])
    val_gain = _last_gain(val_losses) if best_epoch == len(rows) - 1 else 0.0
    if max(train_gain, val_gain) > STILL_IMPROVING:
        return {"verdict": "not converged",
                "message": f"not converged ({accuracies}; the last epoch made {100 * max(train_gain, val_gain):.0f}% "
                           f"of the loss's whole descent): train longer (--epochs)"}
    if last["accuracy"] < UNDERFIT_ACCURACY:
        return {"verdict": "underfitting",
                "message": f"underfitting ({accuracies}, both low and close, the loss flat): more capacity or a "
                           "higher learning rate (a bigger model, fewer frozen layers, a higher --lr)"}
    return {"verdict": "good fit", "message": f"good fit ({accuracies}; {losses}): train and validation agree"}
