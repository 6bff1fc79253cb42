"""`finetune.run`: a whole fine-tuning run, from a config to a run folder."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import zoo
from finetune import augment as augmentation
from finetune import devices, diagnostics, modeling, plots, runfolder
from finetune.config import FinetuneConfig
from finetune.inference import float32_model
from finetune.trainer import Trainer, evaluate
from zoo.errors import ZooError

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RunResult:
    model: keras.Model
    history: list[dict]
    metrics: dict
    class_names: list[str]
    out: Path | None


def input_shape_for(config: FinetuneConfig) -> tuple[int, int, int]:
    spec = zoo.info(config.model)
    height, width, channels = spec.default_input_shape
    if config.image_size:
        height = width = config.image_size
    return (height, width, config.channels or channels)


def preprocessing_for(config: FinetuneConfig, channels: int):
    """The pixels-to-input convention: the pretrained weights' own, else the model's."""
    spec = zoo.info(config.model)
    weights = spec.weights.get(config.weights) if isinstance(config.weights, str) else None
    chosen = weights.preprocessing if weights is not None else spec.preprocessing
    return chosen.for_channels(channels)


def uses_one_hot(config: FinetuneConfig) -> bool:
    return bool(config.mixup or config.cutmix or config.label_smoothing)


def load(config: FinetuneConfig, global_batch: int, drop_remainder: bool):
    """The data as raw pixels, plus the augmentation and preprocessing to map over it."""
    from finetune.data import load_data

    shape = input_shape_for(config)
    bundle = load_data(
        config.data, image_size=shape, batch_size=global_batch, preprocessing=None, augment=None,
        validation_fraction=config.validation_fraction, seed=config.seed, data_dir=config.data_dir,
        download=config.download, cache=config.cache, drop_remainder=drop_remainder,
        max_examples=config.max_examples, label_mode="categorical" if uses_one_hot(config) else "int",
        shuffle_buffer=10_000 if config.shuffle else 0,
    )
    if bundle.num_classes < 2:
        raise ZooError(f"{bundle.description}: at least two classes are needed to train a classifier")
    statistics = bundle.statistics or {}
    pca = None
    if "pca_eigval" in statistics:
        pca = (np.asarray(statistics["pca_eigval"]).tolist(), np.asarray(statistics["pca_eigvec"]).tolist())
    settings = augmentation.resolve(config.augment, **config.augment_options)
    augment_fn = augmentation.make_augment_fn(settings, shape[-1], bundle.num_classes, mixup=config.mixup,
                                              cutmix=config.cutmix, pca=pca, seed=config.seed)
    preprocess = preprocessing_for(config, shape[-1]).layer()

    def train_map(images, labels):
        if augment_fn is not None:
            images, labels = augment_fn(images, labels)
        return preprocess(images), labels

    def eval_map(images, labels):
        return preprocess(images), labels

    autotune = tf.data.AUTOTUNE
    train = bundle.train.map(train_map, num_parallel_calls=autotune).prefetch(autotune)
    validation = bundle.validation.map(eval_map, num_parallel_calls=autotune).prefetch(autotune)
    test = bundle.test.map(eval_map, num_parallel_calls=autotune).prefetch(autotune) if bundle.test is not None else None
    return bundle, train, validation, test, augment_fn is not None


def _distributed_options(dataset):
    options = tf.data.Options()
    # Examples come from in-memory tensors or a few files: shard by example, not by file.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def cached_features(backbone, train, validation):
    """Runs the frozen backbone once over the data; the head then trains on the features."""
    def features_of(dataset):
        features, labels = [], []
        for images, batch_labels in dataset:
            features.append(backbone(images, training=False).numpy())
            labels.append(batch_labels.numpy())
        return np.concatenate(features), np.concatenate(labels)

    return features_of(train), features_of(validation)


def head_only_model(model, feature_size: int):
    """A model over cached features that shares the fine-tunable model's head layers."""
    inputs = keras.Input(shape=(feature_size,), name="features")
    x = inputs
    for layer in model.layers:
        if layer.name in ("head_dropout", modeling.HEAD):
            x = layer(x)
    return keras.Model(inputs, x, name="head")


def finetune(config: FinetuneConfig | None, out=None, resume: bool = False, verbose: int = 1) -> RunResult:
    """Fine-tunes `config.model` on `config.data` and leaves a run folder in `out` (when given).

    With `resume`, continues the run in `out` from its last completed epoch; `config` None means
    the run's own config.json (pass a loaded one to change, say, the number of epochs).
    """
    out = Path(out) if out is not None else None
    if resume:
        if out is None:
            raise ZooError("--resume needs the run folder (--out) of the run to continue")
        if config is None:
            config = FinetuneConfig.load(out)
    config.validate()
    if config.mode == "predict":
        raise ZooError("--mode predict does not train: use `zoo predict` (or finetune.predict)")
    if out is not None:
        runfolder.prepare(out, resume)

    strategy = devices.make_strategy(config.strategy)  # first: it may split the CPU before TF starts
    keras.utils.set_random_seed(config.seed)
    previous_policy = keras.mixed_precision.global_policy().name
    devices.set_precision(devices.precision_policy(config.precision, strategy))
    try:
        return _run(config, out, resume, verbose, strategy)
    finally:
        devices.set_precision(previous_policy)


