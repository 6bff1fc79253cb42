"""The training step every task, mode and tf.distribute strategy shares.

A custom step under `strategy.run` rather than `model.fit`: Keras 3's fit fails under
MultiWorkerMirroredStrategy on this stack (Keras issue 20585), and the same code must run under
every strategy. It also gives each group of variables an optimizer of its own (a fine-tuned
backbone and its new head: discriminative learning rates, since Adam's updates do not shrink
with scaled gradients, a second optimizer is the real thing).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

LOSS, CORRECT, COUNT = range(3)  # the sums a training step returns


@dataclasses.dataclass
class EpochResult:
    loss: float
    accuracy: float


@dataclasses.dataclass
class VariableGroup:
    """Variables that one optimizer updates. `variables()` is called at each trace, so a group
    follows `trainable` changes (a backbone unfrozen after head-only epochs)."""

    optimizer: keras.optimizers.Optimizer
    variables: Callable[[], list]


def loss_scaled(optimizer):
    """The optimizer wrapped for dynamic loss scaling when the policy computes in float16."""
    if keras.mixed_precision.global_policy().name == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


class Trainer:
    """Trains `model` under `strategy`: each step runs the model on a batch, scores it with the
    task's `objective` (`finetune.training.objectives`) and lets each group's optimizer update
    its variables.

    Args:
        model: the Keras model that training calls (with training=True).
        strategy: a tf.distribute strategy; the model and optimizers were built in its scope.
        steps_per_epoch: batches per epoch.
        objective: the task's loss and metric sums.
        groups: optimizers and their variables; the first group's loss scale serves them all.
        jit: compile the per-replica step with XLA.
        steps_per_execution: steps per call of the compiled function.
    """

    def __init__(self, model, strategy, steps_per_epoch: int, objective, groups: list[VariableGroup], *,
                 jit: bool = False, steps_per_execution: int = 1):
        self.model = model
        self.strategy = strategy
        self.steps_per_epoch = max(int(steps_per_epoch), 1)
        self.objective = objective
        self.groups = groups
        self.jit = jit
        self.steps_per_execution = max(int(steps_per_execution), 1)
        self.loss_scaling = isinstance(groups[0].optimizer, keras.optimizers.LossScaleOptimizer)
        self._train_function = None

    def current_lr(self) -> float:
        optimizer = self.groups[0].optimizer
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)
        return float(keras.ops.convert_to_numpy(optimizer.learning_rate))

    def invalidate(self) -> None:
        """Call after changing `trainable`: the next step is traced anew with the new variables."""
        self._train_function = None

    def _replica_step(self, inputs, labels):
        group_variables = [group.variables() for group in self.groups]
        flat = [variable for variables in group_variables for variable in variables]
        first = self.groups[0].optimizer
        with tf.GradientTape() as tape:
            outputs = self.model(inputs, training=True)
            loss = self.objective.replica_loss(labels, outputs)
            if self.model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
            scaled = first.scale_loss(loss) if self.loss_scaling else loss
        gradients = tape.gradient(scaled, flat)
        start = 0
        for index, (group, variables) in enumerate(zip(self.groups, group_variables)):
            group_gradients = gradients[start:start + len(variables)]
            start += len(variables)
            if not variables:
                continue
            if self.loss_scaling and index:
                # The other optimizers share the first one's loss scale.
                scale = tf.cast(first.dynamic_scale, tf.float32)
                group_gradients = [gradient / scale if gradient is not None else None for gradient in group_gradients]
            group.optimizer.apply_gradients(zip(group_gradients, variables))
        sums = self.objective.sums(labels, tf.stop_gradient(outputs))
        return tf.stack([sums["loss"], sums["accuracy"], sums["count"]])

    def _build_train_function(self):
        strategy = self.strategy
        steps = self.steps_per_execution
        # With jit, XLA compiles the per-replica step (forward, gradients, optimizer updates), as
        # Keras' own fit does; the loop that feeds it stays a plain graph, since the iterator's
        # next() is an op XLA cannot compile.
        replica_step = (tf.function(self._replica_step, jit_compile=True, reduce_retracing=True)
                        if self.jit else self._replica_step)

        def run_steps(iterator):
            totals = tf.zeros([3])
            for _ in tf.range(steps):
                inputs, labels = next(iterator)
                per_replica = strategy.run(replica_step, args=(inputs, labels))
                totals += strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
            return totals

        return tf.function(run_steps, reduce_retracing=True)

    def train_epoch(self, iterator, progress: keras.utils.Progbar | None = None, monitor=None) -> EpochResult:
        """One epoch. A `monitor` (finetune.training.diagnostics.TrainingMonitor) sees the weights
        before it and after its first call; a non-finite loss ends the epoch at once (the caller
        reports it)."""
        if self._train_function is None:
            self._train_function = self._build_train_function()
        per_call = self.steps_per_execution
        calls = math.ceil(self.steps_per_epoch / per_call)
        totals = np.zeros(3)
        if monitor is not None:
            monitor.before_epoch()
        for call in range(calls):
            totals += self._train_function(iterator).numpy()
            if monitor is not None and call == 0:
                monitor.after_first_steps(min(per_call, self.steps_per_epoch))
            if progress is not None:
                count = max(totals[COUNT], 1)
                progress.update(min((call + 1) * per_call, self.steps_per_epoch),
                                [("loss", totals[LOSS] / count), ("accuracy", totals[CORRECT] / count)])
            if not np.isfinite(totals[LOSS]):
                break
        count = max(totals[COUNT], 1)
        return EpochResult(loss=totals[LOSS] / count, accuracy=totals[CORRECT] / count)

    def finalize_ema(self) -> None:
        """Copies the moving averages into the weights, for the groups whose optimizer keeps them."""
        for group in self.groups:
            optimizer = getattr(group.optimizer, "inner_optimizer", group.optimizer)
            if optimizer.use_ema and group.variables():
                group.optimizer.finalize_variable_values(group.variables())
