"""The ImageNet weights keras.applications publishes, as weight tags of the zoo's twins of its
models (vgg16/19, resnet50/101/152 and their v2): where each file is, its MD5 and its accuracy.

The URLs and hashes are those keras.applications downloads (its `vgg16`, `vgg19` and `resnet`
modules); the files are legacy HDF5 weights keyed by layer name, read by `zoo.weights.files`.
"""

from __future__ import annotations

from zoo.eval_transform import SQUASH_BILINEAR
from zoo.preprocessing import CAFFE, TF_SYMMETRIC
from zoo.registry import PretrainedWeights

IMAGENET_INPUT_SHAPE = (224, 224, 3)
IMAGENET_CLASSES = 1000
BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications"

# (top MD5, notop MD5) of each model's `<name>_weights_tf_dim_ordering_tf_kernels[_notop].h5`
FILE_HASHES = {
    "vgg16": ("64373286793e3c8b2b4e3219cbf3544b", "6d6bbae143d832006294945121d1f1fc"),
    "vgg19": ("cbe5617147190e668d6c5d5026f83318", "253f8cb515780f3b799900260a226db6"),
    "resnet50": ("2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626"),
    "resnet101": ("f1aeb4b969a6efcfb50fad2f0c20cfc5", "88cf7a10940856eca736dc7b7e228a21"),
    "resnet152": ("100835be76be38e30d865e96f2aaae62", "ee4c566cf9a93f14d82f913c2dc6dd0c"),
    "resnet50v2": ("3ef43a0b657b3be2300d5770ece849e0", "fac2f116257151a9d068a22e544a4917"),
    "resnet101v2": ("6343647c601c52e1368623803854d971", "c0ed64b8031c3730f411d2eb4eea35b5"),
    "resnet152v2": ("a49b44d1979771252814e80f8ec446f9", "ed17cf2e0169df9d443503ef94b23b33"),
}
# top-1 / top-5 ImageNet validation accuracy, from the keras.applications documentation
IMAGENET_ACCURACY = {
    "vgg16": (71.3, 90.1), "vgg19": (71.3, 90.0), "resnet50": (74.9, 92.1), "resnet101": (76.4, 92.8),
    "resnet152": (76.6, 93.1), "resnet50v2": (76.0, 93.0), "resnet101v2": (77.2, 93.8),
    "resnet152v2": (78.0, 94.2),
}


def file_url(model_name: str, include_top: bool) -> str:
    folder = model_name if model_name.startswith("vgg") else "resnet"
    suffix = "" if include_top else "_notop"
    return f"{BASE_URL}/{folder}/{model_name}_weights_tf_dim_ordering_tf_kernels{suffix}.h5"


def imagenet_weights(model_name: str) -> dict[str, PretrainedWeights]:
    """A spec's `weights` entry: keras.applications' ImageNet weights, where it publishes them."""
    if model_name not in FILE_HASHES:
        return {}
    top_hash, notop_hash = FILE_HASHES[model_name]
    top1, top5 = IMAGENET_ACCURACY[model_name]
    return {
        "imagenet": PretrainedWeights(
            tag="imagenet",
            description=f"ImageNet-1k weights of keras.applications (top-1 {top1}%, top-5 {top5}%)",
            # the weights carry the convention they were trained with: caffe BGR means for v1, [-1, 1] for v2
            preprocessing=TF_SYMMETRIC if model_name.endswith("v2") else CAFFE,
            input_shape=IMAGENET_INPUT_SHAPE,
            num_classes=IMAGENET_CLASSES,
            top_url=file_url(model_name, True), top_hash=top_hash,
            notop_url=file_url(model_name, False), notop_hash=notop_hash,
            class_names="imagenet",
            top1=top1, top5=top5,
            # keras.applications publishes no evaluation protocol: the whole image resized to the input
            evaluation=SQUASH_BILINEAR,
        )
    }
