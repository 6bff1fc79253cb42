"""Training, scoring and export of a Show and Tell captioner (`zoo.models.captioner`).

A run folder holds
- ``config.json``: every setting (``"task": "captioning"``), ``captioner.json``: the model's config
  (vocabulary included), so a resumed run rebuilds exactly the same model;
- ``history.csv``: one row per completed epoch, written as the epoch ends;
- ``best.keras`` (lowest validation loss) and ``last.keras``; ``checkpoints/``: weights, optimizer
  and epoch together, what ``resume`` continues from;
- ``metrics.json``: BLEU-1..4 of greedy and beam search on the held-out split, with sample
  captions, and ``samples.png``: those images with their captions; ``logs/``: TensorBoard scalars.

Training is teacher forcing with `model.fit`: every reference caption of an image is one (image,
caption) example. A frozen encoder (the default) has its image features computed once and
standardized with the training images' statistics, and the decoder alone is fitted on them. A
trained encoder (`train_encoder=True`) encodes each image once per step and feeds every one of
its captions: the same examples as separate pairs, at a fraction of the encoder's cost.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from finetune.bleu import bleu_scores
from finetune.runfolder import (BEST, CHECKPOINTS, CONFIG, HISTORY, LAST, LOGS, METRICS, read_history,
                                save_model_atomically, write_history, write_json)
from zoo import decoding, text
from zoo.errors import ZooError
from zoo.models.captioner import Captioner

DEFAULT_DATA = "builtin:zoo_shape_captions"
# Frozen and randomly initialized (no pretrained weights offline), VGG-11's features caption the
# built-in scenes better than ResNet-18's: BLEU-4 0.55/0.60 (greedy/beam) against 0.43/0.49 in
# the same 12 epochs (scripts/train_captioner.py). Its BatchNorm-free layers keep more of the image.
DEFAULT_BACKBONE = "vgg11"
MAX_DEFAULT_CAPTION_LENGTH = 30  # captions longer than the longest training caption are cut here

MODEL_CONFIG = "captioner.json"
SAMPLES = "samples.png"
EXPORT_METADATA = Path("assets.extra") / "zoo.json"
EXPORT_KERAS_COPY = Path("assets.extra") / "model.keras"

# Settings a resumed run may change; any other must match the run folder's config.json.
RESUMABLE_CHANGES = {"epochs", "verbose"}


@dataclasses.dataclass
class CaptioningConfig:
    """Every setting of a captioning run; see `train_captioner` for what each one does."""

    data: str | None = DEFAULT_DATA
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
    task: str = "captioning"


def train_captioner(*, data=None, backbone: str = DEFAULT_BACKBONE, rnn: str = "lstm", epochs: int = 12,
                    batch_size: int = 64, lr: float = 2e-3, out, resume: bool = False, seed: int = 0,
                    image_size: int = 64, backbone_weights: str | None = None, train_encoder: bool = False,
                    encoder_pooling: str = "avg", embedding_dim: int = 256, units: int = 256,
                    num_layers: int = 1, dropout: float = 0.3, vocabulary_size: int | None = None,
                    min_word_count: int = 1, max_caption_length: int | None = None, lr_schedule: str = "cosine",
                    clip_norm: float | None = 5.0, beam_width: int = decoding.DEFAULT_BEAM_WIDTH,
                    length_penalty: float = decoding.DEFAULT_LENGTH_PENALTY, max_examples: int | None = None,
                    data_dir: str | None = None, download: bool = False, num_samples: int = 12,
                    verbose: int = 2) -> dict:
    """Trains a captioner into the run folder `out`, scores it with BLEU and returns its metrics.

    Args:
        data: a data spec for `finetune.data.load_captions` ("builtin:zoo_shape_captions" by
            default, a Flickr8k-style folder, "tfds:coco_captions"), or an object with `train`,
            `validation` and `test` datasets of (image float32 [0, 255] HxWxC, captions tf.string [R]).
        backbone: the registered image model used as the encoder (VGG-11 by default, see
            DEFAULT_BACKBONE; the model's own default, for pretrained weights, is ResNet-18).
        rnn: "lstm" or "gru".
        epochs: the total number of epochs (a resumed run continues up to it).
        batch_size: (image, caption) pairs per step.
        lr: Adam's learning rate (the peak of the cosine schedule).
        out: the run folder; it must be new or empty unless `resume`.
        resume: continue the run in `out` from its last completed epoch.
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
    settings = {key: value for key, value in locals().items() if key not in ("out", "resume")}
    in_memory_data = data is not None and not isinstance(data, (str, os.PathLike))
    settings["data"] = "<in-memory>" if in_memory_data else str(data or DEFAULT_DATA)
    config = CaptioningConfig(**settings)
    _check(config)
    out = Path(out)
    _prepare_run_folder(out, config, resume)
    keras.utils.set_random_seed(config.seed)

    bundle = data if in_memory_data else _load_data(config)
    train_captions = _split_captions(bundle.train)
    if resume:
        captioner = Captioner.from_config(json.loads((out / MODEL_CONFIG).read_text()))
    else:
        captioner = _new_captioner(config, bundle, train_captions)
        if config.backbone_weights is not None:
            _load_backbone_weights(captioner, config.backbone_weights)
        write_json(out / MODEL_CONFIG, captioner.get_config())

    references_per_image = sum(len(captions) for captions in train_captions) / len(train_captions)
    images_per_step = max(1, round(config.batch_size / references_per_image))
    if config.train_encoder:
        steps_per_epoch = math.ceil(len(train_captions) / images_per_step)
    else:
        steps_per_epoch = math.ceil(sum(len(captions) for captions in train_captions) / config.batch_size)
    optimizer = keras.optimizers.Adam(_learning_rate(config, steps_per_epoch), clipnorm=config.clip_norm)
    optimizer.build(captioner.trainable_variables)
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="completed_epochs")
    checkpoint = tf.train.Checkpoint(model=captioner, optimizer=optimizer, completed_epochs=epoch)
    checkpoints = tf.train.CheckpointManager(checkpoint, out / CHECKPOINTS, max_to_keep=1)
    restored = bool(resume and checkpoints.latest_checkpoint)
    if restored:
        checkpoint.restore(checkpoints.latest_checkpoint).assert_existing_objects_matched()
    history = read_history(out / HISTORY)
    if len(history) > int(epoch.numpy()):  # rows written after the last checkpoint: their epochs run again
        history = history[: int(epoch.numpy())]
        write_history(out / HISTORY, history)

    vectorizer = text.caption_vectorizer(captioner.vocabulary)
    if config.train_encoder:
        fitted = EveryCaptionOfEachImage(captioner)
        train = _images_with_captions(bundle.train, vectorizer, captioner, images_per_step, config.seed, shuffle=True)
        validation = _images_with_captions(bundle.validation, vectorizer, captioner, images_per_step, config.seed)
    else:
        fitted = captioner.decoder
        train_features, train_ids, train_owners = _encode_split(captioner, bundle.train, vectorizer, config)
        train = _feature_pairs(train_features, train_ids, train_owners, config, shuffle=True)
        validation = (None if bundle.validation is None else
                      _feature_pairs(*_encode_split(captioner, bundle.validation, vectorizer, config), config))
    if not restored:  # statistics of the training images only; a checkpoint holds those it trained with
        captioner.adapt_feature_statistics(
            train_features if not config.train_encoder else _sample_features(captioner, bundle.train, config))
    fitted.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                   metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])

    started = time.perf_counter()
    if int(epoch.numpy()) < config.epochs:
        run_folder = _RunFolderWriter(captioner, out, history, checkpoints, epoch,
                                      monitor="val_loss" if validation is not None else "loss")
        fitted.fit(train, validation_data=validation, epochs=config.epochs, initial_epoch=int(epoch.numpy()),
                   callbacks=[run_folder], shuffle=False, verbose=config.verbose)
    training_seconds = time.perf_counter() - started

    best = keras.saving.load_model(out / BEST, safe_mode=True) if (out / BEST).is_file() else captioner
    held_out_name = "test" if getattr(bundle, "test", None) is not None else "validation"
    metrics = evaluate_captioner(best, getattr(bundle, held_out_name), beam_width=config.beam_width,
                                 length_penalty=config.length_penalty, batch_size=config.batch_size,
                                 num_samples=config.num_samples, samples_png=out / SAMPLES)
    rows = read_history(out / HISTORY)
    metrics.update(
        split=held_out_name, epochs_completed=len(rows),
        training_seconds=round(sum(float(row.get("seconds", 0.0)) for row in rows), 1),
        training_seconds_this_call=round(training_seconds, 1),
    )
    if rows and "val_loss" in rows[0]:
        best_row = min(rows, key=lambda row: float(row["val_loss"]))
        metrics.update(best_epoch=int(best_row["epoch"]), best_val_loss=float(best_row["val_loss"]))
    write_json(out / METRICS, metrics)
    return metrics


