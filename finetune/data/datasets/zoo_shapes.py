"""`zoo_shapes`: classify shapes drawn in random colours, sizes, rotations and places on textured backgrounds.

Generated locally and deterministically (no download). The random placement, colours and textures
defeat a linear model on pixels, while a small CNN learns the task quickly.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from finetune.data.datasets import drawing

# Ten shapes a 32x32 grayscale image can still tell apart; the transfer configs split them 6 + 4.
CLASSES = ("circle", "square", "triangle", "star", "cross", "ring", "ellipse", "diamond", "heart", "arrow")
SOURCE_CLASSES = CLASSES[:6]
TARGET_CLASSES = CLASSES[6:]
DISTRACTOR_SHAPES = ("circle", "square", "triangle")
DISTRACTOR_PROBABILITY = 0.35
# Rotations up to +-30 degrees: full turns make 32x32 shapes (arrow, heart, triangle) a task for far
# more than LeNet-5's 61,706 parameters; position, size, colour and texture still defeat a linear model.
MAX_ROTATION = 30.0

_SPLIT_SEED_OFFSET = {"train": 0, "test": 1}


@dataclasses.dataclass(eq=False)
class ZooShapesConfig(tfds.core.BuilderConfig):
    """Resolution, classes and size of a zoo_shapes variant."""

    image_size: int = 32
    classes: tuple[str, ...] = CLASSES
    train_per_class: int = 600
    test_per_class: int = 100
    seed: int = 0


def _config(name, image_size, train_per_class, test_per_class, classes=CLASSES, what=""):
    total = (train_per_class + test_per_class) * len(classes)
    return ZooShapesConfig(
        name=name,
        description=f"{len(classes)} classes at {image_size}x{image_size}, {total} images{what}",
        image_size=image_size,
        classes=tuple(classes),
        train_per_class=train_per_class,
        test_per_class=test_per_class,
    )


BUILDER_CONFIGS = [
    # The default: generates in seconds, so `zoo finetune lenet5` works from scratch in about a minute.
    _config("32", 32, 600, 100),
    _config("64", 64, 500, 100),
    _config("128", 128, 300, 50),
    _config("224", 224, 200, 50),
    # Disjoint classes for transfer experiments: pretrain on `source`, fine-tune on a small `target`.
    _config("source", 64, 800, 100, SOURCE_CLASSES, "; pretraining half of a transfer experiment"),
    _config("target", 64, 60, 100, TARGET_CLASSES, "; few-shot half of a transfer experiment"),
    # For tests: a few dozen images per class.
    _config("tiny", 32, 24, 8, what="; for tests"),
]


def render_shape_image(rng: np.random.Generator, size: int, shape: str) -> np.ndarray:
    """One uint8 RGB image of `shape` with random colour, size, rotation and position on a textured background."""
    background = drawing.textured_background(rng, size)
    radius = rng.uniform(0.22, 0.42) * size
    margin = radius * 0.85  # a shape may touch the border but stays mostly inside
    center = (rng.uniform(margin, size - margin), rng.uniform(margin, size - margin))
    angle = rng.uniform(-MAX_ROTATION, MAX_ROTATION)
    canvas = drawing.MaskCanvas(size, drawing.supersample_for(size))
    canvas.add(shape, center, radius, angle)
    alpha = canvas.alpha()
    # Contrast against the background under the shape, so that the shape is visible in gray too.
    under_shape = (background * alpha).sum(axis=(0, 1)) / max(alpha.sum(), 1.0)
    image = drawing.composite(background, alpha, drawing.contrasting_colour(rng, drawing.luminance(under_shape)))
    if rng.random() < DISTRACTOR_PROBABILITY:
        image = _add_distractors(rng, image, size)
    image += drawing.grain(rng, image.shape, 6.0)
    return drawing.to_uint8(image)


def _add_distractors(rng: np.random.Generator, image: np.ndarray, size: int) -> np.ndarray:
    """Small shapes anywhere (much smaller than the subject, so the label stays unambiguous)."""
    canvas = drawing.MaskCanvas(size, drawing.supersample_for(size))
    for _ in range(int(rng.integers(1, 3))):
        radius = rng.uniform(0.04, 0.08) * size
        center = (rng.uniform(0, size), rng.uniform(0, size))
        canvas.add(str(rng.choice(DISTRACTOR_SHAPES)), center, radius, rng.uniform(0, 360))
    return drawing.composite(image, canvas.alpha(), rng.uniform(0, 255, 3))


def example_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """An independent random stream per example, so generation order does not matter."""
    return np.random.default_rng([seed, _SPLIT_SEED_OFFSET[split], index])


class ZooShapes(tfds.core.GeneratorBasedBuilder):
    """Shapes on textured backgrounds, generated locally (see the module docstring)."""

    VERSION = tfds.core.Version("1.2.0")
    RELEASE_NOTES = {
        "1.0.0": "First release.",
        "1.1.0": "Lower-contrast backgrounds, rotations within 30 degrees: learnable by LeNet-5 in gray.",
        "1.2.0": "Anti-aliased edges at 128 and 224 pixels; float32 noise (other samples, same distribution).",
    }
    BUILDER_CONFIGS = BUILDER_CONFIGS

    def _info(self) -> tfds.core.DatasetInfo:
        size = self.builder_config.image_size
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(size, size, 3)),
                "label": tfds.features.ClassLabel(names=list(self.builder_config.classes)),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download: every image is drawn here
        config = self.builder_config
        return {
            "train": self._generate_examples("train", config.train_per_class),
            "test": self._generate_examples("test", config.test_per_class),
        }

    def _generate_examples(self, split: str, per_class: int):
        config = self.builder_config
        for index in range(per_class * len(config.classes)):
            shape = config.classes[index % len(config.classes)]
            rng = example_rng(config.seed, split, index)
            image = render_shape_image(rng, config.image_size, shape)
            yield index, {"image": drawing.encode_png(image), "label": shape}

