"""ResNet v1 (He, Zhang, Ren, Sun. "Deep Residual Learning for Image Recognition", CVPR 2016) and
v2 with pre-activation (He et al. "Identity Mappings in Deep Residual Networks", ECCV 2016).

resnet50/101/152 and the v2 models follow keras.applications layer for layer (names, order,
biases, BatchNorm epsilon), so its ImageNet weight files load into them. v1 strides the first 1x1
convolution of a downsampling bottleneck, as keras.applications and the paper do. resnet18/34
use basic blocks without convolution biases, as torchvision does; their trainable parameters
equal torchvision's counts (11,689,512 and 21,797,672), and Keras adds BatchNorm's moving mean and
variance to the total.

`variant="torchvision"` builds the v1 models as torchvision and timm do, so their weights load:
v1.5 bottlenecks (the stride on the 3x3 convolution, as in NVIDIA's and torchvision's ResNet-50),
no convolution biases, BatchNorm epsilon 1e-5, and PyTorch's symmetric padding before every
strided 3x3 convolution (Keras's "same" pads only below and right on even inputs). Layer names
stay those of the default ("keras") variant, plus the padding layers.

`norm` replaces every BatchNormalization under the same name: "group" with GroupNormalization
(Wu & He, "Group Normalization", ECCV 2018), whose output does not depend on the batch, "frozen"
with BatchNormalization on its moving statistics for fine-tuning pretrained weights at small batches.
"""

import keras
from keras import layers

from zoo.layers import relu as zoo_relu
from zoo.models.common import RELU_INIT, check_normalization, classifier, feature_pooling, image_input, normalization
from zoo.specs.resnet import CONFIGS

BN_EPSILON = 1.001e-5
TORCH_BN_EPSILON = 1e-5  # torch.nn.BatchNorm2d's default
VARIANTS = ("keras", "torchvision")
STAGE_FILTERS = (64, 128, 256, 512)


def batch_norm(x, name, epsilon=BN_EPSILON, norm="batch"):
    """The block's normalization: BatchNormalization, or what `norm` puts in its place."""
    return normalization(x, norm, name, epsilon)


def relu(x, name):
    """A ReLU that TensorFlow fuses into the BatchNormalization or convolution before it."""
    return layers.Activation("relu", name=name)(x)


def block_output(shortcut, x, name):
    """The residual sum and its ReLU (the zoo's bfloat16-fast one: after an Add, nothing fuses it)."""
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation(zoo_relu, name=f"{name}_out")(x)


def conv(x, filters, kernel, name, strides=1, padding="valid", use_bias=True):
    return layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=use_bias,
                         kernel_initializer=RELU_INIT, name=name)(x)


def basic_block(x, filters, stride, shortcut_conv, name, norm="batch"):
    """Two 3x3 convolutions (v1); a 1x1 projection shortcut where the shape changes."""
    shortcut = x
    if shortcut_conv:
        shortcut = conv(x, filters, 1, f"{name}_0_conv", strides=stride, use_bias=False)
        shortcut = batch_norm(shortcut, f"{name}_0_bn", norm=norm)
    x = conv(x, filters, 3, f"{name}_1_conv", strides=stride, padding="same", use_bias=False)
    x = relu(batch_norm(x, f"{name}_1_bn", norm=norm), f"{name}_1_relu")
    x = conv(x, filters, 3, f"{name}_2_conv", padding="same", use_bias=False)
    x = batch_norm(x, f"{name}_2_bn", norm=norm)
    return block_output(shortcut, x, name)


def bottleneck_block(x, filters, stride, shortcut_conv, name, norm="batch"):
    """1x1 (strided) - 3x3 - 1x1 x4 bottleneck (v1), as keras.applications builds it."""
    shortcut = x
    if shortcut_conv:
        shortcut = conv(x, 4 * filters, 1, f"{name}_0_conv", strides=stride)
        shortcut = batch_norm(shortcut, f"{name}_0_bn", norm=norm)
    x = conv(x, filters, 1, f"{name}_1_conv", strides=stride)
    x = relu(batch_norm(x, f"{name}_1_bn", norm=norm), f"{name}_1_relu")
    x = conv(x, filters, 3, f"{name}_2_conv", padding="same")
    x = relu(batch_norm(x, f"{name}_2_bn", norm=norm), f"{name}_2_relu")
    x = conv(x, 4 * filters, 1, f"{name}_3_conv")
    x = batch_norm(x, f"{name}_3_bn", norm=norm)
    return block_output(shortcut, x, name)


def preactivation_bottleneck_block(x, filters, stride, shortcut_conv, name, norm="batch"):
    """BN-ReLU first, then 1x1 - 3x3 (strided) - 1x1 x4; the identity path stays clean (v2)."""
    preact = relu(batch_norm(x, f"{name}_preact_bn", norm=norm), f"{name}_preact_relu")
    if shortcut_conv:
        shortcut = conv(preact, 4 * filters, 1, f"{name}_0_conv", strides=stride)
    elif stride > 1:
        shortcut = layers.MaxPooling2D(1, strides=stride, name=f"{name}_0_pool")(x)
    else:
        shortcut = x
    x = conv(preact, filters, 1, f"{name}_1_conv", use_bias=False)
    x = relu(batch_norm(x, f"{name}_1_bn", norm=norm), f"{name}_1_relu")
    x = layers.ZeroPadding2D(1, name=f"{name}_2_pad")(x)
    x = conv(x, filters, 3, f"{name}_2_conv", strides=stride, use_bias=False)
    x = relu(batch_norm(x, f"{name}_2_bn", norm=norm), f"{name}_2_relu")
    x = conv(x, 4 * filters, 1, f"{name}_3_conv")
    return layers.Add(name=f"{name}_out")([shortcut, x])