def evaluate_captioner(captioner, dataset, *, beam_width: int = decoding.DEFAULT_BEAM_WIDTH,
                       length_penalty: float = decoding.DEFAULT_LENGTH_PENALTY, batch_size: int = 64,
                       num_samples: int = 0, samples_png=None) -> dict:
    """Corpus BLEU-1..4 of greedy and beam-search captions of `dataset` (image, captions) against
    all references of each image; with samples of images and captions (drawn into `samples_png`)."""
    generator = decoding.CaptionGenerator(captioner, length_penalty=length_penalty)
    references, greedy, beam, sample_images = [], [], [], []
    started = time.perf_counter()
    for images, captions in dataset.ragged_batch(batch_size):
        greedy += generator(images, beam_width=1)
        beam += generator(images, beam_width=beam_width)
        references += [[caption.decode("utf-8") for caption in image_captions]
                       for image_captions in _ragged(captions).to_list()]
        if len(sample_images) < num_samples:
            sample_images += list(images.numpy()[: num_samples - len(sample_images)])
    if not references:
        raise ZooError("the held-out split is empty: there is nothing to score")
    samples = [{"greedy": greedy[index], "beam": beam[index], "references": references[index]}
               for index in range(len(sample_images))]
    if samples_png is not None and sample_images:
        draw_samples(sample_images, samples, samples_png)
    return {
        "images": len(references),
        "greedy": bleu_scores(references, greedy),
        "beam": bleu_scores(references, beam),
        "beam_width": beam_width,
        "length_penalty": length_penalty,
        "evaluation_seconds": round(time.perf_counter() - started, 1),
        "samples": samples,
    }


