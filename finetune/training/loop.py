"""The epochs of a run, the same for every task: train, validate, commit, write the run folder.

At each epoch's end the loop first saves a checkpoint: the model, the optimizers, the number of
epochs done, every history row so far and the best validation loss. That save is the commit: then
it writes history.csv, best.keras (when the validation loss improved) and last.keras, each
atomically. A run killed at any point resumes from its last checkpoint and rewrites from it
whatever the kill left behind (a missing history row, a best or last model of an older epoch), so
history.csv, best.keras and metrics.json always agree. A resume whose checkpoint cannot account for
the run folder's history (checkpoints/ removed, or older than history.csv) is refused with what
was found: it would rewrite best.keras and drop finished epochs.
"""

from __future__ import annotations

import dataclasses
import json
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
        after_epoch: called with each epoch's index once it has trained and validated (e.g. to
            report the files its streams met unreadable).
    """

    total: int
    validate: Callable[[], dict | None]
    saved_model: keras.Model
    checkpointed: dict
    early_stopping: int | None = None
    before_epoch: Callable[[int], str | None] | None = None
    learning_rate: float | None = None
    after_epoch: Callable[[int], None] | None = None


class Progress:
    """What a checkpoint holds beside the model and optimizers: epochs done, history, best score."""

    def __init__(self):
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.history = tf.Variable("[]", dtype=tf.string, trainable=False, name="history")
        self.best = tf.Variable(math.inf, dtype=tf.float64, trainable=False, name="best")
        self.best_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="best_epoch")

    def objects(self) -> dict:
        return {"epoch": self.epoch, "history": self.history, "best": self.best, "best_epoch": self.best_epoch}

    def rows(self) -> list[dict]:
        return json.loads(self.history.numpy().decode("utf8"))

    def commit(self, rows: list[dict], best: float, best_epoch: int) -> None:
        self.epoch.assign(len(rows))
        self.history.assign(json.dumps(rows))
        self.best.assign(best)
        self.best_epoch.assign(best_epoch)


def _resume(folder: RunFolder, checkpoint, progress: Progress, manager, saved_model, verbose: int) -> list[dict]:
    """Restores the latest checkpoint and makes the run folder agree with it; returns its history."""
    if not manager.latest_checkpoint:
        return []  # the run stopped before its first epoch (RunFolder.check_resumable saw no history)
    checkpoint.restore(manager.latest_checkpoint).expect_partial()
    rows = progress.rows()
    done = int(progress.epoch.numpy())
    if len(rows) != done:
        raise ZooError(f"cannot resume {folder.path}: its checkpoint of epoch {done} was not written by this kit's "
                       f"run loop (it holds {len(rows)} history rows); start a new run (another --out)")
    written = folder.history()
    if written != [{key: str(value) for key, value in row.items()} for row in rows]:
        folder.write_history(rows)  # killed after the commit, before history.csv was written
    if done:
        folder.save_model(saved_model, files.LAST)
        if int(progress.best_epoch.numpy()) == done:
            folder.save_model(saved_model, files.BEST)
    if verbose:
        print(f"Resuming {folder.path} after epoch {done}.")
    return rows


def run_epochs(trainer: Trainer, iterator, epochs: Epochs, folder: RunFolder | None, *, resume: bool = False,
               monitor=None, verbose: int = 1) -> list[dict]:
    """Trains `trainer` on `iterator` up to `epochs.total`; returns the history, one row per epoch
    (epoch, loss, accuracy, val_loss, val_accuracy, lr, seconds), the resumed ones included."""
    progress = Progress()
    checkpoint = tf.train.Checkpoint(**progress.objects(), **epochs.checkpointed)
    manager = folder.checkpoint_manager(checkpoint) if folder is not None else None
    history = _resume(folder, checkpoint, progress, manager, epochs.saved_model, verbose) if resume else []
    start = len(history)
    best, best_epoch = float(progress.best.numpy()), int(progress.best_epoch.numpy())
    tensorboard = folder.tensorboard() if folder is not None else None
    stopper = keras.callbacks.CallbackList(
        [keras.callbacks.EarlyStopping(monitor="val_loss", patience=epochs.early_stopping)]
        if epochs.early_stopping else [], model=epochs.saved_model)
    epochs.saved_model.stop_training = False
    stopper.on_train_begin()
    for epoch in range(start, epochs.total):
        note = epochs.before_epoch(epoch) if epochs.before_epoch is not None else None
        if verbose:
            print(f"Epoch {epoch + 1}/{epochs.total}" + (f" ({note})" if note else ""))
        bar = keras.utils.Progbar(trainer.steps_per_epoch, verbose=verbose, stateful_metrics=["loss", "accuracy"])
        started = time.perf_counter()
        result = trainer.train_epoch(iterator, bar, monitor)
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
        if epochs.after_epoch is not None:
            epochs.after_epoch(epoch)
        history.append(row)
        improved = row.get("val_loss", row["loss"]) < best
        if improved:
            best, best_epoch = row.get("val_loss", row["loss"]), epoch + 1
        progress.commit(history, best, best_epoch)
        if folder is not None:
            manager.save(checkpoint_number=epoch + 1)  # the commit: what a resume continues from
            folder.write_history(history)
            if improved:
                folder.save_model(epochs.saved_model, files.BEST)
            folder.save_model(epochs.saved_model, files.LAST)
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
