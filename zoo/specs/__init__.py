"""The registered models as data: one module per family registers its specs (names, papers, input
sizes, parameter counts, FLOPs, preprocessing, weight tags) when imported, and importing `zoo`
imports them all.

Nothing here imports Keras: the specs name their builders (`"zoo.models.resnet:resnet"`), which
`zoo.factory` loads when a model is built, so `zoo list` and `zoo info` read the registry without
starting TensorFlow. The architectures are in `zoo.models`, one module per family.
"""

from zoo.specs import alexnet, captioner, googlenet, lenet, resnet, vgg  # noqa: F401  (each registers its specs)
