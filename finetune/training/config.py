"""Every setting of a run, in one dataclass per task written to the run folder's config.json."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import ClassVar

from finetune import files
from zoo.errors import ZooError

MODES = ("predict", "head", "full")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "step", "exponential", "cosine")
STRATEGIES = ("auto", "one", "mirrored", "multiworker", "tpu")
PRECISIONS = ("auto", "float32", "mixed")
TASK_COMMANDS = {"classification": "zoo finetune MODEL", "captioning": "zoo finetune captioner"}


class RunSettings:
    """What the config of every task shares: its config.json (with the task's name), and the
    rules of resuming (settings in RESUMABLE may change on --resume; any other must match)."""

    TASK: ClassVar[str]
    RESUMABLE: ClassVar[frozenset] = frozenset()

    def validate(self):
        return self

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "task": self.TASK}

    def save(self, path) -> None:
        files.write_json(path, self.to_dict())

    @classmethod
    def load(cls, path):
        """A config from a config.json file, or from a run folder's."""
        path = Path(path)
        if path.is_dir():
            path = path / files.CONFIG
        if not path.is_file():
            raise ZooError(f"no config file at {path}")
        try:
            values = json.loads(path.read_text(encoding="utf8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ZooError(f"{path} is not a valid JSON config file: {error}") from None
        except OSError as error:
            raise ZooError(f"cannot read {path}: {error.strerror or error}") from None
        if not isinstance(values, dict):
            raise ZooError(f"{path} holds a JSON {type(values).__name__}, not an object of settings")
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, values: dict):
        values = dict(values)
        task = values.pop("task", cls.TASK)
        if task != cls.TASK:
            command = TASK_COMMANDS.get(task)
            raise ZooError(f"these are the settings of a {task} run, not of a {cls.TASK} run"
                           + (f": train or resume that run with `{command}`" if command else ""))
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ZooError(f"unknown settings in config: {', '.join(sorted(unknown))}")
        try:
            return cls(**values).validate()
        except TypeError as error:
            raise ZooError(f"bad settings in config: {error}") from None

    def resumed_with(self, requested: dict):
        """This (saved) config with the settings a resumed run was given: those in RESUMABLE are
        applied, a differing value of any other is refused by name. Returns (config, what changed)."""
        fixed = {key: value for key, value in requested.items()
                 if key not in self.RESUMABLE and value is not None and getattr(self, key, value) != value}
        if fixed:
            details = ", ".join(f"{key}={value!r} (the run has {getattr(self, key)!r})" for key, value in sorted(fixed.items()))
            changeable = ", ".join(sorted(self.RESUMABLE)) or "none"
            raise ZooError(f"a resumed run keeps its settings, and these differ: {details}. A resume can change "
                           f"only {changeable}; start a new run (another --out) for other settings")
        changes = {key: value for key, value in requested.items()
                   if key in self.RESUMABLE and value is not None and getattr(self, key) != value}
        return dataclasses.replace(self, **changes).validate(), changes


@dataclasses.dataclass
class FinetuneConfig(RunSettings):
    """A fine-tuning run of a classifier. Defaults are sensible for the built-in data."""

    TASK: ClassVar[str] = "classification"
    # what a resumed run may change: how long it runs, and where its data is read from
    RESUMABLE: ClassVar[frozenset] = frozenset({"epochs", "early_stopping", "data_dir", "download", "cache",
                                                "diagnostics"})

    model: str = "lenet5"
    data: str | None = None  # a data spec (see finetune.data); None: the built-in shapes
    labels: str | None = None  # a CSV of file names and labels for a folder of images (finetune.data.label_files)
    mode: str = "full"
    weights: str | None = None  # None, "imagenet" or a file
    epochs: int = 15
    batch_size: int = 32
    image_size: int | None = None  # None: the model's default input size
    channels: int | None = None  # None: the model's default channels
    model_options: dict = dataclasses.field(default_factory=dict)

    optimizer: str = "adam"
    lr: float = 3e-3
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    step_every: int = 10  # step schedule: epochs between decays
    decay_rate: float = 0.1  # step and exponential schedules
    label_smoothing: float = 0.0
    dropout: float = 0.0  # before the new classifier
    clip_norm: float | None = None
    backbone_lr_scale: float = 0.1  # full mode from pretrained weights: backbone lr = lr x this
    head_epochs: int = 0  # full mode: train the head alone first (fastai's fine_tune)
    unfreeze_from: str | None = None  # full mode: first backbone layer to unfreeze (e.g. "conv4_block1")
    early_stopping: int | None = None  # patience in epochs on validation loss
    ema: float | None = None  # decay of an exponential moving average of the weights

    augment: str = "none"
    augment_options: dict = dataclasses.field(default_factory=dict)
    mixup: float = 0.0
    cutmix: float = 0.0
    cache_features: bool = True  # head mode without augmentation: backbone features computed once

    validation_fraction: float = 0.2
    max_examples: int | None = None
    data_dir: str | None = None
    download: bool = True
    cache: bool | None = None  # decoded images in memory; None: when they fit (finetune.data.AUTO_CACHE_BYTES)
    shuffle: bool = True

    strategy: str = "auto"
    precision: str = "auto"  # the fastest correct choice per device: finetune.devices.precision_policy
    jit: bool = False
    steps_per_execution: int = 1
    seed: int = 0
    top_k: int = 5
    diagnostics: bool = True

    def validate(self) -> "FinetuneConfig":
        for field, allowed in (("mode", MODES), ("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                               ("strategy", STRATEGIES), ("precision", PRECISIONS)):
            if getattr(self, field) not in allowed:
                raise ZooError(f"{field} must be one of {', '.join(allowed)}, not {getattr(self, field)!r}")
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0:
            raise ZooError("epochs must be >= 0, batch size >= 1 and the learning rate > 0")
        if not 0 <= self.dropout < 1:
            raise ZooError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.head_epochs and self.mode != "full":
            raise ZooError("--head-epochs applies to --mode full (head first, then everything)")
        return self
