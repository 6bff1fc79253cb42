"""A classifier's data as a fine-tuning config asks for it: decoded and sized for the model,
augmented in training, resized and cropped in validation and test as the weights' source evaluates
them, with the preprocessing of the model's weights."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

import zoo
from finetune.data import augment as augmentation
from finetune.data.pipeline import DataBundle, load_data
from finetune.training.config import FinetuneConfig
from zoo.errors import ZooError
from zoo.layers import preprocessing_layer
from zoo.preprocessing import Preprocessing
from zoo.weights.pretrained import weights_preprocessing


def preprocessing_for(config: FinetuneConfig, channels: int) -> Preprocessing:
    """The pixels-to-input convention: the pretrained weights' own (a tag's, a converted file's, or
    the one an imported .keras records), else the model's."""
    spec = zoo.info(config.model)
    return weights_preprocessing(spec, config.weights, config.model_options).for_channels(channels)


def uses_one_hot(config: FinetuneConfig) -> bool:
    return bool(config.mixup or config.cutmix or config.label_smoothing)


GEOMETRIC = ("crop", "flip")  # drawn per image on the stored image by the input pipeline, not on batches


def load(config: FinetuneConfig, global_batch: int, drop_remainder: bool):
    """The data as raw pixels, augmented and preprocessed in the pipeline: random-resized-crops and
    flips per image as it is decoded (`finetune.data.pipeline`), the rest of the augmentation on
    training batches.

    Returns (bundle, train, validation, test, augmenting): the `DataBundle` and its batched
    streams of (preprocessed images, labels); test is None without a test split.
    """
    shape = config.input_shape()
    settings = augmentation.resolve(config.augment_preset(), **config.augment_options)
    bundle: DataBundle = load_data(
        config.data, image_size=shape, batch_size=global_batch, preprocessing=None, augment=None,
        validation_fraction=config.validation_fraction, seed=config.seed, data_dir=config.data_dir,
        download=config.download, cache=config.cache, drop_remainder=drop_remainder,
        max_examples=config.max_examples, label_mode="categorical" if uses_one_hot(config) else "int",
        shuffle_buffer=10_000 if config.shuffle else 0, labels=config.labels, folds=config.folds, fold=config.fold,
        balance=config.balance, evaluation=config.evaluation_transform(),
        random_crop=(1.0 - settings["crop"], 1.0) if settings.get("crop") else None,
        random_flip=bool(settings.get("flip")), data_service=config.data_service,
    )
    if bundle.num_classes < 2:
        raise ZooError(f"{bundle.description}: at least two classes are needed to train a classifier")
    # AlexNet's lighting noise takes the training split's colour PCA; nothing else needs its statistics,
    # which read up to 2,000 images
    statistics = (bundle.statistics or {}) if settings.get("lighting") else {}
    pca = None
    if "pca_eigval" in statistics:
        pca = (np.asarray(statistics["pca_eigval"]).tolist(), np.asarray(statistics["pca_eigvec"]).tolist())
    on_batches = {key: value for key, value in settings.items() if key not in GEOMETRIC}
    augment_fn = augmentation.make_augment_fn(on_batches, shape[-1], bundle.num_classes, mixup=config.mixup,
                                              cutmix=config.cutmix, pca=pca, seed=config.seed)
    preprocess = preprocessing_layer(preprocessing_for(config, shape[-1]))

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
    return bundle, train, validation, test, augment_fn is not None or bool(set(settings) & set(GEOMETRIC))
