"""Training-time augmentation from Keras preprocessing layers, with named presets.

Augmentation runs in the tf.data pipeline on training batches only, on pixels in [0, 255] before
the model's preprocessing (so brightness and colour jitter see real pixel values).
Keras 3 has no random-resized-crop or PCA lighting layer; those two are written here. A run
(`finetune.training.inputs`) takes the crop and flip settings out and has the input pipeline draw
them per image on the image as stored (`finetune.data.pipeline`); the rest run here, on batches.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from zoo.errors import ZooError

# AlexNet's "fancy PCA" on ImageNet, RGB in [0, 1] (fb.resnet.torch's values)
IMAGENET_PCA_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_PCA_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)

PRESETS = {
    "none": {},
    # small rotations (up to ~11 degrees) and shifts (10%): right for almost any images, where flips
    # are not (digits, text, arrows), and the usual recipe for digits (torchvision's RandomAffine)
    "affine": {"rotate": 0.03, "translate": 0.1},
    "light": {"flip": True, "translate": 0.1},
    "standard": {"flip": True, "crop": 0.35, "rotate": 0.04, "translate": 0.1, "brightness": 0.2,
                 "contrast": 0.2, "saturation": 0.2},
    "strong": {"flip": True, "crop": 0.6, "rotate": 0.08, "translate": 0.15, "zoom": 0.2,
               "brightness": 0.3, "contrast": 0.3, "saturation": 0.3, "lighting": 0.1},
}
FLAGS = ("flip", "crop", "rotate", "translate", "zoom", "brightness", "contrast", "saturation", "lighting")


@keras.saving.register_keras_serializable(package="zoo")
class RandomResizedCrop(keras.layers.Layer):
    """Inception-style crop: a random region of `area_range` of the image with an aspect ratio
    in `ratio_range`, resized back to the input size. Identity at inference."""

    def __init__(self, area_range=(0.35, 1.0), ratio_range=(3 / 4, 4 / 3), seed=None, **kwargs):
        super().__init__(**kwargs)
        self.area_range = tuple(float(value) for value in area_range)
        self.ratio_range = tuple(float(value) for value in ratio_range)
        self.seed = seed
        self._generator = tf.random.Generator.from_seed(seed) if seed is not None else tf.random.Generator.from_non_deterministic_state()

    def call(self, images, training=True):
        if not training:
            return images
        shape = tf.shape(images)
        batch, height, width = shape[0], shape[1], shape[2]
        area = self._generator.uniform([batch], *self.area_range)
        log_ratio = self._generator.uniform([batch], np.log(self.ratio_range[0]), np.log(self.ratio_range[1]))
        ratio = tf.exp(log_ratio)
        crop_height = tf.minimum(tf.sqrt(area / ratio), 1.0)
        crop_width = tf.minimum(tf.sqrt(area * ratio), 1.0)
        top = self._generator.uniform([batch]) * (1.0 - crop_height)
        left = self._generator.uniform([batch]) * (1.0 - crop_width)
        boxes = tf.stack([top, left, top + crop_height, left + crop_width], axis=1)
        return tf.image.crop_and_resize(images, boxes, tf.range(batch), tf.stack([height, width]))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(area_range=list(self.area_range), ratio_range=list(self.ratio_range), seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="zoo")
class PCALighting(keras.layers.Layer):
    """AlexNet's lighting noise: adds eigvec @ (alpha * eigval), alpha ~ N(0, std), per image.

    `eigval`/`eigvec` describe RGB in [0, 1] (the ImageNet constants, or the training split's own
    eigen-decomposition); images are in [0, 255]. Identity at inference and for gray images.
    """

    def __init__(self, std=0.1, eigval=IMAGENET_PCA_EIGVAL, eigvec=IMAGENET_PCA_EIGVEC, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.std = float(std)
        self.eigval = [float(value) for value in eigval]
        self.eigvec = [[float(value) for value in row] for row in eigvec]
        self.seed = seed
        self._generator = tf.random.Generator.from_seed(seed) if seed is not None else tf.random.Generator.from_non_deterministic_state()

    def call(self, images, training=True):
        if not training or images.shape[-1] != 3:
            return images
        alpha = self._generator.normal([tf.shape(images)[0], 3], stddev=self.std)
        eigval = tf.constant(self.eigval, images.dtype)
        eigvec = tf.constant(self.eigvec, images.dtype)
        shift = tf.matmul(tf.cast(alpha, images.dtype) * eigval, eigvec, transpose_b=True)  # [batch, 3]
        return images + 255.0 * shift[:, None, None, :]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(std=self.std, eigval=self.eigval, eigvec=self.eigvec, seed=self.seed)
        return config


def resolve(preset: str = "none", **overrides) -> dict:
    """A preset's settings with individual flags on top (a flag set to 0/False turns it off)."""
    if preset not in PRESETS:
        raise ZooError(f"unknown augmentation preset {preset!r}; choose one of {', '.join(PRESETS)}")
    unknown = set(overrides) - set(FLAGS)
    if unknown:
        raise ZooError(f"unknown augmentation flags {', '.join(sorted(unknown))}; known: {', '.join(FLAGS)}")
    settings = dict(PRESETS[preset])
    settings.update({key: value for key, value in overrides.items() if value is not None})
    return {key: value for key, value in settings.items() if value}


