"""Forward FLOP counting: a hand count, the papers' figures, TensorFlow's profiler, the specs."""

import keras
import pytest
import tensorflow as tf
from keras import layers
from keras.src.backend.common import global_state  # Keras has no public view of the queue
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

import zoo
from zoo import flops


def test_lenet5_matches_a_hand_count():
    # 32x32x1 -> c1 5x5x6 -> 28x28x6 -> s2 avg 2 -> 14x14x6 -> c3 5x5x16 -> 10x10x16 -> s4 -> 5x5x16
    # -> c5 5x5x120 -> 1x1x120 -> f6 84 -> 10, tanh everywhere, softmax output.
    c1 = 28 * 28 * 6 * (5 * 5 * 1)  # multiply-adds
    c3 = 10 * 10 * 16 * (5 * 5 * 6)
    c5 = 120 * (5 * 5 * 16)
    f6, output = 120 * 84, 84 * 10
    expected = (
        2 * c1 + 2 * 4704  # bias and tanh per output of 28*28*6 = 4704
        + 14 * 14 * 6 * 4  # s2: a 2x2 window per output
        + 2 * c3 + 2 * 1600
        + 5 * 5 * 16 * 4
        + 2 * c5 + 2 * 120
        + 2 * f6 + 2 * 84
        + 2 * output + 10 + 3 * 10  # bias, softmax
    )
    model = zoo.create("lenet5")
    assert flops.multiply_adds(model) == c1 + c3 + c5 + f6 + output == 416_520
    assert flops.count(model) == expected == 852_400


@pytest.mark.parametrize("name, paper_multiply_adds", [
    # He et al. 2016, Table 1 and section 4.1 (their "FLOPs" are multiply-adds, 224x224)
    ("resnet34", 3.6e9), ("resnet50", 3.8e9), ("resnet101", 7.6e9), ("resnet152", 11.3e9), ("vgg19", 19.6e9),
])
def test_multiply_adds_match_the_papers(name, paper_multiply_adds):
    counted = flops.multiply_adds(flops.shapes_only(name))
    assert abs(counted - paper_multiply_adds) / paper_multiply_adds < 0.03


def _profiler_flops(model) -> int:
    """TensorFlow's own count, from the frozen inference graph of one image."""
    function = tf.function(lambda x: model(x, training=False)).get_concrete_function(
        tf.TensorSpec([1, *model.input_shape[1:]], tf.float32))
    graph = convert_variables_to_constants_v2(function).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(graph=graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op",
                                         options=options).total_float_ops


@pytest.mark.parametrize("name, size", [("lenet5", 32), ("resnet18", 64), ("vgg11_bn", 32)])
def test_count_agrees_with_tensorflows_profiler(name, size):
    # The profiler counts convolutions, matmuls, bias adds and pooling as we do, and takes ReLU and
    # fused BatchNorm as free: the two differ by those elementwise ops only.
    model = zoo.create(name, input_shape=(size, size, zoo.info(name).default_input_shape[-1]))
    profiled = _profiler_flops(model)
    assert abs(flops.count(model) - profiled) / profiled < 0.01


def test_grouped_and_depthwise_convolutions_count_per_group():
    inputs = keras.Input((8, 8, 4))
    grouped = layers.Conv2D(6, 3, padding="same", groups=2, use_bias=False, name="grouped")(inputs)
    depthwise = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="depthwise")(grouped)
    model = keras.Model(inputs, depthwise)
    per_layer = {name: value for name, _, value in flops.breakdown(model)}
    assert per_layer["grouped"] == 2 * 8 * 8 * 6 * (3 * 3 * 2)
    assert per_layer["depthwise"] == 2 * 8 * 8 * 6 * (3 * 3)


def test_nested_models_count_once_per_call():
    inner_input = keras.Input((5,))
    inner = keras.Model(inner_input, layers.Dense(3, name="inner_dense")(inner_input), name="inner")
    outer_input = keras.Input((5,))
    outer = keras.Model(outer_input, layers.Add()([inner(outer_input), inner(outer_input)]))
    assert flops.count(outer) == 2 * (2 * 5 * 3 + 3) + 3


def test_a_layer_without_a_rule_is_a_clear_error():
    inputs = keras.Input((4, 8))
    model = keras.Model(inputs, layers.LSTM(2)(inputs))
    with pytest.raises(zoo.ZooError, match="no FLOP rule"):
        flops.count(model)


@pytest.mark.parametrize("name", zoo.list_models())
def test_spec_flops_match_the_count_at_the_default_configuration(name):
    """Shapes-only builds: no weights are made, so the whole registry takes seconds. A spec leaves
    its FLOPs out exactly when they cannot be counted from the image alone (the captioner's depend
    on the caption length)."""
    spec = zoo.info(name)
    if spec.flops is None:
        with pytest.raises(zoo.ZooError):
            flops.count_model(name)
    else:
        assert flops.count_model(name) == spec.flops


def test_shapes_only_builds_leave_no_weights_queued_for_allocation():
    before = len(global_state.get_global_attribute("uninitialized_variables", None) or [])
    flops.count_model("vgg11")
    after = len(global_state.get_global_attribute("uninitialized_variables", None) or [])
    assert after == before  # else the next symbolic call would allocate vgg11's 133M weights
