"""The ResNet specs (the architecture: `zoo.models.resnet`): v1 with basic and bottleneck blocks, and
v2 with pre-activation."""

from zoo.preprocessing import CAFFE, TF_SYMMETRIC, TORCH
from zoo.registry import ModelSpec, register
from zoo.weights.catalogue import released_weights
from zoo.weights.keras_applications import imagenet_weights

# name: (block, blocks per stage, pre-activation, parameters at 224x224x3 and 1000 classes)
CONFIGS = {
    "resnet18": ("basic", (2, 2, 2, 2), False, 11_699_112),
    "resnet34": ("basic", (3, 4, 6, 3), False, 21_814_696),
    "resnet50": ("bottleneck", (3, 4, 6, 3), False, 25_636_712),
    "resnet101": ("bottleneck", (3, 4, 23, 3), False, 44_707_176),
    "resnet152": ("bottleneck", (3, 8, 36, 3), False, 60_419_944),
    "resnet50v2": ("bottleneck", (3, 4, 6, 3), True, 25_613_800),
    "resnet101v2": ("bottleneck", (3, 4, 23, 3), True, 44_675_560),
    "resnet152v2": ("bottleneck", (3, 8, 36, 3), True, 60_380_648),
}
# forward FLOPs at 224x224x3 and 1000 classes (zoo.flops.count)
FLOPS = {
    "resnet18": 3_638_010_272, "resnet34": 7_341_776_800, "resnet50": 7_764_219_808,
    "resnet101": 15_212_545_952, "resnet152": 22_666_491_808, "resnet50v2": 6_999_499_936,
    "resnet101v2": 14_446_120_096, "resnet152v2": 21_897_958_560,
}

PAPERS = {
    False: "He et al., Deep Residual Learning for Image Recognition, CVPR 2016",
    True: "He et al., Identity Mappings in Deep Residual Networks, ECCV 2016",
}


def _shallowest_with_the_same_blocks(name: str) -> str | None:
    block, _, preactivation, _ = CONFIGS[name]
    first = next(other for other, (other_block, _, other_preactivation, _) in CONFIGS.items()
                 if (other_block, other_preactivation) == (block, preactivation))
    return None if first == name else first


for _name, (_block, _blocks, _preactivation, _params) in CONFIGS.items():
    register(
        ModelSpec(
            name=_name,
            family="resnet",
            builder="zoo.models.resnet:resnet",
            paper=PAPERS[_preactivation],
            default_input_shape=(224, 224, 3),
            min_input_size=32,
            default_num_classes=1000,
            num_params=_params,
            flops=FLOPS[_name],
            # the keras.applications twins keep its conventions, so its weights apply as they are
            preprocessing=TF_SYMMETRIC if _preactivation else (CAFFE if _block == "bottleneck" else TORCH),
            options={"config": _name, "variant": "keras", "norm": "batch"},
            weights={**imagenet_weights(_name), **released_weights(_name)},
            same_blocks_as=_shallowest_with_the_same_blocks(_name),
        )
    )
