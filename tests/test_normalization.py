"""The `norm` option of the batch-normalized families: batch, group and frozen normalization."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from finetune.cli import main
from finetune.cli.jobs.training import build_config
from finetune.training import modeling
from finetune.training.config import FinetuneConfig
from finetune.training.precision import precision
from zoo.errors import ZooError
from zoo.layers import BatchNormalization, FrozenBatchNormalization
from zoo.models.common import group_count
from zoo.registry import NORMALIZATIONS

LAYER_TYPES = {"batch": BatchNormalization, "group": keras.layers.GroupNormalization,
               "frozen": FrozenBatchNormalization}
SIZE = 32


def normalization_layers(model):
    return [layer for layer in model.layers if isinstance(layer, (keras.layers.BatchNormalization,
                                                                  keras.layers.GroupNormalization))]


@pytest.fixture(scope="module")
def resnets():
    """resnet18 at 32x32 with each normalization, built from the same seed, returning logits."""
    models = {}
    for norm in NORMALIZATIONS:
        keras.utils.set_random_seed(0)
        models[norm] = zoo.create("resnet18", input_shape=(SIZE, SIZE, 3), num_classes=3, norm=norm,
                                  classifier_activation=None)
    return models


def images(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (count, SIZE, SIZE, 3)).astype("float32")


def moving_statistics(model) -> list[np.ndarray]:
    return [np.array(layer.moving_mean) for layer in normalization_layers(model)]


def train_step(model, batch) -> None:
    labels = np.arange(len(batch)) % 3
    with tf.GradientTape() as tape:
        loss = keras.losses.sparse_categorical_crossentropy(labels, model(batch, training=True), from_logits=True)
    gradients = tape.gradient(loss, model.trainable_variables)
    keras.optimizers.SGD(0.01).apply_gradients(zip(gradients, model.trainable_variables))


def test_group_count_is_the_largest_divisor_up_to_32():
    assert [group_count(channels) for channels in (64, 512, 24, 48, 208, 112, 3)] == [32, 32, 24, 24, 26, 28, 3]


@pytest.mark.parametrize("name, options", [("vgg11_bn", {}), ("googlenet", {"batch_norm": True})])
def test_each_norm_builds_the_family_with_its_layer_type_and_the_same_names(name, options, resnets):
    models = {norm: zoo.create(name, input_shape=(SIZE, SIZE, 3), include_top=False, norm=norm, **options)
              for norm in NORMALIZATIONS}
    for family in (models, resnets):
        names = [layer.name for layer in family["batch"].layers]
        for norm, model in family.items():
            assert [layer.name for layer in model.layers] == names
            layers = normalization_layers(model)
            assert layers and all(type(layer) is LAYER_TYPES[norm] for layer in layers)
        for layer in normalization_layers(family["group"]):
            assert layer.groups == group_count(layer.input.shape[-1])


def test_frozen_keeps_its_moving_statistics_when_training_and_batch_updates_them(resnets):
    batch = images(4)
    for norm, expected_to_change in (("batch", True), ("frozen", False)):
        model = resnets[norm]
        before = moving_statistics(model)
        gammas = [np.array(layer.gamma) for layer in normalization_layers(model)]
        train_step(model, batch)
        changed = [not np.allclose(old, new) for old, new in zip(before, moving_statistics(model))]
        assert all(changed) if expected_to_change else not any(changed)
        # gamma and beta learn either way
        assert any(not np.allclose(old, np.array(layer.gamma))
                   for old, layer in zip(gammas, normalization_layers(model)))
    frozen = resnets["frozen"]
    np.testing.assert_allclose(frozen(batch, training=True), frozen(batch, training=False), rtol=1e-5, atol=1e-6)
    assert not np.allclose(resnets["batch"](batch, training=True), resnets["batch"](batch, training=False), atol=1e-4)


def test_group_norm_output_of_an_image_does_not_depend_on_the_rest_of_the_batch(resnets):
    first, second, third = images(1, 1), images(1, 2) * 3, images(1, 3) - 0.5
    for norm, independent in (("group", True), ("batch", False)):
        model = resnets[norm]
        alone = model(first, training=True)[0]
        with_second = model(np.concatenate([first, second]), training=True)[0]
        with_third = model(np.concatenate([first, third, second]), training=True)[0]
        assert np.allclose(alone, with_second, atol=1e-5) == independent
        assert np.allclose(with_second, with_third, atol=1e-5) == independent


@pytest.mark.parametrize("norm", ["frozen", "group"])
def test_keras_file_round_trip(norm, resnets, tmp_path):
    model = resnets[norm]
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert [type(layer) for layer in normalization_layers(loaded)] == [type(layer)
                                                                       for layer in normalization_layers(model)]
    batch = images(2, 4)
    np.testing.assert_allclose(loaded(batch, training=True), model(batch, training=True), rtol=1e-5, atol=1e-6)


def test_batch_norm_weights_load_into_frozen_and_are_refused_by_group(resnets, tmp_path, offline):
    path = tmp_path / "batch.keras"
    resnets["batch"].save(path)
    frozen = zoo.create("resnet18", weights=str(path), norm="frozen")
    for source, target in zip(normalization_layers(resnets["batch"]), normalization_layers(frozen)):
        for expected, loaded in zip(source.get_weights(), target.get_weights()):
            np.testing.assert_array_equal(loaded, expected)
    with pytest.raises(ZooError, match="norm='batch' or 'frozen'"):
        zoo.create("resnet18", weights=str(path), norm="group")
    with pytest.raises(ZooError, match="norm='frozen'"):  # refused before any download
        zoo.create("resnet18", weights="tv_in1k", norm="group")


def fused_and_stock(policy: str, x: np.ndarray, **options):
    """Runs the zoo's fused BatchNormalization and Keras's own on `x` with the same weights: per
    layer, [training output, moving mean, moving variance, inference output, gradients of a random
    projection of the training output with respect to x, gamma and beta]."""
    rng = np.random.default_rng(1)
    projection = tf.constant(rng.normal(size=x.shape).astype("float32"))
    gamma, beta = rng.uniform(0.5, 2, x.shape[-1]), rng.normal(size=x.shape[-1])
    results = []
    with precision(policy):
        for layer in (BatchNormalization(momentum=0.9, **options), keras.layers.BatchNormalization(momentum=0.9, **options)):
            layer.build(x.shape)
            layer.set_weights([gamma, beta, np.zeros_like(gamma), np.ones_like(gamma)])
            inputs = tf.constant(x)
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                outputs = layer(inputs, training=True)
                loss = tf.reduce_sum(tf.cast(outputs, tf.float32) * projection)
            gradients = tape.gradient(loss, [inputs, *layer.trainable_variables])
            results.append([np.asarray(value, "float32") for value in (
                outputs, layer.moving_mean, layer.moving_variance, layer(inputs, training=False), *gradients)])
    return results


@pytest.mark.parametrize("policy, tolerance", [("float32", 1e-5), ("mixed_bfloat16", 2e-2)])
def test_the_fused_batch_norm_computes_what_keras_computes(policy, tolerance):
    x = np.random.default_rng(0).normal(1.0, 3.0, (4, 6, 6, 8)).astype("float32")
    fused, stock = fused_and_stock(policy, x, epsilon=1.001e-5)
    for name, ours, theirs in zip(("output", "moving mean", "moving variance (biased, as Keras)",
                                   "inference output", "x gradient", "gamma gradient", "beta gradient"), fused, stock):
        np.testing.assert_allclose(ours, theirs, rtol=tolerance, atol=tolerance * np.abs(theirs).max(), err_msg=name)
    # what Keras's code runs instead: a 2-D input, and an epsilon under cuDNN's minimum
    for shape, options in (((144, 8), {}), ((4, 6, 6, 8), {"epsilon": 1e-6})):
        fused, stock = fused_and_stock(policy, x.reshape(shape) if len(shape) == 2 else x, **options)
        for ours, theirs in zip(fused, stock):
            np.testing.assert_array_equal(ours, theirs)


def test_the_fused_batch_norm_is_keras_batch_norm_in_files(resnets, tmp_path):
    """Its class name, variables and config are BatchNormalization's: a model saved with it loads
    with it, and its weights load into a model built with Keras's layer and back."""
    model = resnets["batch"]
    assert all(type(layer).__name__ == "BatchNormalization" for layer in normalization_layers(model))
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert all(type(layer) is BatchNormalization for layer in normalization_layers(loaded))
    batch = images(2, 5)
    np.testing.assert_allclose(loaded(batch, training=False), model(batch, training=False), rtol=1e-5, atol=1e-6)
    model.save_weights(tmp_path / "model.weights.h5")
    stock = keras.models.clone_model(model, clone_function=lambda layer: (
        keras.layers.BatchNormalization.from_config(layer.get_config())
        if isinstance(layer, BatchNormalization) else layer.__class__.from_config(layer.get_config())))
    stock.load_weights(tmp_path / "model.weights.h5")
    np.testing.assert_allclose(stock(batch, training=False), model(batch, training=False), rtol=1e-4, atol=1e-5)