def torch_basic_block(x, filters, stride, shortcut_conv, name, norm="batch"):
    """torchvision's BasicBlock: the basic block with symmetric padding and PyTorch's BatchNorm epsilon."""
    shortcut = x
    if shortcut_conv:
        shortcut = conv(x, filters, 1, f"{name}_0_conv", strides=stride, use_bias=False)
        shortcut = batch_norm(shortcut, f"{name}_0_bn", TORCH_BN_EPSILON, norm=norm)
    x = layers.ZeroPadding2D(1, name=f"{name}_1_pad")(x)
    x = conv(x, filters, 3, f"{name}_1_conv", strides=stride, use_bias=False)
    x = relu(batch_norm(x, f"{name}_1_bn", TORCH_BN_EPSILON, norm=norm), f"{name}_1_relu")
    x = layers.ZeroPadding2D(1, name=f"{name}_2_pad")(x)
    x = conv(x, filters, 3, f"{name}_2_conv", use_bias=False)
    x = batch_norm(x, f"{name}_2_bn", TORCH_BN_EPSILON, norm=norm)
    return block_output(shortcut, x, name)


def torch_bottleneck_block(x, filters, stride, shortcut_conv, name, norm="batch"):
    """torchvision's Bottleneck (v1.5): 1x1 - 3x3 (strided, padded symmetrically) - 1x1 x4, no biases."""
    shortcut = x
    if shortcut_conv:
        shortcut = conv(x, 4 * filters, 1, f"{name}_0_conv", strides=stride, use_bias=False)
        shortcut = batch_norm(shortcut, f"{name}_0_bn", TORCH_BN_EPSILON, norm=norm)
    x = conv(x, filters, 1, f"{name}_1_conv", use_bias=False)
    x = relu(batch_norm(x, f"{name}_1_bn", TORCH_BN_EPSILON, norm=norm), f"{name}_1_relu")
    x = layers.ZeroPadding2D(1, name=f"{name}_2_pad")(x)
    x = conv(x, filters, 3, f"{name}_2_conv", strides=stride, use_bias=False)
    x = relu(batch_norm(x, f"{name}_2_bn", TORCH_BN_EPSILON, norm=norm), f"{name}_2_relu")
    x = conv(x, 4 * filters, 1, f"{name}_3_conv", use_bias=False)
    x = batch_norm(x, f"{name}_3_bn", TORCH_BN_EPSILON, norm=norm)
    return block_output(shortcut, x, name)


BLOCKS = {
    ("keras", "basic"): basic_block, ("keras", "bottleneck"): bottleneck_block,
    ("torchvision", "basic"): torch_basic_block, ("torchvision", "bottleneck"): torch_bottleneck_block,
}


def stage(x, block, filters, blocks, stride, preactivation, name, variant="keras", norm="batch"):
    """One stage of residual blocks. v1 downsamples in its first block, v2 in its last."""
    for index in range(1, blocks + 1):
        block_name = f"{name}_block{index}"
        if preactivation:
            block_stride = stride if index == blocks else 1
            x = preactivation_bottleneck_block(x, filters, block_stride, index == 1, block_name, norm)
        else:
            block_stride = stride if index == 1 else 1
            changes_shape = index == 1 and (stride != 1 or block == "bottleneck" or filters != x.shape[-1])
            x = BLOCKS[variant, block](x, filters, block_stride, changes_shape, block_name, norm)
    return x


def resnet(input_shape, num_classes, include_top, pooling, name, config, variant="keras", norm="batch",
           classifier_activation="softmax"):
    """A ResNet: 7x7/2 stem and 3x3/2 max pool, four stages of residual blocks, global average
    pooling and the classifier. `variant` is "keras" (keras.applications' layout) or
    "torchvision" (see the module docstring); `norm` is "batch", "group" or "frozen" (see
    `zoo.models.common.normalization`), each layer keeping BatchNormalization's name."""
    block, blocks_per_stage, preactivation, _ = CONFIGS[config]
    if variant not in VARIANTS:
        raise ValueError(f"resnet variant must be one of {', '.join(VARIANTS)}, not {variant!r}")
    if variant == "torchvision" and preactivation:
        raise ValueError(f"{config} has no torchvision variant (torchvision has no pre-activation ResNets)")
    check_normalization(norm, "resnet")
    torch_layout = variant == "torchvision"
    inputs = image_input(input_shape)
    x = layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
    x = conv(x, 64, 7, "conv1_conv", strides=2, use_bias=block == "bottleneck" and not torch_layout)
    if not preactivation:
        x = relu(batch_norm(x, "conv1_bn", TORCH_BN_EPSILON if torch_layout else BN_EPSILON, norm=norm), "conv1_relu")
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    for index, (filters, blocks) in enumerate(zip(STAGE_FILTERS, blocks_per_stage)):
        if preactivation:
            stride = 1 if index == len(STAGE_FILTERS) - 1 else 2
        else:
            stride = 1 if index == 0 else 2
        x = stage(x, block, filters, blocks, stride, preactivation, f"conv{index + 2}", variant, norm)
    if preactivation:
        x = relu(batch_norm(x, "post_bn", norm=norm), "post_relu")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = classifier(x, num_classes, classifier_activation)
    else:
        x = feature_pooling(x, pooling)
    return keras.Model(inputs, x, name=name)