def draw_samples(images, samples, path) -> None:
    """A grid of images, each titled with its beam-search caption and its first reference."""
    import matplotlib.pyplot as plt

    from finetune.plots import save_figure

    columns = min(4, len(images))
    rows = math.ceil(len(images) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.6 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, image, sample in zip(axes.flat, images, samples):
        axis.imshow(np.clip(np.asarray(image), 0, 255).astype("uint8").squeeze())
        axis.set_title(f"{_wrap(sample['beam'])}\n(ref: {_wrap(sample['references'][0])})", fontsize=7)
    figure.tight_layout()
    save_figure(figure, path)


def load_captioner(source) -> Captioner:
    """A captioner from a run folder (its best.keras, else last.keras) or a `.keras` file."""
    source = Path(source)
    if source.is_dir():
        candidates = [source / BEST, source / LAST]
        path = next((candidate for candidate in candidates if candidate.is_file()), None)
        if path is None:
            raise ZooError(f"{source} holds no trained captioner ({BEST} or {LAST}); has its run finished an epoch?")
    elif source.suffix == ".keras" and source.is_file():
        path = source
    else:
        raise ZooError(f"{source} is neither a captioning run folder nor a .keras file")
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # a damaged or foreign file: say which, without a traceback
        raise ZooError(f"cannot load {path}: {error}") from None
    if not isinstance(model, Captioner):
        raise ZooError(f"{path} holds a {type(model).__name__}, not a captioner")
    return model


def export_captioner(source, base_dir, name: str | None = None, version: int | None = None, *,
                     beam_width: int = decoding.DEFAULT_BEAM_WIDTH,
                     length_penalty: float = decoding.DEFAULT_LENGTH_PENALTY) -> Path:
    """Exports a captioner (run folder, `.keras` file or model) as a SavedModel at base_dir/name/version.

    Signatures: ``serving_default`` takes ``images``, encoded images tf.string [N] (PNG, JPEG, GIF,
    BMP, any size), and returns ``captions`` tf.string [N] by beam search of `beam_width`;
    ``greedy`` does the same by greedy search. TensorFlow alone can load and run it. The version is
    written to a hidden sibling folder and renamed into place when complete.
    """
    captioner = source if isinstance(source, Captioner) else load_captioner(source)
    name = name or (Path(source).resolve().name if not isinstance(source, Captioner) else captioner.name)
    name = Path(name).stem if name.endswith(".keras") else name
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ZooError(f"{name!r} cannot name a served model: use letters, digits, '.', '_' and '-'")
    model_dir = Path(base_dir) / name
    model_dir.mkdir(parents=True, exist_ok=True)
    if version is None:
        version = 1 + max((int(child.name) for child in model_dir.iterdir() if child.name.isdigit()), default=0)
    if int(version) < 1:
        raise ZooError(f"versions are positive integers, not {version}")
    target = model_dir / str(int(version))
    if target.exists():
        raise ZooError(f"{target} already exists; pick another version")

    generator = decoding.CaptionGenerator(captioner, length_penalty=length_penalty)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", suffix=".partial", dir=model_dir))
    try:
        archive = keras.export.ExportArchive()
        archive.track(captioner)
        archive.track(generator.words)  # the id -> word lookup table
        for endpoint, width in (("serving_default", beam_width), ("greedy", 1)):
            archive.add_endpoint(endpoint, _serving_function(generator, width))
        archive.write_out(str(staging), verbose=False)
        (staging / EXPORT_METADATA).parent.mkdir(exist_ok=True)
        captioner.save(staging / EXPORT_KERAS_COPY)
        metadata = {"task": "captioning", "model": captioner.name, "input_shape": list(captioner.image_shape),
                    "beam_width": beam_width, "length_penalty": length_penalty,
                    "max_caption_length": captioner.max_caption_length,
                    "source": str(Path(source).resolve()) if not isinstance(source, Captioner) else None}
        (staging / EXPORT_METADATA).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf8")
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _serving_function(generator, beam_width: int):
    """Encoded images tf.string [N] -> {"captions": tf.string [N]}, as a graph (the search loops
    are tf.while_loops already, so AutoGraph has nothing to convert)."""
    def serve(images):
        return {"captions": generator.caption_encoded(images, beam_width)}

    return tf.function(serve, input_signature=[tf.TensorSpec([None], tf.string, name="images")], autograph=False)


# The pieces of a run.

def _check(config: CaptioningConfig) -> None:
    if config.rnn not in ("lstm", "gru"):
        raise ZooError(f"rnn must be lstm or gru, not {config.rnn!r}")
    for setting in ("epochs", "batch_size", "image_size", "embedding_dim", "units", "num_layers",
                    "beam_width", "min_word_count"):
        if getattr(config, setting) < 1:
            raise ZooError(f"{setting} must be at least 1, got {getattr(config, setting)}")
    if config.lr <= 0:
        raise ZooError(f"the learning rate must be positive, got {config.lr}")
    if config.lr_schedule not in ("cosine", "constant"):
        raise ZooError(f"lr_schedule must be cosine or constant, not {config.lr_schedule!r}")


def _prepare_run_folder(out: Path, config: CaptioningConfig, resume: bool) -> None:
    """A new run needs a new or empty folder; a resumed one the same settings (bar `epochs`)."""
    if out.exists() and not out.is_dir():
        raise ZooError(f"{out} exists and is not a folder; pick another output folder")
    if resume:
        if not (out / CONFIG).is_file() or not (out / MODEL_CONFIG).is_file():
            raise ZooError(f"nothing to resume in {out}: it holds no captioning run ({CONFIG}, {MODEL_CONFIG})")
        saved = json.loads((out / CONFIG).read_text())
        current = dataclasses.asdict(config)
        changed = sorted(key for key in current if key not in RESUMABLE_CHANGES and saved.get(key) != current[key])
        if changed:
            details = ", ".join(f"{key}={saved.get(key)!r} (now {current[key]!r})" for key in changed)
            raise ZooError(f"{out} was trained with other settings: {details}; resume with the same settings")
    elif out.is_dir() and any(out.iterdir()):
        raise ZooError(f"{out} already holds a run; resume it or pick another output folder")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / CONFIG, dataclasses.asdict(config))


