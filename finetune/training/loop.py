"""The epochs of a run, the same for every task: train, validate, write the run folder, checkpoint.

At each epoch's end the loop writes its history row, best.keras when the validation loss improved,
last.keras, then the checkpoint. The checkpoint (model, optimizers and the epoch count) is written
last and is what --resume trusts: after a kill in between, resume drops the history rows past the
restored epoch and runs that epoch again, so history.csv holds each epoch once.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from finetune import files
from finetune.training.runfolder import RunFolder
from finetune.training.trainer import Trainer
from zoo.errors import ZooError


class LossDiverged(ZooError):
    """The training loss became NaN or infinite: a result of the settings (a search records it), not of the input."""


@dataclasses.dataclass
class Epochs:
    """What the loop needs besides the trainer.

    Args:
        total: the epoch to train up to (a resumed run continues from where it stopped).
        validate: () -> metrics of the validation split ("loss", "accuracy"), or None without one.
        saved_model: the model best.keras and last.keras hold (may differ from what the trainer
            calls, e.g. the whole classifier while its head trains on cached features).
        checkpointed: the objects the checkpoint holds besides the epoch count (model, optimizers).
        early_stopping: patience in epochs without a lower validation loss; None: never stop early.
        before_epoch: called with each epoch's index before it trains (e.g. to unfreeze layers).
        learning_rate: a note for the error when the loss diverges ("try --lr ...").
    """

    total: int
    validate: Callable[[], dict | None]
    saved_model: keras.Model
    checkpointed: dict
    early_stopping: int | None = None
    before_epoch: Callable[[int], str | None] | None = None
    learning_rate: float | None = None


def _restore(folder: RunFolder | None, checkpoint, resume: bool):
    """(manager, epochs completed): the latest checkpoint restored when resuming."""
    if folder is None:
        return None, 0
    manager = folder.checkpoint_manager(checkpoint)
    if resume and manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).expect_partial()
    return manager, int(checkpoint.epoch.numpy())


def run_epochs(trainer: Trainer, iterator, epochs: Epochs, folder: RunFolder | None, *, resume: bool = False,
               monitor=None, verbose: int = 1) -> list[dict]:
    """Trains `trainer` on `iterator` up to `epochs.total`; returns the history, one row per epoch
    (epoch, loss, accuracy, val_loss, val_accuracy, lr, seconds), the resumed ones included."""
    checkpoint = tf.train.Checkpoint(epoch=tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch"),
                                     **epochs.checkpointed)
    manager, start = _restore(folder, checkpoint, resume)
    written = folder.history() if folder is not None else []
    history = [row for row in written if int(row["epoch"]) <= start]
    if len(history) < len(written):  # rows written after the checkpoint: their epochs run again
        folder.write_history(history)
    if verbose and resume:
        print(f"Resuming {folder.path} after epoch {start} of {epochs.total}.")
    tensorboard = folder.tensorboard() if folder is not None else None
    stopper = keras.callbacks.CallbackList(
        [keras.callbacks.EarlyStopping(monitor="val_loss", patience=epochs.early_stopping)]
        if epochs.early_stopping else [], model=epochs.saved_model)
    epochs.saved_model.stop_training = False
    stopper.on_train_begin()
    best = min((float(row["val_loss"]) for row in history if row.get("val_loss") not in (None, "")), default=math.inf)
    for epoch in range(start, epochs.total):
        note = epochs.before_epoch(epoch) if epochs.before_epoch is not None else None
        if verbose:
            print(f"Epoch {epoch + 1}/{epochs.total}" + (f" ({note})" if note else ""))
        progress = keras.utils.Progbar(trainer.steps_per_epoch, verbose=verbose,
                                       stateful_metrics=["loss", "accuracy"])
        started = time.perf_counter()
        result = trainer.train_epoch(iterator, progress, monitor)
        if not np.isfinite(result.loss):
            hint = (f": the learning rate ({epochs.learning_rate:g}) is probably too high; try --lr "
                    f"{epochs.learning_rate / 10:g}") if epochs.learning_rate else ""
            raise LossDiverged(f"the loss became {result.loss} in epoch {epoch + 1}{hint}")
        row = {"epoch": epoch + 1, "loss": result.loss, "accuracy": result.accuracy}
        validation = epochs.validate()
        if validation is not None:
            row.update(val_loss=validation["loss"], val_accuracy=validation["accuracy"])
        row.update(lr=trainer.current_lr(), seconds=round(time.perf_counter() - started, 3))
        if verbose and validation is not None:
            print(f"  val_loss {row['val_loss']:.4f} - val_accuracy {row['val_accuracy']:.4f} "
                  f"- {row['seconds']:.1f}s")
        history.append(row)
        checkpoint.epoch.assign(epoch + 1)
        if folder is not None:
            score = row.get("val_loss", row["loss"])
            if score < best:
                best = score
                folder.save_model(epochs.saved_model, files.BEST)
            folder.save_model(epochs.saved_model, files.LAST)
            folder.write_history(history)
            manager.save(checkpoint_number=epoch + 1)
        if tensorboard is not None:
            tensorboard.log(epoch, row)
        if monitor is not None:
            monitor.end_epoch(epoch)
        stopper.on_epoch_end(epoch, {key: value for key, value in row.items() if key != "epoch"})
        if epochs.saved_model.stop_training:
            if verbose:
                print(f"Early stopping: no validation improvement in {epochs.early_stopping} epochs.")
            break
    stopper.on_train_end()
    return history
