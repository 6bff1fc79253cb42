"""Every setting of a captioning run, written to its run folder's config.json."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from finetune.data.specs import DEFAULT_CAPTIONS_SPEC
import zoo
from finetune.training.config import RunSettings, choice, flag, number, require_text, whole
from zoo import decoding
from zoo.errors import ZooError
from zoo.models.captioner import ENCODER_POOLING
from zoo.text import SPECIAL_TOKENS

# Frozen and randomly initialized (no pretrained weights offline), VGG-11's features caption the
# built-in scenes better than ResNet-18's: BLEU-4 0.55/0.60 (greedy/beam) against 0.43/0.49 in
# the same 12 epochs (scripts/train_captioner.py). Its BatchNorm-free layers keep more of the image.
DEFAULT_BACKBONE = "vgg11"
LR_SCHEDULES = ("cosine", "constant")


@dataclasses.dataclass
class CaptioningConfig(RunSettings):
    """Every setting of a captioning run; see `finetune.captioning.train_captioner` for each one."""

    TASK: ClassVar[str] = "captioning"
    RESUMABLE: ClassVar[frozenset] = frozenset({"epochs", "verbose", "data_dir", "download"})

    data: str | None = DEFAULT_CAPTIONS_SPEC
    backbone: str = DEFAULT_BACKBONE
    rnn: str = "lstm"
    image_size: int = 64
    backbone_weights: str | None = None
    train_encoder: bool = False
    encoder_pooling: str = "avg"
    embedding_dim: int = 256
    units: int = 256
    num_layers: int = 1
    dropout: float = 0.3
    vocabulary_size: int | None = None
    min_word_count: int = 1
    max_caption_length: int | None = None
    epochs: int = 12
    batch_size: int = 64
    lr: float = 2e-3
    lr_schedule: str = "cosine"
    clip_norm: float | None = 5.0
    seed: int = 0
    beam_width: int = decoding.DEFAULT_BEAM_WIDTH
    length_penalty: float = decoding.DEFAULT_LENGTH_PENALTY
    max_examples: int | None = None
    data_dir: str | None = None
    download: bool = False
    num_samples: int = 12
    verbose: int = 2

    def validate(self) -> "CaptioningConfig":
        """Checks every setting, so that a bad value fails before any folder is made."""
        choice("rnn", self.rnn, ("lstm", "gru"))
        choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        choice("encoder_pooling", self.encoder_pooling, tuple(option for option in ENCODER_POOLING if option))
        if zoo.info(require_text("backbone", self.backbone)).family == "captioner":
            raise ZooError("a captioner's backbone is an image model such as vgg11 or resnet18, not a captioner")
        whole("image_size", self.image_size, zoo.info(self.backbone).min_input_size,
              hint=f"{self.backbone} takes at least {zoo.info(self.backbone).min_input_size} pixels a side")
        for setting in ("epochs", "batch_size", "embedding_dim", "units", "num_layers", "beam_width", "min_word_count"):
            whole(setting, getattr(self, setting), 1)
        whole("vocabulary_size", self.vocabulary_size, len(SPECIAL_TOKENS) + 1, optional=True)
        whole("max_caption_length", self.max_caption_length, 1, optional=True)
        whole("max_examples", self.max_examples, 1, optional=True)
        whole("num_samples", self.num_samples, 0)
        whole("seed", self.seed, 0)
        choice("verbose", self.verbose, (0, 1, 2))
        number("lr", self.lr, 0, None, low_open=True)
        number("dropout", self.dropout, 0, 1, high_open=True)
        number("clip_norm", self.clip_norm, 0, None, low_open=True, optional=True)
        number("length_penalty", self.length_penalty, 0, None)
        flag("train_encoder", self.train_encoder)
        flag("download", self.download)
        for field in ("data", "data_dir", "backbone_weights"):
            require_text(field, getattr(self, field), optional=True)
        return self