def _load_data(config: CaptioningConfig):
    try:
        from finetune.data import load_captions
    except ImportError as error:
        raise ZooError(f"captioning data needs finetune.data.load_captions, which cannot be imported ({error}); "
                       "pass `data` as an object with train/validation/test datasets instead") from None
    return load_captions(config.data, image_size=config.image_size, batch_size=config.batch_size,
                         seed=config.seed, data_dir=config.data_dir, download=config.download,
                         max_examples=config.max_examples)


def _split_captions(dataset) -> list[list[str]]:
    """The reference captions of every image of a split, as Python strings."""
    captions = []
    captions_only = tf.autograph.experimental.do_not_convert(lambda image, image_captions: image_captions)
    for batch in dataset.map(captions_only).ragged_batch(256):
        captions += [[caption.decode("utf-8") for caption in image] for image in _ragged(batch).to_list()]
    if not captions:
        raise ZooError("the training split is empty")
    return captions


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
    from zoo.registry import create

    pretrained = create(captioner.backbone, weights=weights, include_top=False, pooling="avg",
                        input_shape=captioner.image_shape)
    captioner.encoder.get_layer(pretrained.name).set_weights(pretrained.get_weights())


def _learning_rate(config: CaptioningConfig, steps_per_epoch: int):
    if config.lr_schedule == "constant":
        return config.lr
    return keras.optimizers.schedules.CosineDecay(config.lr, decay_steps=config.epochs * steps_per_epoch, alpha=0.05)


