"""`zoo_shape_captions`: scenes of one to three shapes, each image with several reference captions.

Generated locally and deterministically (no download). Everything a caption says can be read off
the image: six well-separated colours, five distinct shapes, two sizes (radii at least 2x apart),
plain or lightly textured dark backgrounds, shapes that never overlap, and relations ("to the left
of", "above") only between shapes that are clearly apart along one axis and roughly aligned on the
other. Captions come from a small grammar (35 words, at most 14 per caption): the first
reference of every image is the canonical phrasing, the others vary template, word order and
synonyms ("small" / "little" / "tiny", "under" / "below"), so that BLEU against all references
rewards the common phrasing without hiding the variety.

Scenes of two or three shapes lie along one axis, left to right or top to bottom; `objects` lists
them in that reading order, with the tight box of each drawn shape.
"""

from __future__ import annotations

import dataclasses
import itertools
import re

import numpy as np
import tensorflow_datasets as tfds

from finetune.data.datasets import drawing

# Hues far apart, so each name stays right under the small jitter every object's colour gets.
COLOURS = {
    "red": (215, 40, 40),
    "green": (40, 175, 60),
    "blue": (45, 90, 235),
    "yellow": (240, 210, 40),
    "purple": (155, 60, 195),
    "white": (240, 240, 240),
}
SHAPES = ("circle", "square", "triangle", "star", "cross")
SIZES = ("small", "large")
# Radii as fractions of the image side: the smallest large shape is twice the largest small one.
SIZE_RADII = {"small": (0.095, 0.105), "large": (0.21, 0.22)}
OBJECT_COUNT_PROBABILITIES = {1: 0.25, 2: 0.45, 3: 0.30}
COLOUR_JITTER = 12.0  # per channel, out of 255
MAX_TILT_DEGREES = 8.0  # shapes stay upright enough that a triangle is never read as a rotated star
MAX_CAPTION_WORDS = 14

# Synonyms with their probabilities; the first of each is the canonical word.
SIZE_WORDS = {"small": (("small", 0.6), ("little", 0.2), ("tiny", 0.2)), "large": (("large", 0.6), ("big", 0.4))}
RELATION_WORDS = {
    "left": (("to the left of", 0.6), ("left of", 0.4)),
    "right": (("to the right of", 0.6), ("right of", 0.4)),
    "above": (("above", 1.0),),
    "below": (("below", 0.6), ("under", 0.4)),
}
# Per axis: the relation of an earlier shape to a later one, its inverse, and how a row is read.
AXES = {
    "horizontal": {"relation": "left", "inverse": "right", "order": "from left to right", "line": "in a row"},
    "vertical": {"relation": "above", "inverse": "below", "order": "from top to bottom", "line": "in a column"},
}

# Templates by number of shapes, the canonical one first. {S0} is "size colour shape" of the first
# shape in reading order, {C0} just "colour shape"; {rel} relates the first to the second, {inv}
# the second to the first. Lengths stay within MAX_CAPTION_WORDS with any choice of synonyms.
TEMPLATES = {
    1: ("a {S0}", "there is a {S0}", "a single {S0}", "a {C0}"),
    2: ("a {S0} {rel} a {S1}", "a {S1} {inv} a {S0}", "there is a {S0} {rel} a {S1}", "a {S0} and a {S1}"),
    3: ("a {S0}, a {S1} and a {S2}", "a {C0}, a {C1} and a {C2} {line}", "{order} a {C0}, a {C1} and a {C2}",
        "a {C0} {rel} a {C1} and a {C2}"),
}

_SPLIT_SEED_OFFSET = {"train": 0, "validation": 1, "test": 2}


@dataclasses.dataclass(eq=False)
class ZooShapeCaptionsConfig(tfds.core.BuilderConfig):
    """Resolution, split sizes and references per image of a zoo_shape_captions variant."""

    image_size: int = 64
    train_size: int = 4000
    validation_size: int = 500
    test_size: int = 500
    captions_per_image: int = 5
    seed: int = 0


def _config(name, image_size, train_size, validation_size, test_size, what=""):
    return ZooShapeCaptionsConfig(
        name=name,
        description=f"{train_size}/{validation_size}/{test_size} captioned scenes at {image_size}x{image_size}{what}",
        image_size=image_size,
        train_size=train_size,
        validation_size=validation_size,
        test_size=test_size,
    )


BUILDER_CONFIGS = [
    # The default (first): small shapes are ~6 px in radius, plenty to tell a star from a cross.
    _config("64", 64, 4000, 500, 500),
    # The same scenes and captions, drawn smaller (quicker to train on) or larger (for backbones
    # pretrained at larger inputs).
    _config("32", 32, 4000, 500, 500),
    _config("128", 128, 4000, 500, 500),
    # For tests: generates in about a second.
    _config("tiny", 32, 40, 10, 10, "; for tests"),
]