def _run(config: FinetuneConfig, out: Path | None, resume: bool, verbose: int, strategy) -> RunResult:
    chief = devices.is_chief(strategy)
    writes = out is not None and chief
    replicas = strategy.num_replicas_in_sync
    global_batch = config.batch_size * replicas
    tpu = devices.is_tpu(strategy)

    bundle, train, validation, test, augmenting = load(config, global_batch, drop_remainder=tpu)
    class_names = list(bundle.class_names)
    shape = input_shape_for(config)
    if writes:
        config.save(out / runfolder.CONFIG)
    if writes and not resume:
        runfolder.write_json(out / runfolder.CLASSES, {
            "model": config.model, "class_names": class_names, "input_shape": list(shape),
            "preprocessing": preprocessing_for(config, shape[-1]).to_dict()})

    train_size = bundle.sizes["train"]
    steps_per_epoch = (train_size // global_batch) if tpu else -(-train_size // global_batch)
    steps_per_epoch = max(steps_per_epoch, 1)

    with strategy.scope():
        model = modeling.build(config, bundle.num_classes, shape)

    use_cache = config.mode == "head" and not augmenting and config.cache_features
    trained_model = model
    if use_cache:
        started = time.perf_counter()
        (train_x, train_y), (val_x, val_y) = cached_features(modeling.backbone_of(model), train, validation)
        if verbose:
            print(f"Cached backbone features of {len(train_x)} training and {len(val_x)} validation images "
                  f"in {time.perf_counter() - started:.1f}s; the head trains on them.")
        with strategy.scope():
            trained_model = head_only_model(model, train_x.shape[-1])
        features = tf.data.Dataset.from_tensor_slices((train_x, train_y))
        if config.shuffle:
            features = features.shuffle(len(train_x), seed=config.seed, reshuffle_each_iteration=True)
        train = features.batch(global_batch, drop_remainder=tpu).prefetch(tf.data.AUTOTUNE)
        validation_for_epochs = tf.data.Dataset.from_tensor_slices((val_x, val_y)).batch(global_batch)
    else:
        validation_for_epochs = validation

    trainer = Trainer(model, config, strategy, steps_per_epoch, trained_model=trained_model)
    epoch_variable = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    checkpoint = tf.train.Checkpoint(model=model, head_optimizer=trainer.head_optimizer,
                                     backbone_optimizer=trainer.backbone_optimizer, epoch=epoch_variable)
    manager = None
    history: list[dict] = []
    start_epoch = 0
    if out is not None:
        checkpoint_dir = out / runfolder.CHECKPOINTS if chief else out / f".worker-{_task_id(strategy)}"
        manager = tf.train.CheckpointManager(checkpoint, str(checkpoint_dir), max_to_keep=2)
        if resume and manager.latest_checkpoint:
            checkpoint.restore(manager.latest_checkpoint).expect_partial()
            start_epoch = int(epoch_variable.numpy())
        history = [row for row in runfolder.read_history(out / runfolder.HISTORY) if int(row["epoch"]) <= start_epoch]
        if verbose and resume:
            print(f"Resuming {out} after epoch {start_epoch} of {config.epochs}.")

    callbacks = _callbacks(config, out if writes else None, model)
    tensorboard = TensorBoardLogger(out / runfolder.LOGS) if writes else None
    monitor = diagnostics.monitor_for(config, trainer.trained_model, validation_for_epochs,
                                      tensorboard.writers["train"] if tensorboard is not None else None)
    model.stop_training = False
    callbacks.on_train_begin()
    best = min((float(row["val_loss"]) for row in history), default=float("inf"))
    iterator = iter(strategy.experimental_distribute_dataset(_distributed_options(train.repeat())))
    phase = None
    for epoch in range(start_epoch, config.epochs):
        wanted = "head" if epoch < config.head_epochs else config.mode
        if wanted != phase:
            modeling.set_trainable(model, wanted, config.unfreeze_from if wanted == "full" else None)
            trainer.invalidate()  # retrace: the trainable variables changed ("recompile")
            phase = wanted
        if verbose:
            print(f"Epoch {epoch + 1}/{config.epochs}" + (f" ({phase} only)" if phase != config.mode else ""))
        progress = keras.utils.Progbar(steps_per_epoch, verbose=verbose, stateful_metrics=["loss", "accuracy"])
        started = time.perf_counter()
        result = trainer.train_epoch(iterator, progress, monitor)
        if not np.isfinite(result.loss):
            raise ZooError(f"the loss became {result.loss} in epoch {epoch + 1}: the learning rate "
                           f"({config.lr:g}) is probably too high; try --lr {config.lr / 10:g}")
        validation_metrics = evaluate(trainer.trained_model, validation_for_epochs, config.top_k, config.label_smoothing)
        row = {"epoch": epoch + 1, "loss": result.loss, "accuracy": result.accuracy,
               "val_loss": validation_metrics["loss"], "val_accuracy": validation_metrics["accuracy"],
               "lr": trainer.current_lr(), "seconds": round(time.perf_counter() - started, 3)}
        if verbose:
            print(f"  val_loss {row['val_loss']:.4f} - val_accuracy {row['val_accuracy']:.4f} "
                  f"- {row['seconds']:.1f}s")
        history.append(row)
        epoch_variable.assign(epoch + 1)
        if out is not None:
            if writes and row["val_loss"] < best:
                best = row["val_loss"]
                runfolder.save_model_atomically(model, out / runfolder.BEST)
            if writes:
                runfolder.save_model_atomically(model, out / runfolder.LAST)
            # history.csv first, then the checkpoint that marks the epoch done: after a kill in
            # between, resume drops the rows past the restored epoch and reruns that epoch.
            if writes:
                runfolder.write_history(out / runfolder.HISTORY, history)
            manager.save(checkpoint_number=epoch + 1)
        if tensorboard is not None:
            tensorboard.log(epoch, row)
        if monitor is not None:
            monitor.end_epoch(epoch)
        callbacks.on_epoch_end(epoch, {key: value for key, value in row.items() if key != "epoch"})
        if model.stop_training:
            if verbose:
                print(f"Early stopping: no validation improvement in {config.early_stopping} epochs.")
            break
    callbacks.on_train_end()
    trainer.finalize_ema()
    if out is not None and not chief:
        shutil.rmtree(out / f".worker-{_task_id(strategy)}", ignore_errors=True)

    final_model = model
    if out is not None and (out / runfolder.BEST).is_file() and not config.ema:
        final_model = keras.saving.load_model(out / runfolder.BEST, safe_mode=True)
    # The reported metrics are what `zoo evaluate` and the export will compute: in float32.
    scored = float32_model(final_model)
    metrics, truth, predicted = evaluate(scored, validation, config.top_k, config.label_smoothing, collect=True)
    metrics = {"validation": metrics, "train_examples": train_size, "epochs_completed": len(history),
               "classes": len(class_names)}
    if config.diagnostics and history:
        metrics["diagnosis"] = diagnostics.diagnose(history)  # overfitting, underfitting, not converged...
    if test is not None and config.data is not None:
        metrics["test"] = evaluate(scored, test, config.top_k, config.label_smoothing)
    if writes:
        if config.ema:
            runfolder.save_model_atomically(model, out / runfolder.BEST)
        runfolder.save_model_atomically(model, out / runfolder.LAST)
        runfolder.write_json(out / runfolder.METRICS, metrics)
        if history:
            plots.curves(history, out / "curves.png")
        plots.confusion(plots.confusion_matrix(truth, predicted, class_names), class_names, out / "confusion.png")
    if verbose:
        validation_metrics = metrics["validation"]
        top_k = validation_metrics.get(f"top{config.top_k}_accuracy")
        print(f"Validation: accuracy {validation_metrics['accuracy']:.4f}, "
              + (f"top-{config.top_k} {top_k:.4f}, " if top_k is not None else "")
              + f"loss {validation_metrics['loss']:.4f}" + (f"; run folder {out}" if out else ""))
        if "diagnosis" in metrics:
            print(f"Diagnosis: {metrics['diagnosis']['message']}")
    return RunResult(model=final_model, history=history, metrics=metrics, class_names=class_names, out=out)


def _task_id(strategy) -> int:
    resolver = getattr(strategy, "cluster_resolver", None)
    return int(getattr(resolver, "task_id", 0) or 0)


class TensorBoardLogger:
    """Epoch scalars under the tags Keras's TensorBoard callback uses (logs/train, logs/validation).

    Keras's callback reads `model.optimizer`, which a custom loop with two optimizers has not got,
    so the loop writes the same summaries with tf.summary itself.
    """

    def __init__(self, log_dir: Path):
        self.writers = {"train": tf.summary.create_file_writer(str(log_dir / "train")),
                        "validation": tf.summary.create_file_writer(str(log_dir / "validation"))}

    def log(self, epoch: int, row: dict) -> None:
        for key, value in row.items():
            if key in ("epoch", "seconds"):
                continue
            split = "validation" if key.startswith("val_") else "train"
            with self.writers[split].as_default(step=epoch):
                tf.summary.scalar(f"epoch_{key.removeprefix('val_')}", float(value))
        for writer in self.writers.values():
            writer.flush()


def _callbacks(config: FinetuneConfig, out: Path | None, model) -> keras.callbacks.CallbackList:
    """Keras's own callbacks, driven by the custom loop (early stopping)."""
    callbacks = []
    if config.early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.early_stopping))
    return keras.callbacks.CallbackList(callbacks, model=model)
