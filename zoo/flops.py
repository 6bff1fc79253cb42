"""Forward FLOPs of a model, counted analytically from its layers' configs and tensor shapes.

No weights are read and nothing runs: each layer call in the functional graph costs what its
output shape and config say. Conventions (one image, inference):

- a multiply-add is 2 FLOPs. Conv (incl. groups and depthwise): 2 x outputs x kernel area x input
  channels per group; Dense: 2 x inputs x units per position. Bias: 1 per output.
- activations: 1 per element (ReLU, tanh, ...), softmax 3 (exp, sum, divide), linear 0.
- BatchNormalization: 2 per element (inference form: scale and shift, statistics folded).
- GroupNormalization: 7 per element (its statistics come from each image: sum and sum of squares,
  then subtract, divide, scale and shift).
- pooling: window area per output (comparisons or additions); global pooling: 1 per input.
- Add/Subtract/Multiply/Average/Maximum: 1 per element per extra input.
- LocalResponseNormalization: depth + 4 per element (square, window sum, alpha, bias, power, divide).
- reshapes, padding, concatenation, dropout, inputs: 0.

`multiply_adds` counts only convolutions and dense layers, the number papers quote as "FLOPs"
(He et al. 2016, Table 1: ResNet-50 3.8 x 10^9, VGG-19 19.6 x 10^9). TensorFlow's graph profiler
(`tf.compat.v1.profiler`) agrees with `count` to within 1% on the zoo's CNNs (tests/test_flops.py):
it counts convolutions, matmuls, bias adds and pooling the same way and ReLU/BatchNorm as free.
"""

from __future__ import annotations

import math

import keras
from keras import layers

from zoo.errors import ZooError
from zoo.factory import build, create
from zoo.layers import LocalResponseNormalization
from zoo.registry import get_spec, min_input_size

try:  # Keras keeps its queue of variables to initialize in an internal module, with no public API
    from keras.src.backend.common import global_state
except ImportError:  # it moved: shapes-only builds fall back to ordinary builds
    global_state = None

# Layers that move or drop data but compute nothing.
FREE = (
    layers.InputLayer, layers.Flatten, layers.Reshape, layers.Permute, layers.Concatenate,
    layers.ZeroPadding1D, layers.ZeroPadding2D, layers.ZeroPadding3D, layers.Cropping1D,
    layers.Cropping2D, layers.Cropping3D, layers.Dropout, layers.SpatialDropout1D,
    layers.SpatialDropout2D, layers.SpatialDropout3D, layers.GaussianNoise, layers.GaussianDropout,
    layers.ActivityRegularization, layers.Identity, layers.RepeatVector, layers.Embedding,
)
CONVOLUTIONS = (layers.Conv1D, layers.Conv2D, layers.Conv3D, layers.DepthwiseConv2D, layers.DepthwiseConv1D)
POOLING = (layers.MaxPooling1D, layers.MaxPooling2D, layers.MaxPooling3D,
           layers.AveragePooling1D, layers.AveragePooling2D, layers.AveragePooling3D)
GLOBAL_POOLING = (layers.GlobalAveragePooling1D, layers.GlobalAveragePooling2D, layers.GlobalAveragePooling3D,
                  layers.GlobalMaxPooling1D, layers.GlobalMaxPooling2D, layers.GlobalMaxPooling3D)
MERGING = (layers.Add, layers.Subtract, layers.Multiply, layers.Average, layers.Maximum, layers.Minimum)
ACTIVATION_COST = {"linear": 0, "softmax": 3, "log_softmax": 3}


def _elements(shape) -> int:
    """Elements per example: the product of every dimension after the batch."""
    dims = tuple(shape)[1:]
    if any(dim is None for dim in dims):
        raise ZooError(f"cannot count FLOPs for a tensor of unknown shape {tuple(shape)}; "
                       "build the model with a fixed input shape")
    return math.prod(dims)


def _activation_cost(activation, elements: int) -> int:
    name = getattr(activation, "__name__", None) or str(activation)
    return ACTIVATION_COST.get(name, 1) * elements


