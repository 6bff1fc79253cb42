"""Training a Show and Tell captioner (`zoo.models.captioner`): the captioning task of the shared
run machinery (`finetune.training`: trainer, epoch loop, run folder, resume, TensorBoard).

Its run folder holds what every run's does (`finetune.files`), plus ``captioner.json`` (the
model's config, vocabulary included, so a resumed run rebuilds exactly the same model) and
``samples.png`` (held-out images with their captions); ``metrics.json`` holds BLEU-1..4 of greedy
and beam search on the held-out split.

Training is teacher forcing: every reference caption of an image is one (image, caption) example,
and the objective scores each next word (`finetune.training.objectives.NextWord`). A frozen encoder
(the default) has its image features computed once and standardized with the training images'
statistics, and the decoder alone trains on them. A trained encoder (`train_encoder=True`) encodes
each image once per step and feeds every one of its captions: the same examples as separate pairs,
at a fraction of the encoder's cost.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path

import keras
import tensorflow as tf

from finetune import files
from finetune.captioning.config import CaptioningConfig
from finetune.captioning.evaluation import evaluate_captioner
from finetune.captioning.inputs import (encode_split, feature_pairs, images_with_captions, sample_features,
                                        split_captions)
from finetune.data.captions import load_captions
from finetune.training import devices
from finetune.training.evaluation import evaluate_objective
from finetune.training.loop import Epochs, run_epochs
from finetune.training.objectives import NextWord
from finetune.training.runfolder import RunFolder
from finetune.training.trainer import Trainer, VariableGroup
from zoo import text
from zoo.errors import ZooError
from zoo.factory import create
from zoo.models.captioner import Captioner

MAX_DEFAULT_CAPTION_LENGTH = 30  # captions longer than the longest training caption are cut here
SETTINGS = {field.name for field in dataclasses.fields(CaptioningConfig)}


def train_captioner(*, out, resume: bool = False, data=None, **settings) -> dict:
    """Trains a captioner into the run folder `out`, scores it with BLEU and returns its metrics.

    With `resume`, continues the run in `out` from its last completed epoch with its own settings;
    of the settings given, those a resume may change (epochs, verbose, where the data is) apply,
    and any other that differs from the run's is refused by name.

    Args:
        out: the run folder; it must be new or empty unless `resume`.
        resume: continue the run in `out` from its last completed epoch.
        data: a data spec for `finetune.data.load_captions` ("builtin:zoo_shape_captions" by
            default, a Flickr8k-style folder, "tfds:coco_captions"), or an object with `train`,
            `validation` and `test` datasets of (image float32 [0, 255] HxWxC, captions tf.string [R]).
        backbone: the registered image model used as the encoder (VGG-11 by default, see
            DEFAULT_BACKBONE; the model's own default, for pretrained weights, is ResNet-18).
        rnn: "lstm" or "gru".
        epochs: the total number of epochs (a resumed run continues up to it).
        batch_size: (image, caption) pairs per step.
        lr: Adam's learning rate (the peak of the cosine schedule).
        seed: seeds the weights, the shuffling and the data split.
        image_size: the encoder's input height and width.
        backbone_weights: pretrained weights for the backbone ("imagenet", a file; see zoo.create).
        train_encoder: train the backbone with the decoder; by default it is frozen and its
            features are computed once. Even randomly initialized (no pretrained weights offline),
            a frozen VGG's standardized features caption the built-in scenes; training a backbone
            from scratch through the decoder was slower and worse there.
        encoder_pooling: "avg", "max" or "flatten" (see `Captioner`).
        embedding_dim, units, num_layers, dropout: the decoder's size (see `Captioner`).
        vocabulary_size: the most tokens (4 special tokens included); None keeps every word.
        min_word_count: rarer training words become the unknown token.
        max_caption_length: words kept per training caption and decoded at most; None: the
            longest training caption (at most 30).
        lr_schedule: "cosine" (decay to 5% over the run) or "constant".
        clip_norm: gradient norm clipping, as LSTM language models need; None for none.
        beam_width, length_penalty: the beam search scored in metrics.json (greedy is scored too).
        max_examples: use at most this many images per split (quick runs).
        data_dir, download: where data lives, and whether it may be downloaded.
        num_samples: held-out images drawn with their captions in samples.png.
        verbose: 0 silent, 1 progress bars, 2 one line per epoch.
    """
    unknown = set(settings) - SETTINGS
    if unknown:
        raise ZooError(f"not settings of a captioning run: {', '.join(sorted(unknown))}")
    in_memory_data = data is not None and not isinstance(data, (str, os.PathLike))
    if data is not None:
        settings["data"] = "<in-memory>" if in_memory_data else str(data)
    if resume:
        config, _ = CaptioningConfig.load(out).resumed_with(settings)
        if not (Path(out) / files.CAPTIONER_CONFIG).is_file():
            raise ZooError(f"nothing to resume in {out}: it holds no captioning run ({files.CAPTIONER_CONFIG})")
    else:
        config = CaptioningConfig(**settings).validate()  # before the folder is made: bad settings leave none
    with RunFolder.create(out, resume=resume) as folder:
        return _train(config, folder, resume, data if in_memory_data else None)


def _train(config: CaptioningConfig, folder: RunFolder, resume: bool, data) -> dict:
    """The run itself, in a folder this process owns."""
    folder.write_json(files.CONFIG, config.to_dict())
    keras.utils.set_random_seed(config.seed)
    strategy = devices.make_strategy("auto")

    bundle = data if data is not None else load_captions(
        config.data, image_size=config.image_size, seed=config.seed, data_dir=config.data_dir,
        download=config.download, max_examples=config.max_examples)
    train_captions = split_captions(bundle.train)
    with strategy.scope():
        if resume:
            captioner = Captioner.from_config(folder.read_json(files.CAPTIONER_CONFIG))
        else:
            captioner = _new_captioner(config, bundle, train_captions)
            if config.backbone_weights is not None:
                _load_backbone_weights(captioner, config.backbone_weights)
    folder.write_json(files.CAPTIONER_CONFIG, captioner.get_config())

    references_per_image = sum(len(captions) for captions in train_captions) / len(train_captions)
    images_per_step = max(1, round(config.batch_size / references_per_image))
    vectorizer = text.caption_vectorizer(captioner.vocabulary)
    if config.train_encoder:
        steps_per_epoch = math.ceil(len(train_captions) / images_per_step)
        with strategy.scope():
            trained = EveryCaptionOfEachImage(captioner)
        train = images_with_captions(bundle.train, vectorizer, captioner, images_per_step, config.seed, shuffle=True)
        validation = images_with_captions(bundle.validation, vectorizer, captioner, images_per_step, config.seed)
    else:
        steps_per_epoch = math.ceil(sum(len(captions) for captions in train_captions) / config.batch_size)
        trained = captioner.decoder
        train_features, train_ids, train_owners = encode_split(captioner, bundle.train, vectorizer, config)
        train = feature_pairs(train_features, train_ids, train_owners, config, shuffle=True)
        validation = (None if bundle.validation is None else
                      feature_pairs(*encode_split(captioner, bundle.validation, vectorizer, config), config))
    with strategy.scope():
        optimizer = keras.optimizers.Adam(_learning_rate(config, steps_per_epoch), clipnorm=config.clip_norm)
        optimizer.build(captioner.trainable_variables)
    objective = NextWord()
    trainer = Trainer(trained, strategy, steps_per_epoch, objective,
                      [VariableGroup(optimizer, lambda: trained.trainable_variables)])

    def adapt_statistics(epoch: int) -> None:
        # statistics of the training images only, once; a resumed run has those it trained with
        if epoch == 0:
            captioner.adapt_feature_statistics(
                train_features if not config.train_encoder else sample_features(captioner, bundle.train, config))

    epochs = Epochs(
        total=config.epochs,
        validate=lambda: None if validation is None else evaluate_objective(trained, validation, objective),
        saved_model=captioner, checkpointed={"model": captioner, "optimizer": optimizer},
        before_epoch=adapt_statistics, learning_rate=config.lr)
    started = time.perf_counter()
    iterator = iter(strategy.experimental_distribute_dataset(train.repeat()))
    run_epochs(trainer, iterator, epochs, folder, resume=resume, verbose=config.verbose)
    training_seconds = time.perf_counter() - started

    best = keras.saving.load_model(folder / files.BEST, safe_mode=True) if (folder / files.BEST).is_file() else captioner
    held_out_name = "test" if getattr(bundle, "test", None) is not None else "validation"
    metrics = evaluate_captioner(best, getattr(bundle, held_out_name), beam_width=config.beam_width,
                                 length_penalty=config.length_penalty, batch_size=config.batch_size,
                                 num_samples=config.num_samples, samples_png=folder / files.SAMPLES)
    rows = folder.history()
    metrics.update(
        split=held_out_name, epochs_completed=len(rows),
        training_seconds=round(sum(float(row.get("seconds", 0.0)) for row in rows), 1),
        training_seconds_this_call=round(training_seconds, 1),
    )
    if rows and "val_loss" in rows[0]:
        best_row = min(rows, key=lambda row: float(row["val_loss"]))
        metrics.update(best_epoch=int(best_row["epoch"]), best_val_loss=float(best_row["val_loss"]))
    folder.write_json(files.METRICS, metrics)
    return metrics


def _new_captioner(config: CaptioningConfig, bundle, train_captions) -> Captioner:
    all_captions = [caption for captions in train_captions for caption in captions]
    vocabulary = text.build_vocabulary(all_captions, max_size=config.vocabulary_size,
                                       min_count=config.min_word_count)
    max_length = config.max_caption_length
    if max_length is None:
        max_length = min(MAX_DEFAULT_CAPTION_LENGTH, max(len(words) for words in text.caption_words(all_captions)))
    channels = bundle.train.element_spec[0].shape[-1] or 3
    return Captioner(vocabulary, backbone=config.backbone, rnn=config.rnn,
                     image_shape=(config.image_size, config.image_size, channels),
                     embedding_dim=config.embedding_dim, units=config.units, num_layers=config.num_layers,
                     dropout=config.dropout, train_encoder=config.train_encoder,
                     encoder_pooling=config.encoder_pooling, max_caption_length=max_length)


def _load_backbone_weights(captioner, weights: str) -> None:
    """Pretrained weights into the encoder's backbone, through the zoo's own weight loading."""
    pretrained = create(captioner.backbone, weights=weights, include_top=False, pooling="avg",
                        input_shape=captioner.image_shape)
    captioner.encoder.get_layer(pretrained.name).set_weights(pretrained.get_weights())


def _learning_rate(config: CaptioningConfig, steps_per_epoch: int):
    if config.lr_schedule == "constant":
        return config.lr
    return keras.optimizers.schedules.CosineDecay(config.lr, decay_steps=config.epochs * steps_per_epoch, alpha=0.05)


class EveryCaptionOfEachImage(keras.Model):
    """The training view of a captioner whose encoder trains: images [B, H, W, C] and their caption
    inputs [B, R, T] -> logits [B * R, T, V]. Each image is encoded once and its features feed
    each of its R captions: the examples of R (image, caption) pairs, for one encoder pass."""

    def __init__(self, captioner, **kwargs):
        super().__init__(name=f"{captioner.name}_training", **kwargs)
        self.captioner = captioner

    def call(self, inputs, training=False):
        images, tokens = inputs
        features = self.captioner.encoder(images, training=training)
        features = tf.repeat(features, tf.shape(tokens)[1], axis=0)
        tokens = tf.reshape(tokens, [-1, tf.shape(tokens)[2]])
        return self.captioner.decoder([features, tokens], training=training)