def _ragged(captions):
    """Captions of a batch as a RaggedTensor [B, None] (ragged_batch gives a dense one when every
    image has as many references)."""
    return captions if isinstance(captions, tf.RaggedTensor) else tf.RaggedTensor.from_tensor(captions)


def _teacher_forcing(ids):
    """Caption ids [B, L + 2] -> (inputs, targets), cut to the longest caption of the batch."""
    length = tf.reduce_max(tf.math.count_nonzero(ids, axis=1, dtype=tf.int32))
    return ids[:, : length - 1], ids[:, 1:length]


def _encoder_function(captioner):
    return tf.function(lambda images: captioner.encoder(images, training=False), autograph=False,
                       input_signature=[tf.TensorSpec([None, *captioner.image_shape], tf.float32)])


def _encode_split(captioner, dataset, vectorizer, config: CaptioningConfig):
    """The encoder's features of every image [N, F], the ids of every caption [P, L + 2] and the
    image each caption describes [P]: one encoder pass over the split."""
    encode = _encoder_function(captioner)
    features, ids, owners = [], [], []
    for images, captions in dataset.ragged_batch(config.batch_size):
        captions = _ragged(captions)
        first = sum(len(batch) for batch in features)
        features.append(encode(images).numpy())
        caption_ids = text.encode_captions(vectorizer, captions.flat_values, captioner.max_caption_length)
        ids.append(caption_ids.numpy())
        owners.append(first + captions.value_rowids().numpy())
    return np.concatenate(features), np.concatenate(ids), np.concatenate(owners)


def _sample_features(captioner, dataset, config: CaptioningConfig, count: int = 2000):
    """Encoder features of the first `count` training images, for the feature statistics."""
    encode = _encoder_function(captioner)
    image_only = tf.autograph.experimental.do_not_convert(lambda image, captions: image)
    images = dataset.map(image_only).take(count).batch(config.batch_size)
    return np.concatenate([encode(batch).numpy() for batch in images])


