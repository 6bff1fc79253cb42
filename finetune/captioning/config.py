"""Every setting of a captioning run, written to its run folder's config.json."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from finetune.data.specs import DEFAULT_CAPTIONS_SPEC
from finetune.training.config import RunSettings
from zoo import decoding
from zoo.errors import ZooError

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
        if self.rnn not in ("lstm", "gru"):
            raise ZooError(f"rnn must be lstm or gru, not {self.rnn!r}")
        for setting in ("epochs", "batch_size", "image_size", "embedding_dim", "units", "num_layers",
                        "beam_width", "min_word_count"):
            if getattr(self, setting) < 1:
                raise ZooError(f"{setting} must be at least 1, got {getattr(self, setting)}")
        if self.lr <= 0:
            raise ZooError(f"the learning rate must be positive, got {self.lr}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ZooError(f"lr_schedule must be cosine or constant, not {self.lr_schedule!r}")
        return self