def _layer_flops(layer, inputs, outputs, multiply_adds_only: bool) -> int:
    """FLOPs of one call of `layer` on tensors of these shapes."""
    out_elements = sum(_elements(tensor.shape) for tensor in outputs)
    if isinstance(layer, CONVOLUTIONS):
        in_channels = inputs[0].shape[-1]
        if isinstance(layer, (layers.DepthwiseConv2D, layers.DepthwiseConv1D)):
            per_output = math.prod(layer.kernel_size)
        else:
            per_output = math.prod(layer.kernel_size) * in_channels // layer.groups
        macs = out_elements * per_output
        if multiply_adds_only:
            return macs
        return 2 * macs + (out_elements if layer.use_bias else 0) + _activation_cost(layer.activation, out_elements)
    if isinstance(layer, layers.Dense):
        macs = out_elements * inputs[0].shape[-1]
        if multiply_adds_only:
            return macs
        return 2 * macs + (out_elements if layer.use_bias else 0) + _activation_cost(layer.activation, out_elements)
    if isinstance(layer, keras.Model):
        return _graph_flops(layer, multiply_adds_only)
    if multiply_adds_only:
        return 0
    if isinstance(layer, FREE):
        return 0
    if isinstance(layer, layers.BatchNormalization):
        return 2 * out_elements
    if isinstance(layer, layers.GroupNormalization):
        return 7 * out_elements
    if isinstance(layer, (layers.Activation, layers.ReLU, layers.LeakyReLU, layers.ELU, layers.PReLU)):
        return _activation_cost(getattr(layer, "activation", "relu"), out_elements)
    if isinstance(layer, layers.Softmax):
        return 3 * out_elements
    if isinstance(layer, POOLING):
        return out_elements * math.prod(layer.pool_size)
    if isinstance(layer, GLOBAL_POOLING):
        return _elements(inputs[0].shape)
    if isinstance(layer, MERGING):
        return (len(inputs) - 1) * out_elements
    if isinstance(layer, (layers.Rescaling, layers.Normalization)):
        return 2 * out_elements
    if isinstance(layer, LocalResponseNormalization):
        return (layer.depth + 4) * out_elements
    raise ZooError(f"no FLOP rule for layer {layer.name!r} of type {type(layer).__name__}; "
                   "add one to zoo/flops.py")


def _nodes(model):
    """Every layer call of a functional model, as (layer, input tensors, output tensors)."""
    model = getattr(model, "_functional", model)  # a Sequential keeps its graph there
    nodes_by_depth = getattr(model, "_nodes_by_depth", None)
    if nodes_by_depth is None:
        raise ZooError(f"{model.name} is not a functional model; FLOPs are counted on functional graphs")
    for depth in sorted(nodes_by_depth, reverse=True):
        for node in nodes_by_depth[depth]:
            if node.is_input:
                continue
            yield node.operation, list(node.input_tensors), list(node.outputs)


def graph_nodes(model):
    """Every call of a leaf layer, looking inside nested models, as (layer, inputs, outputs)."""
    for layer, inputs, outputs in _nodes(model):
        if isinstance(layer, keras.Model):
            yield from graph_nodes(layer)
        else:
            yield layer, inputs, outputs


def _graph_flops(model, multiply_adds_only: bool) -> int:
    return sum(_layer_flops(layer, inputs, outputs, multiply_adds_only) for layer, inputs, outputs in _nodes(model))


def count(model) -> int:
    """Forward FLOPs of one example through a functional Keras model (see the module docstring)."""
    return _graph_flops(model, multiply_adds_only=False)


def multiply_adds(model) -> int:
    """Multiply-adds of the convolutions and dense layers of one example: the papers' "FLOPs"."""
    return _graph_flops(model, multiply_adds_only=True)


def breakdown(model) -> list[tuple[str, str, int]]:
    """(layer name, layer type, FLOPs) per layer call, in graph order."""
    return [(layer.name, type(layer).__name__, _layer_flops(layer, inputs, outputs, False))
            for layer, inputs, outputs in _nodes(model)]


def shapes_only(name: str, tag: str | None = None, **create_options):
    """A registered model built from shapes only: its variables are never initialized, so it is
    cheap to build (vgg19 costs no 570 MB of random numbers) and good for counting, not running.

    Args:
        name: a registered model name.
        tag: a weights tag: the network its weights need (its options, its smallest input), without them.
        create_options: what `zoo.create` takes (input_shape, num_classes, include_top, ...).
    """
    def make():
        if tag is None:
            return create(name, **create_options)
        spec, family_options = get_spec(name), dict(create_options)
        shape_options = {key: family_options.pop(key) for key in ("num_classes", "input_shape", "include_top",
                                                                   "pooling") if key in family_options}
        options = {**spec.options, **family_options, **spec.weights[tag].options}
        return build(spec, **shape_options, options=options, min_size=min_input_size(spec, tag))

    if global_state is None:
        return make()
    pending = list(global_state.get_global_attribute("uninitialized_variables", None) or [])
    with keras.StatelessScope(initialize_variables=False):
        model = make()
    # The scope queues the new variables for the next scope that initializes; unqueue them, or the
    # next symbolic call anywhere would allocate this model's weights after all.
    global_state.set_global_attribute("uninitialized_variables", pending)
    return model


def count_model(name: str, **create_options) -> int:
    """Forward FLOPs of one image through a registered model (`zoo.create` options)."""
    return count(shapes_only(name, **create_options))