def _feature_pairs(features, ids, owners, config: CaptioningConfig, shuffle: bool = False):
    """((image features, caption inputs), caption targets) batches of one split's cached features."""
    pairs = tf.data.Dataset.from_tensor_slices((owners, ids))
    if shuffle:
        pairs = pairs.shuffle(len(ids), seed=config.seed, reshuffle_each_iteration=True)
    table = tf.constant(features)

    @tf.autograph.experimental.do_not_convert  # plain graph code, like every tf.data function here
    def to_example(owner, caption_ids):
        inputs, targets = _teacher_forcing(caption_ids)
        return (tf.gather(table, owner), inputs), targets

    return pairs.batch(config.batch_size).map(to_example, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


def _images_with_captions(dataset, vectorizer, captioner, images_per_step: int, seed: int, shuffle: bool = False):
    """((images [B, H, W, C], caption inputs [B, R, T]), caption targets [B * R, T]) batches for
    `EveryCaptionOfEachImage`; images with fewer than R references are padded with empty captions,
    which the mask leaves out of the loss."""
    if dataset is None:
        return None
    max_length = captioner.max_caption_length

    @tf.autograph.experimental.do_not_convert
    def encode(image, captions):
        return image, text.encode_captions(vectorizer, captions, max_length)

    images = dataset.map(encode, num_parallel_calls=tf.data.AUTOTUNE)
    if shuffle:
        images = images.shuffle(1024, seed=seed, reshuffle_each_iteration=True)
    padded_shapes = (list(captioner.image_shape), [None, max_length + 2])

    @tf.autograph.experimental.do_not_convert
    def to_example(images, caption_ids):
        inputs, targets = _teacher_forcing(tf.reshape(caption_ids, [-1, max_length + 2]))
        references = tf.shape(caption_ids)[1]
        return (images, tf.reshape(inputs, [-1, references, tf.shape(inputs)[1]])), targets

    batches = images.padded_batch(images_per_step, padded_shapes=padded_shapes)
    return batches.map(to_example, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


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


class _RunFolderWriter(keras.callbacks.Callback):
    """At each epoch's end: its history row, best.keras when it improved, last.keras, then the
    checkpoint. The checkpoint is written last and is what resume trusts, so an epoch interrupted
    half-way through its writing is redone, and history.csv keeps each epoch once."""

    def __init__(self, captioner, out: Path, history: list[dict], checkpoints, epoch, monitor: str):
        super().__init__()
        self.captioner = captioner
        self.out = out
        self.history = list(history)
        self.checkpoints = checkpoints
        self.epoch = epoch
        self.monitor = monitor
        values = [float(row[monitor]) for row in self.history if monitor in row]
        self.best = min(values) if values else math.inf
        self.started = time.perf_counter()
        self.writers = {}

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        learning_rate = self.model.optimizer.learning_rate
        row = {"epoch": epoch, **{key: float(value) for key, value in sorted(logs.items())},
               "lr": float(learning_rate.numpy() if hasattr(learning_rate, "numpy") else learning_rate),
               "seconds": round(time.perf_counter() - self.started, 2)}
        self.history.append(row)
        write_history(self.out / HISTORY, self.history)
        self._write_tensorboard(epoch, logs, row["lr"])
        if self.monitor in logs and float(logs[self.monitor]) < self.best:
            self.best = float(logs[self.monitor])
            save_model_atomically(self.captioner, self.out / BEST)
        save_model_atomically(self.captioner, self.out / LAST)
        self.epoch.assign(epoch + 1)
        self.checkpoints.save()

    def _write_tensorboard(self, epoch, logs, learning_rate):
        """Epoch scalars as Keras's TensorBoard callback names them (logs/train, logs/validation),
        through TensorFlow's own summary op, which does not need the tensorboard package."""
        scalars = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
        for split, prefix in (("train", ""), ("validation", "val_")):
            values = {key[len(prefix):]: value for key, value in logs.items()
                      if key.startswith(prefix) and (prefix or not key.startswith("val_"))}
            if split == "train":
                values["learning_rate"] = learning_rate
            if not values:
                continue
            if split not in self.writers:
                self.writers[split] = tf.summary.create_file_writer(str(self.out / LOGS / split))
            with self.writers[split].as_default():
                for name, value in values.items():
                    tf.summary.write(f"epoch_{name}", tf.constant(float(value)), step=epoch, metadata=scalars)
            self.writers[split].flush()


def _wrap(caption: str, width: int = 36) -> str:
    words, lines, line = caption.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line])