# Augmentation runs in the input pipeline on pixel values, in float32 whatever the training precision
# (under mixed_bfloat16 some ops have no bfloat16 kernel, and 0-255 pixels would lose their last bits);
# the model casts its inputs to its compute dtype.
FLOAT32 = "float32"


def build_layers(settings: dict, channels: int, pca=None, seed: int | None = None) -> keras.Sequential:
    """The Keras preprocessing layers for `settings` (see `resolve`), in the usual order:
    geometry first, then colour, then lighting. `pca` = (eigval, eigvec) from the training split."""
    layers = keras.layers
    common = {"seed": seed, "dtype": FLOAT32}
    steps = []
    if settings.get("crop"):
        steps.append(RandomResizedCrop(area_range=(1.0 - settings["crop"], 1.0), **common, name="random_resized_crop"))
    if settings.get("flip"):
        steps.append(layers.RandomFlip("horizontal", **common, name="random_flip"))
    if settings.get("rotate"):
        steps.append(layers.RandomRotation(settings["rotate"], fill_mode="reflect", **common, name="random_rotation"))
    if settings.get("zoom"):
        steps.append(layers.RandomZoom(settings["zoom"], fill_mode="reflect", **common, name="random_zoom"))
    if settings.get("translate"):
        factor = settings["translate"]
        steps.append(layers.RandomTranslation(factor, factor, fill_mode="reflect", **common, name="random_translation"))
    if settings.get("brightness"):
        steps.append(layers.RandomBrightness(settings["brightness"], value_range=(0, 255), **common,
                                             name="random_brightness"))
    if settings.get("contrast"):
        steps.append(layers.RandomContrast(settings["contrast"], value_range=(0, 255), **common, name="random_contrast"))
    if settings.get("saturation") and channels == 3:
        factor = settings["saturation"]
        steps.append(layers.RandomSaturation((0.5 - factor / 2, 0.5 + factor / 2), value_range=(0, 255), **common,
                                             name="random_saturation"))
    if settings.get("lighting") and channels == 3:
        eigval, eigvec = pca if pca is not None else (IMAGENET_PCA_EIGVAL, IMAGENET_PCA_EIGVEC)
        steps.append(PCALighting(settings["lighting"], eigval, eigvec, **common, name="pca_lighting"))
    return keras.Sequential(steps, name="augmentation")


def make_augment_fn(settings: dict, channels: int, num_classes: int, *, mixup: float = 0.0, cutmix: float = 0.0,
                    pca=None, seed: int | None = None):
    """A function (images, labels) -> (images, labels) for training batches, or None when nothing
    is on. With mixup or cutmix, labels must be one-hot (they are mixed too)."""
    if not settings and not mixup and not cutmix:
        return None
    pipeline = build_layers(settings, channels, pca=pca, seed=seed)
    mixers, common = [], {"seed": seed, "dtype": FLOAT32}
    if mixup:
        mixers.append(keras.layers.MixUp(alpha=mixup, **common, name="mixup"))
    if cutmix:
        mixers.append(keras.layers.CutMix(factor=cutmix, **common, name="cutmix"))

    def augment(images, labels):
        if pipeline.layers:
            images = tf.clip_by_value(pipeline(images, training=True), 0.0, 255.0)
        for mixer in mixers:
            mixed = mixer({"images": images, "labels": tf.cast(labels, images.dtype)}, training=True)
            images, labels = mixed["images"], mixed["labels"]
        return images, labels

    return augment
