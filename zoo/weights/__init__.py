"""Pretrained weights into zoo models.

    >>> model = zoo.create("resnet50", weights="imagenet")                # keras.applications' weights
    >>> model = zoo.create("resnet18.tv_in1k")                            # torchvision's, converted once
    >>> model = zoo.create("alexnet", weights="bvlc_alexnet.caffemodel")  # any format, the variant from the file
    >>> model = zoo.create("lenet5", weights="run/best.keras", num_classes=3)

- `download`: published files through the Keras cache, checked against their hashes;
- `files`: Keras weight files (Keras Applications' HDF5, `.keras`, `.weights.h5`) read into arrays;
- `pytorch`, `caffe`, `sources`: PyTorch checkpoints (through an allow-list unpickler), safetensors
  and Caffe models read into arrays, whatever the file's name;
- `untrusted`, `archives`, `hdf5`: what every reader keeps to for files from anywhere (a memory
  budget per file, one-line errors naming it), zip members and HDF5 objects checked before reading;
- `converters`: other libraries' arrays laid out for the zoo's models, one module per family;
- `assign`: a file's arrays matched to a built model, all or nothing;
- `keras_applications`, `catalogue`: the weight tags (keras.applications'; torchvision's, timm's, BVLC's);
- `pretrained`: what `weights=` names, resolved: downloaded, converted and cached, and described.

`converters` and `pretrained` lay arrays out for the models' layers, so they sit above
`zoo.models` (which registers the tags of this package's catalogues): import them by their module
(`zoo.weights.pretrained`), as `zoo.factory` does; this package's namespace leaves them out.
"""

from zoo.weights.assign import adapt_input_conv, load_weights, plan_assignment
from zoo.weights.download import fetch_keras_file, fetch_pretrained, keras_cache_dir
from zoo.weights.files import (
    WEIGHTS_METADATA, WeightFile, load_model_file, read_keras_metadata, read_weight_file, save_legacy_weights,
)
from zoo.weights.keras_applications import IMAGENET_CLASSES, imagenet_weights
from zoo.weights.sources import kind_of, read_source_weights

__all__ = [
    "IMAGENET_CLASSES", "WEIGHTS_METADATA", "WeightFile", "adapt_input_conv", "fetch_keras_file", "fetch_pretrained",
    "imagenet_weights", "keras_cache_dir", "kind_of", "load_model_file", "load_weights", "plan_assignment",
    "read_keras_metadata", "read_source_weights", "read_weight_file", "save_legacy_weights",
]
