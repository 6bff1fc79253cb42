"""What a task trains for: its loss, and the sums its metrics are made of.

The training step and the evaluation are the same for every task; an objective says how a batch's
outputs are scored. Each sums over its examples (classification: images; captioning: the words of
the captions), so metrics over a dataset are sums divided by the count, whatever the batch sizes.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from zoo.text import PADDING_ID


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


class Classification:
    """Softmax probabilities against class labels (indices, or one-hot with mixup/cutmix/smoothing)."""

    def __init__(self, label_smoothing: float = 0.0, top_k: int = 5, class_weights=None):
        self.label_smoothing = float(label_smoothing)
        self.top_k = int(top_k)
        # a weight per class for the training loss (Keras's class_weight), or None
        self.class_weights = None if class_weights is None else tuple(float(weight) for weight in class_weights)

    def replica_loss(self, labels, outputs):
        """This replica's share of the global batch's mean loss (replicas' shares add up to it)."""
        losses = per_example_loss(labels, outputs, self.label_smoothing)
        if self.class_weights is not None:
            classes = tf.argmax(labels, axis=-1) if labels.shape.rank == 2 else labels
            losses = losses * tf.gather(tf.constant(self.class_weights, losses.dtype), tf.cast(classes, tf.int32))
        return tf.nn.compute_average_loss(losses)

    def sums(self, labels, outputs) -> dict:
        """Summed loss, correct top-1 and top-k predictions, and the number of examples."""
        k = min(self.top_k, outputs.shape[-1])
        return {"loss": tf.reduce_sum(per_example_loss(labels, outputs, self.label_smoothing)),
                "accuracy": correct_predictions(labels, outputs),
                f"top{self.top_k}_accuracy": correct_predictions(labels, outputs, k),
                "count": tf.cast(tf.shape(outputs)[0], tf.float32)}

    def predictions(self, labels, outputs):
        """(true class, predicted class) per example, for the confusion matrix."""
        truth = tf.argmax(labels, axis=-1) if labels.shape.rank == 2 else tf.cast(labels, tf.int64)
        return truth, tf.argmax(outputs, axis=-1)


class NextWord:
    """Next-word logits [B, T, V] against the caption's word ids [B, T]; padding (id 0) is left
    out, as Keras's masked loss leaves it out, so every word of every caption counts once."""

    def _word_losses(self, labels, outputs):
        mask = tf.cast(tf.not_equal(labels, PADDING_ID), tf.float32)
        losses = keras.losses.sparse_categorical_crossentropy(labels, tf.cast(outputs, tf.float32), from_logits=True)
        return losses * mask, mask

    def replica_loss(self, labels, outputs):
        losses, mask = self._word_losses(labels, outputs)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return tf.reduce_sum(losses) / tf.maximum(tf.reduce_sum(mask), 1.0) / replicas

    def sums(self, labels, outputs) -> dict:
        losses, mask = self._word_losses(labels, outputs)
        predicted = tf.argmax(outputs, axis=-1, output_type=labels.dtype)
        correct = tf.cast(tf.equal(predicted, labels), tf.float32) * mask
        return {"loss": tf.reduce_sum(losses), "accuracy": tf.reduce_sum(correct), "count": tf.reduce_sum(mask)}