@dataclasses.dataclass(frozen=True)
class SceneObject:
    shape: str
    colour: str
    size: str
    center: tuple[float, float]  # (x, y) in pixels
    radius: float


def example_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """An independent random stream per example, so generation order does not matter."""
    return np.random.default_rng([seed, _SPLIT_SEED_OFFSET[split], index])


# -- scenes -----------------------------------------------------------------------------------------

def sample_scene(rng: np.random.Generator, image_size: int) -> tuple[list[SceneObject], str]:
    """One to three shapes placed without overlap, in reading order along the returned axis."""
    counts = list(OBJECT_COUNT_PROBABILITIES)
    count = int(rng.choice(counts, p=list(OBJECT_COUNT_PROBABILITIES.values())))
    kinds = []
    while len(kinds) < count:  # distinct (colour, shape), so every caption names each shape unambiguously
        kind = (str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES)))
        if kind not in kinds:
            kinds.append(kind)
    if count == 3:  # three large shapes cannot fit in a row: at most one is large
        sizes = ["small"] * 3
        if rng.random() < 0.6:
            sizes[int(rng.integers(3))] = "large"
    else:
        sizes = [str(rng.choice(SIZES)) for _ in range(count)]
    radii = [rng.uniform(*SIZE_RADII[size]) * image_size for size in sizes]
    axis = str(rng.choice(list(AXES)))
    centers = _place_along_axis(rng, radii, image_size) if count > 1 else [_place_anywhere(rng, radii[0], image_size)]
    if axis == "vertical":
        centers = [(y, x) for x, y in centers]
    objects = [SceneObject(shape, colour, size, center, radius)
               for (colour, shape), size, center, radius in zip(kinds, sizes, centers, radii)]
    return objects, axis


def _border(image_size: int) -> float:
    return 0.02 * image_size


def _place_anywhere(rng: np.random.Generator, radius: float, image_size: int) -> tuple[float, float]:
    low, high = radius + _border(image_size), image_size - radius - _border(image_size)
    return (rng.uniform(low, high), rng.uniform(low, high))


def _place_along_axis(rng: np.random.Generator, radii: list[float], image_size: int) -> list[tuple[float, float]]:
    """Centres (along, across) of shapes in a row: their extents along the row are disjoint with a gap,
    and across it they stay within a small band, so "left of" and "from left to right" are plain to see."""
    border, gap = _border(image_size), 0.04 * image_size
    slack = image_size - 2 * border - 2 * sum(radii) - gap * (len(radii) - 1)
    if slack < 0:
        raise ValueError(f"shapes of radii {radii} do not fit in a row of {image_size} pixels")
    # The spare room goes before, between and after the shapes in random proportions.
    spare = rng.dirichlet(np.ones(len(radii) + 1)) * slack
    along, position = [], border
    for radius, extra in zip(radii, spare):
        position += extra + radius
        along.append(position)
        position += radius + gap
    largest = max(radii)
    band = 0.06 * image_size
    line = rng.uniform(largest + border + band, image_size - largest - border - band)
    across = [line + rng.uniform(-band, band) for _ in radii]
    return list(zip(along, across))


def plain_background(rng: np.random.Generator, image_size: int) -> np.ndarray:
    """A dark, nearly neutral float32 RGB background: flat, or with a faint gradient or blotches.

    Dark, so that every colour (white included) stands out in brightness as well as hue."""
    base = rng.uniform(20, 65) + rng.uniform(-6, 6, 3)
    background = np.broadcast_to(base.astype(np.float32), (image_size, image_size, 3)).copy()
    texture = rng.integers(3)
    if texture == 1:  # a faint gradient
        angle = rng.uniform(0, 2 * np.pi)
        y, x = np.mgrid[0:image_size, 0:image_size].astype(np.float32) / image_size
        background += (18.0 * ((x - 0.5) * np.cos(angle) + (y - 0.5) * np.sin(angle)))[..., None]
    elif texture == 2:  # faint blotches
        background += 24.0 * (drawing.smooth_noise(rng, image_size, int(rng.integers(3, 6)), channels=1) - 0.5)
    return background + rng.normal(0.0, 3.0, background.shape).astype(np.float32)


def render_scene(rng: np.random.Generator, objects: list[SceneObject], image_size: int):
    """The uint8 RGB image of a scene and each shape's tight box (ymin, xmin, ymax, xmax in [0, 1])."""
    image = plain_background(rng, image_size)
    boxes = []
    for scene_object in objects:
        canvas = drawing.MaskCanvas(image_size, drawing.supersample_for(image_size))
        tilt = 0.0 if scene_object.shape == "circle" else rng.uniform(-MAX_TILT_DEGREES, MAX_TILT_DEGREES)
        canvas.add(scene_object.shape, scene_object.center, scene_object.radius, tilt)
        alpha = canvas.alpha()
        jitter = rng.uniform(-COLOUR_JITTER, COLOUR_JITTER, 3)
        colour = np.clip(np.asarray(COLOURS[scene_object.colour]) + jitter, 0, 255)
        image = drawing.composite(image, alpha, colour)
        rows, columns = np.nonzero(alpha[..., 0] >= 0.5)
        boxes.append((rows.min() / image_size, columns.min() / image_size,
                      (rows.max() + 1) / image_size, (columns.max() + 1) / image_size))
    return drawing.to_uint8(image), boxes


