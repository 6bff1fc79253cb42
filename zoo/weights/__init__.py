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

Import what you need from its module (`zoo.weights.pretrained`, `zoo.weights.files`, ...): the package
itself imports nothing, so that the registry reads the weight tags (`keras_applications`,
`catalogue`: data) without loading Keras or the readers.
"""
