"""Each architecture is the network of its paper: parameter counts and structural facts taken
from the papers and keras.applications (see REFERENCE.md), not from the registry's own metadata."""

import keras
import numpy as np
import pytest

import zoo
from zoo.models.googlenet import AUXILIARY_LOSS_WEIGHT, INCEPTION_FILTERS, inference_model

PAPER_COUNTS = {
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "resnet50": 25_636_712,
    "resnet101": 44_707_176,
    "resnet152": 60_419_944,
    "resnet50v2": 25_613_800,
    "alexnet": 60_965_224,
    "lenet5": 61_706,
}


@pytest.mark.parametrize("name, count", sorted(PAPER_COUNTS.items()))
def test_parameter_counts_equal_the_reference(name, count):
    # The registry sweep checks every built model against its spec; here the spec meets the paper.
    assert zoo.info(name).num_params == count


def test_alexnet_one_tower_count():
    assert zoo.create("alexnet", towers=1).count_params() == 62_378_344


def test_alexnet_layout():
    model = zoo.create("alexnet")
    assert [model.get_layer(f"conv{i}").filters for i in range(1, 6)] == [96, 256, 384, 384, 256]
    assert [model.get_layer(f"conv{i}").groups for i in range(1, 6)] == [1, 2, 1, 2, 2]
    lrn = model.get_layer("lrn1")
    assert (lrn.depth, lrn.bias, lrn.alpha, lrn.beta) == (5, 2.0, 1e-4, 0.75)
    assert model.get_layer("pool1").pool_size == (3, 3) and model.get_layer("pool1").strides == (2, 2)
    assert model.get_layer("dropout6").rate == 0.5 and model.get_layer("dropout7").rate == 0.5
    assert model.get_layer("pool5").output.shape[1:] == (6, 6, 256)


def test_resnet18_and_34_trainable_counts_equal_torchvision():
    for name, trainable in (("resnet18", 11_689_512), ("resnet34", 21_797_672)):
        model = zoo.create(name)
        assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == trainable


def test_vgg_bn_trainable_counts_equal_torchvision():
    model = zoo.create("vgg11_bn")
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 132_868_840


def test_googlenet_inference_model_is_about_6_8_million_parameters():
    count = zoo.create("googlenet").count_params()
    assert abs(count - 6.8e6) / 6.8e6 < 0.05, count


def test_googlenet_follows_table_1():
    model = zoo.create("googlenet")
    expected_channels = {"3a": 256, "3b": 480, "4a": 512, "4d": 528, "4e": 832, "5b": 1024}
    for stage, channels in expected_channels.items():
        assert model.get_layer(f"inception{stage}_output").output.shape[-1] == channels
    assert model.get_layer("inception3b_output").output.shape[1:3] == (28, 28)
    assert model.get_layer("inception4e_output").output.shape[1:3] == (14, 14)
    assert model.get_layer("inception5b_output").output.shape[1:3] == (7, 7)
    for stage, filters in INCEPTION_FILTERS.items():
        assert model.get_layer(f"inception{stage}_5x5").filters == filters[4]
    assert model.get_layer("dropout").rate == 0.4


def test_googlenet_auxiliary_heads_train_and_are_dropped_for_inference():
    model = zoo.create("googlenet", auxiliary=True, num_classes=4, input_shape=(96, 96, 3))
    assert len(model.outputs) == 3
    model.compile(optimizer="sgd", loss=["sparse_categorical_crossentropy"] * 3,
                  loss_weights=[1.0, AUXILIARY_LOSS_WEIGHT, AUXILIARY_LOSS_WEIGHT])
    images = np.random.default_rng(0).normal(size=(2, 96, 96, 3)).astype("float32")
    labels = np.array([0, 1])
    model.train_on_batch(images, [labels, labels, labels])
    deployed = inference_model(model)
    assert len(deployed.outputs) == 1
    assert not any(layer.name.startswith("aux") for layer in deployed.layers)
    np.testing.assert_allclose(deployed.predict(images, verbose=0), model.predict(images, verbose=0)[0])
    assert deployed.count_params() == zoo.create("googlenet", num_classes=4, input_shape=(96, 96, 3)).count_params()


def test_googlenet_batch_norm_option_replaces_lrn():
    model = zoo.create("googlenet", batch_norm=True, input_shape=(64, 64, 3))
    names = [layer.name for layer in model.layers]
    assert "conv1_bn" in names and "lrn1" not in names


def test_resnet_v1_strides_the_first_1x1_and_v2_strides_the_3x3():
    v1 = zoo.create("resnet50")
    assert v1.get_layer("conv3_block1_1_conv").strides == (2, 2)
    assert v1.get_layer("conv3_block1_2_conv").strides == (1, 1)
    v2 = zoo.create("resnet50v2")
    assert v2.get_layer("conv2_block3_2_conv").strides == (2, 2)
    assert v2.get_layer("conv2_block3_1_conv").strides == (1, 1)


@pytest.mark.parametrize("name, reference", [("vgg16", "VGG16"), ("resnet50", "ResNet50"), ("resnet50v2", "ResNet50V2")])
def test_layer_names_and_weight_shapes_match_keras_applications(name, reference):
    for include_top in (True, False):
        ours = zoo.create(name, include_top=include_top)
        theirs = getattr(keras.applications, reference)(weights=None, include_top=include_top)
        listing = lambda model: [(layer.name, [tuple(w.shape) for w in layer.weights])
                                 for layer in model.layers if layer.weights]
        assert listing(ours) == listing(theirs)
    keras.backend.clear_session()


def test_lenet5_classic_and_modern():
    classic = zoo.create("lenet5", variant="classic")
    assert classic.get_layer("c1").activation.__name__ == "tanh"
    assert isinstance(classic.get_layer("s2"), keras.layers.AveragePooling2D)
    modern = zoo.create("lenet5")
    assert modern.get_layer("c1").activation.__name__ == "relu"
    assert isinstance(modern.get_layer("s2"), keras.layers.MaxPooling2D)
    assert classic.get_layer("c5").output.shape[1:] == (1, 1, 120)
    assert classic.count_params() == modern.count_params() == 61_706
