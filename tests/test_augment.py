"""Augmentation: presets, training-only behaviour, AlexNet's PCA lighting, mixup."""

import keras
import numpy as np
import pytest

from finetune.data import augment
from zoo.errors import ZooError


def images(batch=4, size=16, channels=3, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, size, size, channels)).astype("float32")


def test_presets_grow_and_flags_override():
    assert augment.resolve("none") == {}
    light, standard, strong = (set(augment.resolve(name)) for name in ("light", "standard", "strong"))
    assert light < standard < strong
    assert "flip" not in augment.resolve("standard", flip=False)
    assert augment.resolve("none", rotate=0.1) == {"rotate": 0.1}
    with pytest.raises(ZooError, match="preset"):
        augment.resolve("extreme")
    with pytest.raises(ZooError, match="flags"):
        augment.resolve("none", blur=1)


def test_layers_change_images_in_training_only():
    pipeline = augment.build_layers(augment.resolve("strong"), channels=3, seed=1)
    x = images()
    assert not np.allclose(pipeline(x, training=True).numpy(), x)
    np.testing.assert_array_equal(pipeline(x, training=False).numpy(), x)
    assert pipeline(x, training=True).shape == x.shape


def test_gray_images_skip_colour_only_steps():
    pipeline = augment.build_layers(augment.resolve("strong"), channels=1, seed=1)
    names = [layer.name for layer in pipeline.layers]
    assert "random_saturation" not in names and "pca_lighting" not in names
    assert pipeline(images(channels=1), training=True).shape == (4, 16, 16, 1)


def test_pca_lighting_adds_eigvec_times_scaled_eigval_per_image():
    layer = augment.PCALighting(std=0.1, seed=3)
    x = np.zeros((2, 4, 4, 3), "float32")
    shifted = layer(x, training=True).numpy()
    # one RGB shift per image, the same at every pixel
    np.testing.assert_allclose(shifted, shifted[:, :1, :1, :] * np.ones_like(shifted), atol=1e-4)
    shift = shifted[:, 0, 0, :] / 255.0
    eigvec = np.array(augment.IMAGENET_PCA_EIGVEC)
    alphas = np.linalg.solve(eigvec, shift.T).T / np.array(augment.IMAGENET_PCA_EIGVAL)
    assert np.all(np.abs(alphas) < 0.6)  # alpha ~ N(0, 0.1): within 6 sigma
    assert layer(x, training=False).numpy().max() == 0


def test_random_resized_crop_keeps_shape_and_round_trips(tmp_path):
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, augment.RandomResizedCrop(area_range=(0.3, 1.0), seed=0, name="crop")(inputs))
    x = images()
    assert model(x, training=True).shape == x.shape
    model.save(tmp_path / "crop.keras")
    reloaded = keras.saving.load_model(tmp_path / "crop.keras", safe_mode=True)
    assert reloaded.get_layer("crop").area_range == (0.3, 1.0)


def test_mixup_mixes_one_hot_labels_and_nothing_is_built_when_off():
    assert augment.make_augment_fn({}, 3, 4) is None
    fn = augment.make_augment_fn({}, 3, 4, mixup=1.0, seed=0)
    labels = np.eye(4, dtype="float32")
    x, mixed = fn(images(), labels)
    mixed = mixed.numpy()
    np.testing.assert_allclose(mixed.sum(axis=1), 1.0, atol=1e-5)
    assert np.any((mixed > 0.01) & (mixed < 0.99)), "labels were not mixed"


def test_augmentation_computes_in_float32_under_a_mixed_policy():
    """Mixed precision training must not move augmentation to bfloat16 (crop_and_resize has no
    bfloat16 kernel, and 0-255 pixels would be rounded)."""
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        augment_fn = augment.make_augment_fn(augment.resolve("strong"), 3, 4, mixup=0.2, seed=0)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    images = np.random.default_rng(0).uniform(0, 255, (4, 24, 24, 3)).astype("float32")
    labels = np.eye(4, dtype="float32")
    augmented, mixed_labels = augment_fn(images, labels)
    assert augmented.dtype == "float32" and mixed_labels.dtype == "float32"
    assert not np.allclose(np.asarray(augmented), images)
