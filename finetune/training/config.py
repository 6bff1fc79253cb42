"""Every setting of a run, in one dataclass per task written to the run folder's config.json."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import ClassVar

import zoo
from finetune import files
from finetune.data import service
from finetune.data.augment import FLAGS, PRESETS
from finetune.data.pipeline import BALANCE_MODES
from zoo.errors import ZooError
from zoo.eval_transform import EvalTransform, overridden
from zoo.flops import shapes_only
from zoo.registry import min_input_size
from zoo.weights.pretrained import tag_of, weights_evaluation

MODES = ("predict", "head", "full")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "step", "exponential", "cosine")
STRATEGIES = ("auto", "one", "mirrored", "multiworker", "tpu")
PRECISIONS = ("auto", "float32", "mixed")
TASK_COMMANDS = {"classification": "zoo finetune MODEL", "captioning": "zoo finetune captioner"}


def _flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def _range_text(low, high, low_open: bool, high_open: bool) -> str:
    if high is None:
        return f"{'above' if low_open else 'at least'} {low:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def number(field: str, value, low=None, high=None, *, low_open=False, high_open=False, optional=False) -> None:
    """A finite real number in a range (None allowed when `optional`)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ZooError(f"{_flag_name(field)} must be a number, got {value!r}")
    if (low is not None and (value < low or (low_open and value == low))) or (
            high is not None and (value > high or (high_open and value == high))):
        raise ZooError(f"{_flag_name(field)} must be {_range_text(low, high, low_open, high_open)}, got {value:g}")


