"""The training loop every mode and every tf.distribute strategy shares.

A custom step under `strategy.run` rather than `model.fit`: Keras 3's fit fails under
MultiWorkerMirroredStrategy on this stack (REFERENCE.md), and the same code must run under every
strategy. It also gives the backbone and the head optimizers of their own (discriminative learning
rates: Adam's updates do not shrink with scaled gradients, so a second optimizer is the real thing).
"""

from __future__ import annotations

import dataclasses
import math
import time
import weakref

import keras
import numpy as np
import tensorflow as tf

from finetune import optim
from finetune.modeling import backbone_of, head_layers


@dataclasses.dataclass
class EpochResult:
    loss: float
    accuracy: float


def per_example_loss(labels, probabilities, label_smoothing: float = 0.0):
    """Cross-entropy per example; one-hot labels (mixup, cutmix, smoothing) or class indices."""
    if labels.shape.rank == 2:
        return keras.losses.categorical_crossentropy(labels, probabilities, label_smoothing=label_smoothing)
    return keras.losses.sparse_categorical_crossentropy(labels, probabilities)


def correct_predictions(labels, probabilities, k: int = 1):
    """How many of the batch have their label among the top-k predictions."""
    if labels.shape.rank == 2:
        labels = tf.argmax(labels, axis=-1)
    hits = tf.math.in_top_k(tf.cast(labels, tf.int32), tf.cast(probabilities, tf.float32), k)
    return tf.reduce_sum(tf.cast(hits, tf.float32))


class Trainer:
    """Trains `model` (or, for cached head training, `trained_model` sharing its head) with a head
    optimizer and a slower backbone optimizer under `strategy`."""

    def __init__(self, model, config, strategy, steps_per_epoch: int, trained_model=None):
        self.model = model
        self.trained_model = trained_model or model
        self.config = config
        self.strategy = strategy
        self.steps_per_epoch = max(int(steps_per_epoch), 1)
        with strategy.scope():
            self.head_optimizer = self._optimizer(config.lr)
            # Discriminative rates protect pretrained features; a backbone trained from scratch
            # learns at the head's rate.
            scale = config.backbone_lr_scale if config.weights else 1.0
            self.backbone_optimizer = self._optimizer(config.lr * scale)
            # Built for every variable a later phase may unfreeze (not BatchNorm's moving statistics).
            self.head_optimizer.build(self._head_variables_all())
            self.backbone_optimizer.build([v for v in backbone_of(model).weights if _is_trainable_kind(v)])
        self.loss_scaling = keras.mixed_precision.global_policy().name == "mixed_float16"
        self._train_function = None

    # -- optimizers -------------------------------------------------------------------------
    def _optimizer(self, lr: float):
        config = self.config
        learning_rate = optim.schedule(
            config.schedule, lr, steps_per_epoch=self.steps_per_epoch, epochs=max(config.epochs, 1),
            warmup_epochs=config.warmup_epochs, step_every=config.step_every, decay_rate=config.decay_rate)
        optimizer = optim.optimizer(config.optimizer, learning_rate, momentum=config.momentum,
                                    nesterov=config.nesterov, weight_decay=config.weight_decay,
                                    clip_norm=config.clip_norm, ema=config.ema)
        if keras.mixed_precision.global_policy().name == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        return optimizer

    def _head_variables_all(self):
        return [variable for layer in head_layers(self.model) for variable in layer.weights if _is_trainable_kind(variable)]

    def head_variables(self):
        return [variable for layer in head_layers(self.model) for variable in layer.trainable_weights]

    def backbone_variables(self):
        if self.trained_model is not self.model:
            return []
        return backbone_of(self.model).trainable_weights

    def current_lr(self) -> float:
        optimizer = getattr(self.head_optimizer, "inner_optimizer", self.head_optimizer)
        return float(keras.ops.convert_to_numpy(optimizer.learning_rate))

    # -- steps ------------------------------------------------------------------------------
    def invalidate(self) -> None:
        """Call after changing `trainable`: the next step is traced anew with the new variables."""
        self._train_function = None

    def _replica_step(self, images, labels):
        head_variables = self.head_variables()
        backbone_variables = self.backbone_variables()
        variables = head_variables + backbone_variables
        with tf.GradientTape() as tape:
            probabilities = self.trained_model(images, training=True)
            loss = tf.nn.compute_average_loss(
                per_example_loss(labels, probabilities, self.config.label_smoothing))
            if self.trained_model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.trained_model.losses))
            scaled = self.head_optimizer.scale_loss(loss) if self.loss_scaling else loss
        gradients = tape.gradient(scaled, variables)
        head_gradients = gradients[: len(head_variables)]
        backbone_gradients = gradients[len(head_variables):]
        if self.loss_scaling:
            # The backbone optimizer shares the head optimizer's loss scale.
            scale = tf.cast(self.head_optimizer.dynamic_scale, tf.float32)
            backbone_gradients = [gradient / scale if gradient is not None else None for gradient in backbone_gradients]
        self.head_optimizer.apply_gradients(zip(head_gradients, head_variables))
        if backbone_variables:
            self.backbone_optimizer.apply_gradients(zip(backbone_gradients, backbone_variables))
        count = tf.cast(tf.shape(probabilities)[0], tf.float32)
        return tf.stack([loss * count * self.strategy.num_replicas_in_sync,
                         correct_predictions(labels, probabilities), count])

    def _build_train_function(self):
        strategy = self.strategy
        steps = max(int(self.config.steps_per_execution), 1)
        # With jit, XLA compiles the per-replica step (forward, gradients, optimizer updates), as
        # Keras' own fit does; the loop that feeds it stays a plain graph, since the iterator's
        # next() is an op XLA cannot compile.
        replica_step = (tf.function(self._replica_step, jit_compile=True, reduce_retracing=True)
                        if self.config.jit else self._replica_step)

        def run_steps(iterator):
            totals = tf.zeros([3])
            for _ in tf.range(steps):
                images, labels = next(iterator)
                per_replica = strategy.run(replica_step, args=(images, labels))
                totals += strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
            return totals

        return tf.function(run_steps, reduce_retracing=True)

    def train_epoch(self, iterator, progress: keras.utils.Progbar | None = None, monitor=None) -> EpochResult:
        """One epoch. A `monitor` (finetune.diagnostics.TrainingMonitor) sees the weights before it and
        after its first call; a non-finite loss ends the epoch at once (the caller reports it)."""
        if self._train_function is None:
            self._train_function = self._build_train_function()
        per_call = max(int(self.config.steps_per_execution), 1)
        calls = math.ceil(self.steps_per_epoch / per_call)
        totals = np.zeros(3)
        if monitor is not None:
            monitor.before_epoch()
        for call in range(calls):
            totals += self._train_function(iterator).numpy()
            if monitor is not None and call == 0:
                monitor.after_first_steps(min(per_call, self.steps_per_epoch))
            if progress is not None:
                progress.update(min((call + 1) * per_call, self.steps_per_epoch),
                                [("loss", totals[0] / max(totals[2], 1)), ("accuracy", totals[1] / max(totals[2], 1))])
            if not np.isfinite(totals[0]):
                break
        return EpochResult(loss=totals[0] / max(totals[2], 1), accuracy=totals[1] / max(totals[2], 1))

    def finalize_ema(self) -> None:
        """Copies the moving averages into the weights (when --ema is on)."""
        if self.config.ema:
            self.head_optimizer.finalize_variable_values(self.head_variables())
            if self.backbone_variables():
                self.backbone_optimizer.finalize_variable_values(self.backbone_variables())


