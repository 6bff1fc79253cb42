"""A whole fine-tuning run of a classifier, from a config to a run folder.

The classification task of the shared run machinery: its model (a zoo backbone with a new head,
`finetune.training.modeling`), its objective (cross-entropy), its data (`inputs`), and the two
optimizers of discriminative learning rates; the epochs, run folder and resume are `loop`'s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from finetune import files
from finetune.data.images import summarize_skipped
from finetune.training import devices, diagnostics, modeling, optim, plots
from finetune.training.config import FinetuneConfig, check_buildable
from finetune.training.evaluation import evaluate
from finetune.training.inputs import load, preprocessing_for
from finetune.training.loop import Epochs, run_epochs
from finetune.training.objectives import Classification
from finetune.training.precision import float32_model, precision, precision_policy, training_step_flops
from finetune.training.runfolder import RunFolder
from finetune.training.trainer import Trainer, VariableGroup, loss_scaled
from zoo.errors import ZooError

log = logging.getLogger(__name__)
CUT_SHORT = "cut short"


@dataclasses.dataclass
class RunResult:
    """What a run returns: the final model (best.keras's, or the EMA weights), its history and
    metrics, the class names and the run folder."""

    model: keras.Model
    history: list[dict]
    metrics: dict
    class_names: list[str]
    out: Path | None


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
        if layer.name in (modeling.HEAD_DROPOUT, modeling.HEAD):
            x = layer(x)
    return keras.Model(inputs, x, name="head")


def _is_trainable_kind(variable) -> bool:
    # Moving statistics are never trained; everything else may be unfrozen in a later phase.
    name = variable.path if hasattr(variable, "path") else variable.name
    return not ("moving_mean" in name or "moving_variance" in name)


def optimizer_groups(model, trained_model, config: FinetuneConfig, steps_per_epoch: int) -> list[VariableGroup]:
    """The head's optimizer and the backbone's, at `backbone_lr_scale` times the head's rate when
    the backbone is pretrained (a backbone trained from scratch learns at the head's rate). Each is
    built for every variable a later phase may unfreeze (not BatchNorm's moving statistics)."""
    def make(lr):
        schedule = optim.schedule(config.schedule, lr, steps_per_epoch=steps_per_epoch, epochs=max(config.epochs, 1),
                                  warmup_epochs=config.warmup_epochs, step_every=config.step_every,
                                  decay_rate=config.decay_rate)
        return loss_scaled(optim.optimizer(config.optimizer, schedule, momentum=config.momentum,
                                           nesterov=config.nesterov, weight_decay=config.weight_decay,
                                           clip_norm=config.clip_norm, ema=config.ema))

    head_optimizer = make(config.lr)
    backbone_optimizer = make(config.lr * (config.backbone_lr_scale if config.weights else 1.0))
    head_optimizer.build([variable for layer in modeling.head_layers(model) for variable in layer.weights
                          if _is_trainable_kind(variable)])
    backbone_optimizer.build([variable for variable in modeling.backbone_of(model).weights
                              if _is_trainable_kind(variable)])

    def head_variables():
        return [variable for layer in modeling.head_layers(model) for variable in layer.trainable_weights]

    def backbone_variables():
        return modeling.backbone_of(model).trainable_weights if trained_model is model else []

    return [VariableGroup(head_optimizer, head_variables), VariableGroup(backbone_optimizer, backbone_variables)]


def classifier_trainer(model, config: FinetuneConfig, strategy, steps_per_epoch: int, trained_model=None,
                       class_weights=None) -> Trainer:
    """The trainer of a fine-tunable classifier (`modeling.build`): cross-entropy (weighted by class
    when `class_weights` are given), the head's and the backbone's optimizers. `trained_model`
    (default: `model`) is what training calls, e.g. the head alone on cached features. Build it in
    the strategy's scope."""
    trained_model = trained_model or model
    groups = optimizer_groups(model, trained_model, config, steps_per_epoch)
    objective = Classification(config.label_smoothing, config.top_k, class_weights)
    return Trainer(trained_model, strategy, steps_per_epoch, objective, groups, jit=config.jit,
                   steps_per_execution=config.steps_per_execution)


def unreadable_reporter(bundle):
    """A per-epoch callback that names the files the streams met damaged during that epoch."""
    def report(epoch: int) -> None:
        fresh = bundle.unreadable.new() if bundle.unreadable is not None else []
        if fresh:
            log.warning(summarize_skipped([(path, CUT_SHORT) for path in fresh], f"epoch {epoch + 1}") +
                        " (left out of training and validation)")

    return report


def unreadable_files(bundle) -> dict:
    """metrics.json's account of every file the run left out: at the start (with reasons) and
    when the streams met them damaged."""
    met = bundle.unreadable.met() if bundle.unreadable is not None else []
    named = [files.printable(path) for path in bundle.skipped] + [files.printable(path) for path in met]
    return {"count": len(named), "files": named, "found_in_training": len(met)}


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

    check_buildable(config)
    strategy = devices.make_strategy(config.strategy)  # first: it may split the CPU before TF starts
    with devices.stopping_together(strategy):
        folder = None
        if out is not None:
            folder = RunFolder.create(out, resume=resume, writes=devices.is_chief(strategy),
                                      worker=devices.task_id(strategy))
        keras.utils.set_random_seed(config.seed)
        step_flops = training_step_flops(config.model, config.input_shape(), config.batch_size)
        with precision(precision_policy(config.precision, strategy, step_flops)), folder or contextlib.nullcontext():
            return _run(config, folder, resume, verbose, strategy)


def _run(config: FinetuneConfig, folder: RunFolder | None, resume: bool, verbose: int, strategy) -> RunResult:
    global_batch = config.batch_size * strategy.num_replicas_in_sync
    tpu = devices.is_tpu(strategy)
    bundle, train, validation, test, augmenting = load(config, global_batch, drop_remainder=tpu)
    class_names = list(bundle.class_names)
    shape = config.input_shape()
    if folder is not None:
        folder.write_json(files.CONFIG, config.to_dict())
        if not resume:
            folder.write_json(files.CLASSES, {
                "model": config.model, "class_names": class_names, "input_shape": list(shape),
                "preprocessing": preprocessing_for(config, shape[-1]).to_dict(),
                "evaluation": config.evaluation_transform().to_dict()})

    train_size = bundle.sizes["train"]
    steps_per_epoch = max((train_size // global_batch) if tpu else -(-train_size // global_batch), 1)
    with strategy.scope():
        model = modeling.build(config, bundle.num_classes, shape)

    trained_model = model
    validation_for_epochs = validation
    # Features are cached once; augmentation and balanced sampling draw anew each epoch, so they cannot be.
    if config.mode == "head" and not augmenting and config.cache_features and not config.balance:
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

    with strategy.scope():
        weights = None
        if config.class_weights:
            weights = [bundle.class_weights[label] for label in range(bundle.num_classes)]
        trainer = classifier_trainer(model, config, strategy, steps_per_epoch, trained_model, weights)
    groups = trainer.groups
    phase = {"now": None}

    def before_epoch(epoch: int) -> str | None:
        wanted = "head" if epoch < config.head_epochs else config.mode
        if wanted != phase["now"]:
            modeling.set_trainable(model, wanted, config.unfreeze_from if wanted == "full" else None)
            trainer.invalidate()  # retrace: the trainable variables changed ("recompile")
            phase["now"] = wanted
        return f"{wanted} only" if wanted != config.mode else None

    tensorboard = folder.tensorboard() if folder is not None else None
    monitor = diagnostics.monitor_for(config, trained_model, validation_for_epochs,
                                      tensorboard.train_writer if tensorboard is not None else None)
    epochs = Epochs(
        total=config.epochs,
        validate=lambda: evaluate(trained_model, validation_for_epochs, config.top_k, config.label_smoothing),
        saved_model=model,
        checkpointed={"model": model, "head_optimizer": groups[0].optimizer, "backbone_optimizer": groups[1].optimizer},
        early_stopping=config.early_stopping, before_epoch=before_epoch, learning_rate=config.lr,
        after_epoch=unreadable_reporter(bundle))
    iterator = iter(strategy.experimental_distribute_dataset(_distributed_options(train.repeat())))
    history = run_epochs(trainer, iterator, epochs, folder, resume=resume, monitor=monitor, verbose=verbose)
    trainer.finalize_ema()

    final_model = model
    if folder is not None and (folder / files.BEST).is_file() and not config.ema:
        final_model = keras.saving.load_model(folder / files.BEST, safe_mode=True)
    # The reported metrics are what `zoo evaluate` and the export will compute: in float32.
    scored = float32_model(final_model)
    metrics, truth, predicted = evaluate(scored, validation, config.top_k, config.label_smoothing, collect=True)
    metrics = {"validation": metrics, "train_examples": train_size, "epochs_completed": len(history),
               "classes": len(class_names), "unreadable_files": unreadable_files(bundle)}
    if config.diagnostics and history:
        metrics["diagnosis"] = diagnostics.diagnose(history)  # overfitting, underfitting, not converged...
    if test is not None and (config.data is not None or config.labels is not None):
        metrics["test"] = evaluate(scored, test, config.top_k, config.label_smoothing)
    if folder is not None and folder.writes:
        if config.ema:
            folder.save_model(model, files.BEST)
        folder.save_model(model, files.LAST)
        folder.write_json(files.METRICS, metrics)
        if history:
            plots.curves(history, folder / files.CURVES)
        plots.confusion(plots.confusion_matrix(truth, predicted, class_names), class_names, folder / files.CONFUSION)
    if verbose:
        validation_metrics = metrics["validation"]
        top_k = validation_metrics.get(f"top{config.top_k}_accuracy")
        print(f"Validation: accuracy {validation_metrics['accuracy']:.4f}, "
              + (f"top-{config.top_k} {top_k:.4f}, " if top_k is not None else "")
              + f"loss {validation_metrics['loss']:.4f}" + (f"; run folder {folder.path}" if folder else ""))
        if "diagnosis" in metrics:
            print(f"Diagnosis: {metrics['diagnosis']['message']}")
    return RunResult(model=final_model, history=history, metrics=metrics, class_names=class_names,
                     out=folder.path if folder is not None else None)