def test_a_bad_norm_value_names_the_allowed_ones():
    with pytest.raises(ZooError, match="batch, group, frozen"):
        zoo.create("resnet18", input_shape=(SIZE, SIZE, 3), norm="layer")
    with pytest.raises(ZooError, match="has no option norm"):
        FinetuneConfig(model="vgg16", model_options={"norm": "group"}).validate()


def test_the_cli_passes_norm_to_the_model_and_refuses_it_without_batch_norm(tmp_path, capsys):
    config = build_config("resnet18", {"norm": "group", "image_size": SIZE})
    assert config.model_options == {"norm": "group"}
    model = modeling.build(config, num_classes=3, input_shape=config.input_shape())
    layers = normalization_layers(modeling.backbone_of(model))
    assert layers and all(isinstance(layer, keras.layers.GroupNormalization) for layer in layers)
    # a chosen norm trains as it says, pretrained or not; without one, pretrained BatchNorm stays in inference mode
    pretrained = {"weights": str(tmp_path / "pretrained.keras")}
    assert modeling.backbone_training(FinetuneConfig(model="resnet18", model_options={"norm": "batch"},
                                                     **pretrained)) is None
    assert modeling.backbone_training(FinetuneConfig(model="resnet18", **pretrained)) is False
    for name in ("lenet5", "vgg16"):
        assert main(["finetune", name, "--norm", "group", "--epochs", "1", "--out", str(tmp_path / name)]) == 1
        error = capsys.readouterr().err
        assert error.startswith("Error: --norm") and "resnet18" in error and "vgg11_bn" in error
