"""Pretrained weights into zoo models.

    >>> model = zoo.create("resnet50", weights="imagenet")                # keras.applications' weights
    >>> model = zoo.create("resnet50", weights="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    ...                    include_top=False, input_shape=(160, 160, 1))  # any size; gray input
    >>> model = zoo.create("lenet5", weights="run/best.keras", num_classes=3)

- `download`: published files through the Keras cache, checked against their hashes;
- `files`: Keras weight files (Keras Applications' HDF5, `.keras`, `.weights.h5`) read into arrays;
- `assign`: a file's arrays matched to a built model, all or nothing;
- `keras_applications`: the ImageNet tags of the keras.applications twins.
"""

from zoo.weights.assign import adapt_input_conv, load_weights, plan_assignment
from zoo.weights.download import fetch_keras_file, fetch_pretrained, keras_cache_dir
from zoo.weights.files import WeightFile, load_model_file, read_weight_file, save_legacy_weights
from zoo.weights.keras_applications import IMAGENET_CLASSES, imagenet_weights

__all__ = [
    "IMAGENET_CLASSES", "WeightFile", "adapt_input_conv", "fetch_keras_file", "fetch_pretrained", "imagenet_weights",
    "keras_cache_dir", "load_model_file", "load_weights", "plan_assignment", "read_weight_file",
    "save_legacy_weights",
]
