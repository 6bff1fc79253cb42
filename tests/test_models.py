"""The registry sweep: every registered model through one harness (tests/harness.py)."""

import keras
import pytest

import zoo
from harness import check_model
from zoo.registry import resolve_input_shape

# The sweep covers every registered classifier; families with their own test files opt out here.
CLASSIFIERS = [name for name in zoo.list_models() if zoo.info(name).default_num_classes > 0
               and zoo.info(name).family != "captioner"]


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_registered_model(name, tmp_path):
    """The harness (tests/harness.py): spec, keras.applications contract, forward, training step,
    and for the shallowest of each kind of block overfitting, round trip and mixed precision."""
    check_model(name, CLASSIFIERS.index(name), tmp_path)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_below_minimum_input_is_a_clear_error(name):
    spec = zoo.info(name)
    with pytest.raises(zoo.ZooError, match="at least"):
        zoo.create(name, input_shape=(spec.min_input_size - 1, spec.min_input_size - 1, 3))


def test_every_deeper_model_names_a_fully_checked_sibling_of_its_family():
    for name in CLASSIFIERS:
        sibling = zoo.info(name).same_blocks_as
        if sibling is not None:
            assert zoo.info(sibling).family == zoo.info(name).family and zoo.info(sibling).same_blocks_as is None
            assert zoo.info(sibling).flops < zoo.info(name).flops


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