# -- captions ---------------------------------------------------------------------------------------

def _pick(rng: np.random.Generator, choices, canonical: bool) -> str:
    if canonical:
        return choices[0][0]
    words, probabilities = zip(*choices)
    return str(rng.choice(words, p=probabilities))


def _fill(rng: np.random.Generator, template: str, objects: list[SceneObject], axis: str, canonical: bool) -> str:
    words = AXES[axis]
    fields = {"order": words["order"], "line": words["line"],
              "rel": _pick(rng, RELATION_WORDS[words["relation"]], canonical),
              "inv": _pick(rng, RELATION_WORDS[words["inverse"]], canonical)}
    for index, scene_object in enumerate(objects):
        fields[f"C{index}"] = f"{scene_object.colour} {scene_object.shape}"
        fields[f"S{index}"] = f"{_pick(rng, SIZE_WORDS[scene_object.size], canonical)} {fields[f'C{index}']}"
    return template.format(**fields)


def write_captions(rng: np.random.Generator, objects: list[SceneObject], axis: str, count: int) -> list[str]:
    """`count` references: the canonical one, then every other template once in random order, then
    random templates; synonyms at random, retried (with other templates) to keep references distinct."""
    templates = TEMPLATES[len(objects)]
    others = [templates[index] for index in 1 + rng.permutation(len(templates) - 1)]
    captions = [_fill(rng, templates[0], objects, axis, canonical=True)]
    while len(captions) < count:
        planned = others.pop(0) if others else None
        for attempt in range(16):
            template = planned if planned is not None and attempt < 4 else str(rng.choice(templates))
            caption = _fill(rng, template, objects, axis, canonical=False)
            if caption not in captions:
                break
        captions.append(caption)
    return captions


def caption_words(caption: str) -> list[str]:
    """The words of a caption as the project normalizes them (lower case, no punctuation)."""
    return re.sub(r"[^\w\s]", "", caption.lower()).split()


def vocabulary() -> list[str]:
    """Every word the grammar can write, sorted."""
    words = set(COLOURS) | set(SHAPES)
    for choices in itertools.chain(SIZE_WORDS.values(), RELATION_WORDS.values()):
        words.update(word for phrase, _ in choices for word in phrase.split())
    for axis in AXES.values():
        words.update(axis["order"].split() + axis["line"].split())
    for template in itertools.chain.from_iterable(TEMPLATES.values()):
        words.update(caption_words(re.sub(r"\{\w+\}", " ", template)))
    return sorted(words)


def generate_example(seed: int, split: str, index: int, image_size: int, captions_per_image: int) -> dict:
    """One example's features, a pure function of its arguments."""
    rng = example_rng(seed, split, index)
    objects, axis = sample_scene(rng, image_size)
    # Captions before pixels: a scene and its captions are then the same at every resolution.
    captions = write_captions(rng, objects, axis, captions_per_image)
    image, boxes = render_scene(rng, objects, image_size)
    return {
        "image": image,
        "captions": captions,
        "objects": {
            "shape": [scene_object.shape for scene_object in objects],
            "colour": [scene_object.colour for scene_object in objects],
            "size": [scene_object.size for scene_object in objects],
            "bbox": [tfds.features.BBox(*box) for box in boxes],
        },
    }


class ZooShapeCaptions(tfds.core.GeneratorBasedBuilder):
    """Captioned shape scenes, generated locally (see the module docstring)."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {"1.0.0": "First release.", "1.1.0": "Anti-aliased edges at 128 pixels."}
    BUILDER_CONFIGS = BUILDER_CONFIGS

    def _info(self) -> tfds.core.DatasetInfo:
        size = self.builder_config.image_size
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(size, size, 3)),
                "captions": tfds.features.Sequence(tfds.features.Text()),
                "objects": tfds.features.Sequence({
                    "shape": tfds.features.ClassLabel(names=list(SHAPES)),
                    "colour": tfds.features.ClassLabel(names=list(COLOURS)),
                    "size": tfds.features.ClassLabel(names=list(SIZES)),
                    "bbox": tfds.features.BBoxFeature(),
                }),
            }),
            supervised_keys=("image", "captions"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download: every scene is drawn here
        config = self.builder_config
        return {
            "train": self._generate_examples("train", config.train_size),
            "validation": self._generate_examples("validation", config.validation_size),
            "test": self._generate_examples("test", config.test_size),
        }

    def _generate_examples(self, split: str, count: int):
        config = self.builder_config
        for index in range(count):
            example = generate_example(config.seed, split, index, config.image_size, config.captions_per_image)
            yield index, {**example, "image": drawing.encode_png(example["image"])}
