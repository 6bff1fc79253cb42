"""The project's own datasets: real TFDS builders, generated locally and deterministically.

Importing this package registers them with TFDS, so `tfds.load("zoo_shapes")` works too.
"""

from finetune.data.datasets.zoo_shape_captions import ZooShapeCaptions
from finetune.data.datasets.zoo_shapes import ZooShapes

BUILTIN_DATASETS = {"zoo_shapes": ZooShapes, "zoo_shape_captions": ZooShapeCaptions}
