"""The VGG specs (the architecture: `zoo.models.vgg`): configurations A, B, D and E, with and
without batch normalization."""

from zoo.preprocessing import CAFFE, TORCH
from zoo.registry import ModelSpec, register
from zoo.weights.catalogue import released_weights
from zoo.weights.keras_applications import imagenet_weights

# convolutions per block; every block has 64, 128, 256, 512, 512 filters and ends in a 2x2 max pool
CONFIGS = {
    "vgg11": (1, 1, 2, 2, 2),  # A
    "vgg13": (2, 2, 2, 2, 2),  # B
    "vgg16": (2, 2, 3, 3, 3),  # D
    "vgg19": (2, 2, 4, 4, 4),  # E
}
PARAMS = {
    "vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544, "vgg19": 143_667_240,
    # with BatchNorm, Keras also counts the moving mean and variance (torchvision counts only the
    # trainable 132,868,840 / 133,053,736 / 138,365,992 / 143,678,248)
    "vgg11_bn": 132_874_344, "vgg13_bn": 133_059_624, "vgg16_bn": 138_374_440, "vgg19_bn": 143_689_256,
}
# forward FLOPs at 224x224x3 and 1000 classes (zoo.flops.count)
FLOPS = {
    "vgg11": 15_239_174_048, "vgg13": 22_647_560_096, "vgg16": 30_973_765_536, "vgg19": 39_299_970_976,
    "vgg11_bn": 15_254_026_144, "vgg13_bn": 22_672_045_984, "vgg16_bn": 31_000_860_576, "vgg19_bn": 39_329_675_168,
}


for _config in CONFIGS:
    for _batch_norm in (False, True):
        _name = f"{_config}_bn" if _batch_norm else _config
        register(
            ModelSpec(
                name=_name,
                family="vgg",
                builder="zoo.models.vgg:vgg",
                paper="Simonyan & Zisserman, Very Deep Convolutional Networks for Large-Scale Image "
                      "Recognition, ICLR 2015",
                default_input_shape=(224, 224, 3),
                min_input_size=32,
                default_num_classes=1000,
                num_params=PARAMS[_name],
                flops=FLOPS[_name],
                fixed_size_top=True,
                # vgg16/vgg19 share keras.applications' caffe convention, so its weights apply as they are
                preprocessing=CAFFE if _config in ("vgg16", "vgg19") and not _batch_norm else TORCH,
                options={"config": _config, "batch_norm": _batch_norm, "dropout": 0.5,
                         **({"batch_norm_epsilon": 1e-3, "norm": "batch"} if _batch_norm else {})},
                weights={**imagenet_weights(_name), **released_weights(_name)},
                same_blocks_as=None if _config == "vgg11" else ("vgg11_bn" if _batch_norm else "vgg11"),
            )
        )
