"""Every setting of a fine-tuning run, in one dataclass written to the run folder's config.json."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from zoo.errors import ZooError

MODES = ("predict", "head", "full")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "step", "exponential", "cosine")
STRATEGIES = ("auto", "one", "mirrored", "multiworker", "tpu")
PRECISIONS = ("auto", "float32", "mixed")


@dataclasses.dataclass
class FinetuneConfig:
    """A fine-tuning run. Defaults are sensible for the built-in data; `for_model` adapts them."""

    model: str = "lenet5"
    data: str | None = None  # a data spec (see finetune.data); None: the built-in shapes
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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        from finetune.runfolder import write_atomically

        write_atomically(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path) -> "FinetuneConfig":
        path = Path(path)
        if path.is_dir():
            path = path / "config.json"
        if not path.is_file():
            raise ZooError(f"no config file at {path}")
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ZooError(f"{path} is not valid JSON: {error}") from None
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, values: dict) -> "FinetuneConfig":
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ZooError(f"unknown settings in config: {', '.join(sorted(unknown))}")
        return cls(**values).validate()