def whole(field: str, value, minimum: int, *, optional=False, hint: str = "") -> None:
    """A whole number of at least `minimum` (None allowed when `optional`)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ZooError(f"{_flag_name(field)} must be a whole number, got {value!r}")
    if value < minimum:
        raise ZooError(f"{_flag_name(field)} must be at least {minimum}, got {value}" + (f" ({hint})" if hint else ""))


def choice(field: str, value, allowed) -> None:
    if value not in allowed:
        shown = ", ".join(str(option) for option in allowed if option is not None)
        raise ZooError(f"{_flag_name(field)} must be one of {shown}, not {value!r}")


def flag(field: str, value, *, optional=False) -> None:
    if not isinstance(value, bool) and not (optional and value is None):
        raise ZooError(f"{_flag_name(field)} must be true or false, got {value!r}")


def require_text(field: str, value, *, optional=False):
    if (value is None and optional) or (isinstance(value, str) and value.strip()):
        return value
    raise ZooError(f"{_flag_name(field)} must be a non-empty text, got {value!r}")


class RunSettings:
    """What the config of every task shares: its config.json (with the task's name), and the
    rules of resuming (settings in RESUMABLE may change on --resume; any other must match)."""

    TASK: ClassVar[str]
    RESUMABLE: ClassVar[frozenset] = frozenset()
    # what to_dict() records beside the settings, derived from them (read back, it is left out)
    DERIVED: ClassVar[frozenset] = frozenset()

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
        task = values.get("task", cls.TASK)
        if task != cls.TASK:
            command = "zoo finetune captioner" if task == "captioning" else "zoo finetune MODEL"
            raise ZooError(f"{path} holds the settings of a {task} run, not of a {cls.TASK} run: use `{command}`")
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, values: dict):
        values = {key: value for key, value in values.items() if key not in cls.DERIVED}
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
                                                "diagnostics", "data_service"})
    DERIVED: ClassVar[frozenset] = frozenset({"evaluation"})

    model: str = "lenet5"
    data: str | None = None  # a data spec (see finetune.data); None: the built-in shapes
    labels: str | None = None  # a CSV of file names and labels for a folder of images (finetune.data.label_files)
    mode: str = "full"
    weights: str | None = None  # None, "imagenet" or a file
    epochs: int = 20
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

    augment: str = "auto"  # a preset of finetune.data.augment, or auto: see augment_preset
    augment_options: dict = dataclasses.field(default_factory=dict)
    mixup: float = 0.0
    cutmix: float = 0.0
    cache_features: bool = True  # head mode without augmentation: backbone features computed once
    # how validation, test and served images are resized and cropped (`evaluation_transform`): by
    # default as the weights' source evaluates them; "none" squashes the whole image to the input,
    # N resizes its shorter side to N and NxN both sides, then the input is cropped from the centre
    eval_resize: int | str | None = None
    eval_crop: float | None = None  # instead of eval_resize: the crop's share of the resized image (timm's crop_pct)

    validation_fraction: float = 0.2
    folds: int | None = None  # k-fold cross-validation (finetune.practice.folds): this run validates
    fold: int | None = None  # ... on fold `fold` (from 0) of `folds`
    balance: str | None = None  # "oversample" or "undersample": training epochs draw classes equally
    class_weights: bool = False  # weigh each example's loss by n / (classes x its class's count)
    max_examples: int | None = None
    data_dir: str | None = None
    download: bool = True
    cache: bool | None = None  # decoded images in memory; None: when they fit (finetune.data.AUTO_CACHE_BYTES)
    shuffle: bool = True
    data_service: str | None = None  # a tf.data service dispatcher the training stream runs on (finetune.data.service)

    strategy: str = "auto"
    precision: str = "auto"  # the fastest correct choice per device: finetune.devices.precision_policy
    jit: bool = False
    steps_per_execution: int = 1
    seed: int = 0
    top_k: int = 5
    diagnostics: bool = True

    def augment_preset(self) -> str:
        """The augmentation preset the run uses: `augment`, where "auto" is "affine" in full mode and
        "none" in head mode, where the frozen backbone's features are then computed once and cached.

        The default run, LeNet-5 on the built-in shapes for 20 epochs, overfits without augmentation
        (validation accuracy 0.89, train loss 0.006 against 0.42) and fits well with small rotations
        and shifts (0.96, train loss 0.09 against 0.15): scripts/bench_defaults.py."""
        if self.augment != "auto":
            return self.augment
        return "affine" if self.mode == "full" else "none"

    def evaluation_transform(self) -> EvalTransform:
        """How the run's validation, test and served images are resized and cropped: the weights'
        source's transform (a tag's, or one a `.keras` file records; the squash otherwise), with
        eval_resize / eval_crop applied."""
        base = weights_evaluation(zoo.info(self.model), self.weights, self.model_options)
        return overridden(base, self.eval_resize, self.eval_crop, input_side=self.input_shape()[0])

    def to_dict(self) -> dict:
        """The settings, and the evaluation transform they come to (recorded for the run's readers)."""
        return {**super().to_dict(), "evaluation": self.evaluation_transform().to_dict()}

    def validate(self) -> "FinetuneConfig":
        """Checks every setting (types, ranges, the model and its options, weights, augmentation),
        so that a bad value fails before any folder is made or any data is read."""
        for field, allowed in (("mode", MODES), ("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                               ("strategy", STRATEGIES), ("precision", PRECISIONS), ("augment", ("auto", *PRESETS))):
            choice(field, getattr(self, field), allowed)
        spec = zoo.info(require_text("model", self.model))
        whole("epochs", self.epochs, 1)
        whole("batch_size", self.batch_size, 1)
        smallest = min_input_size(spec, self.weights)
        whole("image_size", self.image_size, smallest, optional=True,
              hint=f"{spec.name} takes at least {smallest}x{smallest}")
        choice("channels", self.channels, (1, 3, None))
        number("lr", self.lr, 0, None, low_open=True)
        number("momentum", self.momentum, 0, 1, high_open=True)
        number("weight_decay", self.weight_decay, 0, None)
        number("warmup_epochs", self.warmup_epochs, 0, None)
        whole("step_every", self.step_every, 1)
        number("decay_rate", self.decay_rate, 0, 1, low_open=True)
        number("label_smoothing", self.label_smoothing, 0, 1, high_open=True)
        number("dropout", self.dropout, 0, 1, high_open=True)
        number("clip_norm", self.clip_norm, 0, None, low_open=True, optional=True)
        number("backbone_lr_scale", self.backbone_lr_scale, 0, None)
        whole("head_epochs", self.head_epochs, 0)
        whole("early_stopping", self.early_stopping, 1, optional=True)
        number("ema", self.ema, 0, 1, low_open=True, high_open=True, optional=True)
        number("mixup", self.mixup, 0, None)
        number("cutmix", self.cutmix, 0, None)
        number("validation_fraction", self.validation_fraction, 0, 1, low_open=True, high_open=True)
        whole("folds", self.folds, 2, optional=True)
        whole("fold", self.fold, 0, optional=True)
        if self.fold is not None and (self.folds is None or self.fold >= self.folds):
            raise ZooError(f"fold {self.fold} needs folds above it (folds 0..K-1 of --folds K), got folds={self.folds}")
        choice("balance", self.balance, (*BALANCE_MODES, None))
        flag("class_weights", self.class_weights)
        if self.balance and self.class_weights:
            raise ZooError("--balance and --class-weights each even out the classes: use one of them")
        whole("max_examples", self.max_examples, 1, optional=True)
        whole("steps_per_execution", self.steps_per_execution, 1)
        whole("seed", self.seed, 0)
        whole("top_k", self.top_k, 1)
        for field in ("nesterov", "cache_features", "download", "shuffle", "jit", "diagnostics"):
            flag(field, getattr(self, field))
        flag("cache", self.cache, optional=True)
        for field in ("data", "labels", "data_dir", "weights", "unfreeze_from", "data_service"):
            require_text(field, getattr(self, field), optional=True)
        if self.data_service is not None:
            service.check_address(self.data_service)
            service.refuse_balance(self.balance)
        if not isinstance(self.model_options, dict) or not isinstance(self.augment_options, dict):
            raise ZooError("model_options and augment_options are mappings of option names to values")
        unknown = set(self.model_options) - set(spec.options) - {"classifier_activation"}
        if unknown:
            raise ZooError(f"{spec.name} has no option {', '.join(sorted(unknown))}; its options: "
                           f"{', '.join(sorted(spec.options)) or 'none'}")
        unknown = set(self.augment_options) - set(FLAGS)
        if unknown:
            raise ZooError(f"unknown augmentation flags {', '.join(sorted(unknown))}; known: {', '.join(FLAGS)}")
        if self.head_epochs and self.mode != "full":
            raise ZooError("--head-epochs applies to --mode full (head first, then everything)")
        if self.head_epochs > self.epochs:
            raise ZooError(f"--head-epochs ({self.head_epochs}) cannot exceed --epochs ({self.epochs})")
        if self.weights is not None and self.weights not in spec.weights and not Path(self.weights).exists():
            tags = ", ".join(spec.weights) or "none"
            raise ZooError(f"--weights {self.weights}: no such file, and {spec.name} has no weights of that name "
                           f"(its tags: {tags})")
        if isinstance(self.eval_resize, bool) or not isinstance(self.eval_resize, (int, str, type(None))):
            raise ZooError(f"--eval-resize takes N, NxN or none, not {self.eval_resize!r}")
        self.evaluation_transform()  # a bad --eval-resize or --eval-crop fails here
        if self.mode == "predict" and self.weights is None:
            raise ZooError("--mode predict classifies with trained weights: pass --weights (a tag such as imagenet, "
                           "a .keras file or a run folder)")
        return self

    def input_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of the model's input: the model's default, resized and
        re-channelled as the settings ask."""
        height, width, channels = zoo.info(self.model).default_input_shape
        if self.image_size:
            height = width = self.image_size
        return (height, width, self.channels or channels)


def check_buildable(config: FinetuneConfig) -> None:
    """Builds the model from shapes alone (no weights are made) at the run's input: an option out
    of range, or an input its layers cannot take, fails here rather than after data is read."""
    if config.mode == "predict":
        return
    tag = tag_of(zoo.info(config.model), config.weights) if config.weights else None
    shapes_only(config.model, num_classes=2, input_shape=config.input_shape(), tag=tag, **config.model_options)
