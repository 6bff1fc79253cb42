"""The run folder of every task, and its one writer (layout: `finetune.files`).

A run writes its config before its first epoch, then at each epoch's end its history row, best and
last models, and a checkpoint (written last: what --resume trusts); TensorBoard scalars go to
logs/train and logs/validation under the tags Keras's TensorBoard callback uses.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import tensorflow as tf

from finetune import files
from zoo.errors import ZooError


def read_history(path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf8") as file:
        return list(csv.DictReader(file))


def write_history(path, rows: list[dict]) -> None:
    """Rewrites a history file whole (it is small), atomically, one row per completed epoch."""
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    files.write_atomically(path, buffer.getvalue())


def prepare(out, resume: bool) -> Path:
    """Creates a run folder; an existing run is only continued with resume, never overwritten."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ZooError(f"{out} exists and is not a folder; pick another --out")
    existing = out.is_dir() and any(out.iterdir())
    if existing and not resume:
        raise ZooError(f"{out} already holds a run; pass --resume to continue it or pick another --out")
    if resume and not (out / files.CONFIG).is_file():
        raise ZooError(f"nothing to resume in {out}: it has no {files.CONFIG}")
    out.mkdir(parents=True, exist_ok=True)
    return out


class TensorBoardLogger:
    """Epoch scalars under the tags Keras's TensorBoard callback uses: `epoch_loss` and the like in
    logs/train, their validation values (the `val_` columns) in logs/validation.

    Keras's callback reads `model.optimizer`, which a loop with an optimizer per variable group has
    not got, so the loop writes the same summaries itself, through TensorFlow's summary op.
    """

    SKIPPED = ("epoch", "seconds")

    def __init__(self, log_dir: Path):
        self.writers = {"train": tf.summary.create_file_writer(str(log_dir / "train")),
                        "validation": tf.summary.create_file_writer(str(log_dir / "validation"))}

    def log(self, epoch: int, row: dict) -> None:
        for key, value in row.items():
            if key in self.SKIPPED:
                continue
            split = "validation" if key.startswith("val_") else "train"
            with self.writers[split].as_default(step=epoch):
                tf.summary.scalar(f"epoch_{key.removeprefix('val_')}", float(value))
        for writer in self.writers.values():
            writer.flush()

    @property
    def train_writer(self):
        return self.writers["train"]


class RunFolder:
    """A run's folder: its config, history, models, checkpoints, metrics and TensorBoard logs.

    Under MultiWorkerMirroredStrategy every worker holds one (each must save a checkpoint, as the
    collective save needs them all), but only the chief's `writes`: the others keep their
    checkpoints in a hidden folder of their own, removed when the run ends.
    """

    def __init__(self, path, *, writes: bool = True, worker: int = 0):
        self.path = Path(path)
        self.writes = writes
        self.worker = worker
        self._tensorboard: TensorBoardLogger | None = None

    @classmethod
    def create(cls, path, *, resume: bool, writes: bool = True, worker: int = 0) -> "RunFolder":
        """The folder of a new run (new or empty), or of the run `resume` continues."""
        return cls(prepare(path, resume) if writes else Path(path), writes=writes, worker=worker)

    def __truediv__(self, name) -> Path:
        return self.path / name

    # -- what the run was asked to do ------------------------------------------------------------------
    def read_json(self, name: str) -> dict:
        path = self.path / name
        try:
            return json.loads(path.read_text(encoding="utf8"))
        except FileNotFoundError:
            raise ZooError(f"{self.path} has no {name}: it is not a run folder of this kit") from None
        except (OSError, ValueError) as error:
            raise ZooError(f"cannot read {path}: {error}") from None

    def write_json(self, name: str, values) -> None:
        if self.writes:
            files.write_json(self.path / name, values)

    # -- what it has done -------------------------------------------------------------------------------
    def history(self) -> list[dict]:
        return read_history(self.path / files.HISTORY)

    def write_history(self, rows: list[dict]) -> None:
        if self.writes:
            write_history(self.path / files.HISTORY, rows)

    def save_model(self, model, name: str) -> None:
        if self.writes:
            files.save_model_atomically(model, self.path / name)

    def checkpoint_manager(self, checkpoint: tf.train.Checkpoint, max_to_keep: int = 2) -> tf.train.CheckpointManager:
        folder = self.path / (files.CHECKPOINTS if self.writes else f".worker-{self.worker}")
        return tf.train.CheckpointManager(checkpoint, str(folder), max_to_keep=max_to_keep)

    def tensorboard(self) -> TensorBoardLogger | None:
        if self.writes and self._tensorboard is None:
            self._tensorboard = TensorBoardLogger(self.path / files.LOGS)
        return self._tensorboard

    def finish(self) -> None:
        """Removes what a non-chief worker kept for the collective checkpoint save."""
        if not self.writes:
            shutil.rmtree(self.path / f".worker-{self.worker}", ignore_errors=True)
