"""Drawing of the built-in datasets' shapes and scenes with PIL and numpy.

Shapes are drawn as anti-aliased masks (drawn large, then shrunk) and composited over a background,
so the same code serves the classification images (textured, noisy) and the captioned scenes
(plain, so that colours stay nameable).
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw

# The outline of each shape around the origin, with its farthest point at radius 1 (before the
# shape's aspect is applied). Each entry returns a list of (polygon, fill) pairs: fill 0 cuts a hole.
_POINTS_ON_CURVES = 48


def _regular_polygon(sides: int, start_degrees: float = -90.0) -> list[tuple[float, float]]:
    return [
        (math.cos(math.radians(start_degrees + 360.0 * k / sides)),
         math.sin(math.radians(start_degrees + 360.0 * k / sides)))
        for k in range(sides)
    ]


def _ellipse(width: float, height: float, offset_x: float = 0.0) -> list[tuple[float, float]]:
    return [
        (offset_x + width * math.cos(2 * math.pi * k / _POINTS_ON_CURVES),
         height * math.sin(2 * math.pi * k / _POINTS_ON_CURVES))
        for k in range(_POINTS_ON_CURVES)
    ]


def _star(points: int = 5, inner: float = 0.42) -> list[tuple[float, float]]:
    outline = []
    for k in range(2 * points):
        radius = 1.0 if k % 2 == 0 else inner
        angle = math.radians(-90.0 + 180.0 * k / points)
        outline.append((radius * math.cos(angle), radius * math.sin(angle)))
    return outline


def _cross(arm: float = 0.34) -> list[tuple[float, float]]:
    a, b = arm, 0.95
    return [(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b), (-a, a), (-b, a), (-b, -a), (-a, -a)]


def _heart() -> list[tuple[float, float]]:
    # The classic parametric heart, scaled to radius ~1 and with its point downwards (image y grows down).
    outline = []
    for k in range(_POINTS_ON_CURVES * 2):
        t = 2 * math.pi * k / (_POINTS_ON_CURVES * 2)
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        outline.append((x / 17.0, -(y + 2.5) / 17.0))
    return outline


def _arrow() -> list[tuple[float, float]]:
    return [(-0.95, -0.2), (0.15, -0.2), (0.15, -0.6), (0.95, 0.0), (0.15, 0.6), (0.15, 0.2), (-0.95, 0.2)]


SHAPE_OUTLINES = {
    "circle": lambda: [(_ellipse(1.0, 1.0), 255)],
    "square": lambda: [(_regular_polygon(4, 45.0), 255)],
    "triangle": lambda: [([(x, y + 0.2) for x, y in _regular_polygon(3)], 255)],
    "star": lambda: [(_star(), 255)],
    "cross": lambda: [(_cross(), 255)],
    "ring": lambda: [(_ellipse(1.0, 1.0), 255), (_ellipse(0.55, 0.55), 0)],
    "ellipse": lambda: [(_ellipse(1.0, 0.5), 255)],
    "diamond": lambda: [([(0.0, -1.0), (0.55, 0.0), (0.0, 1.0), (-0.55, 0.0)], 255)],
    "heart": lambda: [(_heart(), 255)],
    "arrow": lambda: [(_arrow(), 255)],
    "pentagon": lambda: [(_regular_polygon(5), 255)],
    "hexagon": lambda: [(_regular_polygon(6, 0.0), 255)],
    "crescent": lambda: [(_ellipse(1.0, 1.0), 255), (_ellipse(0.85, 0.85, offset_x=0.45), 0)],
}
SHAPES = tuple(SHAPE_OUTLINES)
_OUTLINE_CACHE = {name: make() for name, make in SHAPE_OUTLINES.items()}


def draw_shape_mask(
    mask: ImageDraw.ImageDraw, shape: str, center: tuple[float, float], radius: float, angle_degrees: float = 0.0
) -> None:
    """Draws one shape, white on the mask, centred at `center` (pixels) with the given radius and rotation."""
    cos, sin = math.cos(math.radians(angle_degrees)), math.sin(math.radians(angle_degrees))
    for outline, fill in _OUTLINE_CACHE[shape]:
        points = [
            (center[0] + radius * (x * cos - y * sin), center[1] + radius * (x * sin + y * cos)) for x, y in outline
        ]
        mask.polygon(points, fill=fill)


class MaskCanvas:
    """An anti-aliased alpha mask: shapes are drawn `supersample` times larger, then shrunk to `size`."""

    def __init__(self, size: int, supersample: int):
        self.size = size
        self.scale = supersample
        self.image = Image.new("L", (size * supersample, size * supersample), 0)
        self.draw = ImageDraw.Draw(self.image)

    def add(self, shape: str, center: tuple[float, float], radius: float, angle_degrees: float = 0.0) -> None:
        """Adds a shape; coordinates are in output pixels."""
        draw_shape_mask(self.draw, shape, (center[0] * self.scale, center[1] * self.scale),
                        radius * self.scale, angle_degrees)

    def alpha(self) -> np.ndarray:
        """The mask at output size, float32 in [0, 1], shape (size, size, 1)."""
        small = self.image.resize((self.size, self.size), Image.Resampling.BOX)
        return (np.asarray(small, dtype=np.float32) / 255.0)[..., None]


def supersample_for(size: int) -> int:
    """How much larger to draw masks: 4x at 32 pixels, 2x from 64 up (PIL's polygons are not anti-aliased)."""
    return max(2, 128 // size)


def composite(background: np.ndarray, alpha: np.ndarray, colour) -> np.ndarray:
    """Paints `colour` (RGB, 0-255, or an HxWx3 array) over `background` through `alpha`."""
    return background * (1.0 - alpha) + np.asarray(colour, dtype=np.float32) * alpha


def smooth_noise(rng: np.random.Generator, size: int, cells: int, channels: int = 3) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a random `cells` x `cells` grid upscaled bicubically to `size`."""
    grid = rng.random((cells, cells, channels)).astype(np.float32)
    layers = [
        np.asarray(Image.fromarray(grid[..., c], mode="F").resize((size, size), Image.Resampling.BICUBIC))
        for c in range(channels)
    ]
    return np.clip(np.stack(layers, axis=-1), 0.0, 1.0)


def textured_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A float32 RGB background: two random colours mixed by blotchy noise, stripes or a gradient, plus grain."""
    # The second colour stays near the first: the texture is there to defeat a linear model on
    # pixels, not to hide the shape from a small CNN (LeNet-5 on 32x32 gray must learn the task).
    first = rng.uniform(0, 255, 3)
    second = np.clip(first + rng.uniform(-60, 60, 3), 0, 255)
    texture = rng.integers(3)
    if texture == 0:  # blotches
        mix = smooth_noise(rng, size, int(rng.integers(3, 7)), channels=1)
    elif texture == 1:  # stripes at a random angle and period
        angle, period = rng.uniform(0, math.pi), rng.uniform(size / 8, size / 3)
        y, x = np.mgrid[0:size, 0:size].astype(np.float32)
        mix = (0.5 + 0.5 * np.sin(2 * math.pi * (x * math.cos(angle) + y * math.sin(angle)) / period))[..., None]
    else:  # a gradient
        angle = rng.uniform(0, 2 * math.pi)
        y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
        mix = np.clip(0.5 + (x - 0.5) * math.cos(angle) + (y - 0.5) * math.sin(angle), 0, 1)[..., None]
    background = first * (1 - mix) + second * mix
    return background + grain(rng, (size, size, 3), 8.0)


def grain(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Gaussian pixel noise, drawn in float32 (twice as fast as float64 at 224x224)."""
    return sigma * rng.standard_normal(shape, dtype=np.float32)


def luminance(colour) -> float:
    """The Rec. 601 luma of an RGB colour (what grayscale conversion keeps)."""
    red, green, blue = colour
    return 0.299 * red + 0.587 * green + 0.114 * blue


def contrasting_colour(rng: np.random.Generator, background_luma: float, min_difference: float = 80.0) -> np.ndarray:
    """A random RGB colour whose luma differs from the background's by at least `min_difference`,
    so that shapes stay visible to grayscale models too."""
    while True:
        colour = rng.uniform(0, 255, 3)
        if abs(luminance(colour) - background_luma) >= min_difference:
            return colour


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def encode_png(image: np.ndarray) -> bytes:
    """A uint8 image as PNG bytes, for a TFDS Image feature.

    TFDS encodes numpy images through a TensorFlow graph at ~8 ms each; PIL takes ~0.2 ms, which
    is what lets the default datasets generate in seconds.
    """
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
