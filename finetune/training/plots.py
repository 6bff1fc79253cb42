"""PNG plots of a run: training curves and the confusion matrix (matplotlib, no display needed)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from finetune.files import write_atomically  # noqa: E402


def save_figure(figure, path) -> None:
    """Writes a figure as PNG, atomically, and closes it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    write_atomically(path, buffer.getvalue())


def curves(history: list[dict], path) -> None:
    """Loss and accuracy per epoch, training and validation."""
    epochs = [int(row["epoch"]) for row in history]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("loss", "accuracy")):
        for prefix, label in (("", "train"), ("val_", "validation")):
            values = [float(row[prefix + metric]) for row in history if row.get(prefix + metric) not in (None, "")]
            if values:
                axis.plot(epochs[: len(values)], values, marker="o", label=label)
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    save_figure(figure, path)


def confusion_matrix(truth, predicted, class_names: list[str]) -> np.ndarray:
    matrix = np.zeros((len(class_names), len(class_names)), dtype=np.int64)
    np.add.at(matrix, (np.asarray(truth, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


def confusion(matrix: np.ndarray, class_names: list[str], path) -> None:
    size = max(4, 0.5 * len(class_names) + 2)
    figure, axis = plt.subplots(figsize=(size, size))
    axis.imshow(matrix, cmap="Blues")
    ticks = np.arange(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=90)
    axis.set_yticks(ticks, class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    if len(class_names) <= 30:
        for (row, column), value in np.ndenumerate(matrix):
            axis.text(column, row, str(value), ha="center", va="center", fontsize=7,
                      color="white" if value > matrix.max() / 2 else "black")
    save_figure(figure, path)


def learning_rate_finder(learning_rates, losses, suggestion, path) -> None:
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot(learning_rates, losses)
    axis.set_xscale("log")
    axis.set_xlabel("learning rate")
    axis.set_ylabel("loss (smoothed)")
    if suggestion:
        axis.axvline(suggestion, color="red", linestyle="--", label=f"suggested {suggestion:.2g}")
        axis.legend()
    axis.grid(alpha=0.3)
    save_figure(figure, path)
