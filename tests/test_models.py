"""The registry sweep: every registered model builds, trains, overfits and round-trips."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.registry import resolve_input_shape

NUM_CLASSES = 3
BATCH = 4
# The sweep covers every registered classifier; families with their own test files opt out here.
CLASSIFIERS = [name for name in zoo.list_models() if zoo.info(name).default_num_classes > 0
               and zoo.info(name).family != "captioner"]


def small_shape(name):
    spec = zoo.info(name)
    size = spec.test_input_size or spec.min_input_size
    return (size, size, spec.default_input_shape[-1])


def batch_for(shape, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(BATCH, *shape)).astype("float32")
    labels = np.arange(BATCH) % NUM_CLASSES
    return images, labels


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_model_trains_every_weight_overfits_and_round_trips(name, tmp_path):
    """One build per model: forward shape, one step changes every trainable weight, a tiny batch
    can be overfit, `.keras` round trip. Eager steps: tracing resnet152's training step takes
    longer than the few steps it needs."""
    keras.utils.set_random_seed(0)
    model = zoo.create(name, num_classes=NUM_CLASSES, input_shape=small_shape(name))
    images, labels = batch_for(model.input_shape[1:])
    assert model.predict(images, verbose=0).shape == (BATCH, NUM_CLASSES)

    model.compile(optimizer=keras.optimizers.Adam(3e-4), loss="sparse_categorical_crossentropy", run_eagerly=True)
    before = [weight.numpy().copy() for weight in model.trainable_weights]
    loss = float(model.train_on_batch(images, labels))
    unchanged = [weight.path for weight, old in zip(model.trainable_weights, before)
                 if np.array_equal(old, weight.numpy())]
    assert not unchanged, f"weights not updated by a training step: {unchanged}"

    for _ in range(150):
        if loss < 0.05:
            break
        loss = float(model.train_on_batch(images, labels))
    assert loss < 0.05, f"{name} could not overfit {BATCH} examples (loss {loss:.3f})"

    path = tmp_path / f"{name}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(model.predict(images, verbose=0), reloaded.predict(images, verbose=0))


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_headless_models_pool_to_the_right_rank_for_gray_and_rgb(name):
    size = small_shape(name)[0]
    for pooling, rank, channels in ((None, 4, 3), ("avg", 2, 1), ("max", 2, 3)):
        model = zoo.create(name, include_top=False, pooling=pooling, input_shape=(size, size, channels))
        assert len(model.output_shape) == rank, (pooling, model.output_shape)
        assert model.input_shape[-1] == channels


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_below_minimum_input_is_a_clear_error(name):
    spec = zoo.info(name)
    with pytest.raises(zoo.ZooError, match="at least"):
        zoo.create(name, input_shape=(spec.min_input_size - 1, spec.min_input_size - 1, 3))


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_parameter_count_at_default_configuration_matches_spec(name):
    model = zoo.create(name)
    assert model.count_params() == zoo.info(name).num_params
    assert model.input_shape[1:] == zoo.info(name).default_input_shape
    keras.backend.clear_session()


def test_he_initialization_for_relu_layers_and_glorot_for_the_classifier():
    model = zoo.create("resnet18", num_classes=5, input_shape=(32, 32, 3))
    assert isinstance(model.get_layer("conv1_conv").kernel_initializer, keras.initializers.HeNormal)
    assert isinstance(model.get_layer("predictions").kernel_initializer, keras.initializers.GlorotUniform)
    classic = zoo.create("lenet5", variant="classic")
    assert isinstance(classic.get_layer("c1").kernel_initializer, keras.initializers.GlorotUniform)
    modern = zoo.create("lenet5", variant="modern")
    assert isinstance(modern.get_layer("c1").kernel_initializer, keras.initializers.HeNormal)


def test_resolve_input_shape_rejects_bad_channels():
    with pytest.raises(zoo.ZooError, match="1- or 3-channel"):
        resolve_input_shape(zoo.info("resnet18"), (64, 64, 4))