def _is_trainable_kind(variable) -> bool:
    # Moving statistics are never trained; everything else may be unfrozen in a later phase.
    name = variable.path if hasattr(variable, "path") else variable.name
    return not ("moving_mean" in name or "moving_variance" in name)


_EVALUATION_STEPS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def evaluate(model, dataset, top_k: int = 5, label_smoothing: float = 0.0, collect: bool = False):
    """Loss, accuracy and top-k accuracy of `model` on a dataset of (images, labels) batches.

    With `collect`, also returns the true and predicted class of every example.
    """
    step = _EVALUATION_STEPS.get(model)
    if step is None or step.settings != (top_k, label_smoothing):
        step = _EVALUATION_STEPS[model] = _evaluation_step(model, top_k, label_smoothing)
    return _evaluate_with(step, model, dataset, top_k, collect)


def _evaluation_step(model, top_k, label_smoothing):
    """One traced evaluation step per model, reused across epochs."""
    @tf.function(reduce_retracing=True)
    def step(images, labels):
        probabilities = model(images, training=False)
        loss = tf.reduce_sum(per_example_loss(labels, probabilities, label_smoothing))
        k = min(top_k, probabilities.shape[-1])
        predicted = tf.argmax(probabilities, axis=-1)
        truth = tf.argmax(labels, axis=-1) if labels.shape.rank == 2 else tf.cast(labels, tf.int64)
        return (tf.stack([loss, correct_predictions(labels, probabilities), correct_predictions(labels, probabilities, k),
                          tf.cast(tf.shape(probabilities)[0], tf.float32)]), truth, predicted)

    step.settings = (top_k, label_smoothing)
    return step


def _evaluate_with(step, model, dataset, top_k, collect):
    totals = np.zeros(4)
    truths, predictions = [], []
    started = time.perf_counter()
    for images, labels in dataset:
        sums, truth, predicted = step(images, labels)
        totals += sums.numpy()
        if collect:
            truths.append(truth.numpy())
            predictions.append(predicted.numpy())
    count = max(totals[3], 1)
    metrics = {"loss": float(totals[0] / count), "accuracy": float(totals[1] / count),
               "examples": int(totals[3]), "seconds": time.perf_counter() - started}
    if model.output_shape[-1] > top_k:  # top-k only says something with more than k classes
        metrics[f"top{top_k}_accuracy"] = float(totals[2] / count)
    if collect:
        return metrics, np.concatenate(truths) if truths else np.zeros(0), np.concatenate(predictions) if predictions else np.zeros(0)
    return metrics
