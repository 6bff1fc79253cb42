"""The run folder of every task, and its one writer (layout: `finetune.files`).

A run owns its folder while it writes it: a lock that a second run on the same folder meets, and
is refused by, naming the holder's process. It writes its config before its first epoch, then at
each epoch's end a checkpoint (the commit: model, optimizers, epoch count and the history rows),
and after it the history row, best and last models; TensorBoard scalars go to logs/train and
logs/validation under the tags Keras's TensorBoard callback uses.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

import filelock
import tensorflow as tf

from finetune import files
from zoo.errors import ZooError

LOCK = ".lock"
OWNER = ".owner"  # the lock holder's process id, beside the lock (which may not hold content)
# what shows that a run got somewhere: a folder without any of these may be started afresh
PROGRESS = (files.HISTORY, files.CHECKPOINTS, files.BEST, files.LAST, files.METRICS)


def read_history(path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    try:
        with path.open(newline="", encoding="utf8") as file:
            return list(csv.DictReader(file))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ZooError(f"cannot read {path}: {error}") from None


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


def nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(path, what: str = "the output") -> None:
    """Refuses, before any work, a place where nothing can be written: a read-only folder or one
    under a file."""
    path = Path(path)
    existing = nearest_existing(path)
    if not existing.is_dir():
        raise ZooError(f"cannot write {what} to {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ZooError(f"cannot write {what} to {path}: {existing} is not writable; pick another place")


def has_progress(folder: Path) -> bool:
    return any((folder / name).exists() for name in PROGRESS)


def prepare(out, resume: bool = False, *, resumable: bool = True) -> Path:
    """Creates an output folder. A folder that holds a run is only continued with resume, never
    overwritten; one whose run stopped before it finished an epoch (it holds a config and maybe
    logs, but no history, checkpoint or model) is started afresh. `resumable` says whether the
    command has a --resume to suggest."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ZooError(f"{out} exists and is not a folder; pick another --out")
    check_writable(out, "the run folder")
    if resume:
        if not (out / files.CONFIG).is_file():
            raise ZooError(f"nothing to resume in {out}: it has no {files.CONFIG}")
    elif out.is_dir() and any(path.name not in (LOCK, OWNER) for path in out.iterdir()):
        if has_progress(out) or not (out / files.CONFIG).is_file():
            hint = "pass --resume to continue it or pick" if resumable and has_progress(out) else "pick"
            raise ZooError(f"{out} already holds {'a run' if has_progress(out) else 'other files'}; {hint} another --out")
        for leftover in out.iterdir():  # a run that failed before its first epoch: nothing to keep
            if leftover.name not in (LOCK, OWNER):
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
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
        self._lock: filelock.BaseFileLock | None = None

    @classmethod
    def create(cls, path, *, resume: bool, writes: bool = True, worker: int = 0) -> "RunFolder":
        """The folder of a new run (new or empty), or of the run `resume` continues, owned by this
        process until `release` (a second run on it is refused)."""
        folder = cls(Path(path), writes=writes, worker=worker)
        if writes:
            check_writable(folder.path, "the run folder")
            folder.path.mkdir(parents=True, exist_ok=True)
            folder.acquire()
            try:
                prepare(folder.path, resume)
                if resume:
                    folder.check_resumable()
            except BaseException:
                folder.release()
                raise
        return folder

    # -- ownership -------------------------------------------------------------------------------------
    def acquire(self) -> None:
        """Takes the folder's lock, or refuses, naming the process that holds it."""
        lock = filelock.FileLock(str(self.path / LOCK), timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            try:
                holder = (self.path / OWNER).read_text(encoding="utf8").strip()
            except OSError:
                holder = "unknown"
            raise ZooError(f"{self.path} is being written by another run (process {holder}); wait for it to "
                           f"finish, or pick another --out") from None
        self._lock = lock
        files.write_atomically(self.path / OWNER, f"{os.getpid()}\n")

    def release(self) -> None:
        if self._lock is not None:
            (self.path / OWNER).unlink(missing_ok=True)
            self._lock.release()
            self._lock = None

    def __enter__(self) -> "RunFolder":
        return self

    def __exit__(self, *exc_info) -> None:
        self.finish()
        self.release()

    def __truediv__(self, name) -> Path:
        return self.path / name

    def check_resumable(self) -> None:
        """Refuses, before anything is written, a resume whose checkpoints cannot account for the
        run's history: it would start again from an older epoch, overwrite best.keras and drop
        finished epochs. (Checkpoints are numbered by the epochs they hold.)"""
        recorded = [int(row["epoch"]) for row in self.history() if str(row.get("epoch", "")).isdigit()]
        latest = tf.train.latest_checkpoint(str(self.path / files.CHECKPOINTS))
        saved = int(latest.rsplit("-", 1)[1]) if latest else 0
        if max(recorded, default=0) > saved:
            found = (f"its latest checkpoint is of epoch {saved}" if latest
                     else f"{files.CHECKPOINTS}/ holds no checkpoint")
            raise ZooError(
                f"cannot resume {self.path}: {files.HISTORY} records {len(recorded)} epoch(s) but {found}, so the run "
                f"would start again from epoch {saved}, overwrite {files.BEST} and drop finished epochs. Restore "
                f"{files.CHECKPOINTS}/, or start a new run (another --out)")

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
