"""Decoding image files in the pipeline: JPEGs cropped before they are decoded, unreadable files
recorded by name.

- Training crops (random-resized-crop: Szegedy et al. 2015, "Going deeper with convolutions";
  torchvision's `RandomResizedCrop`) are drawn on the original image size, which JPEG headers give
  without decoding (`tf.image.extract_jpeg_shape`); only the window is decoded
  (`tf.image.decode_and_crop_jpeg`), at 1/2, 1/4 or 1/8 scale (libjpeg's DCT-domain scaling) when
  the window is at least that many times larger than the model's input on both sides. A
  12-megapixel photo feeding a 224x224 crop is then decoded at about 1/8 of its pixels.
- The evaluation transform's window (`zoo.layers.eval_transform.crop_window`: what a resize and
  centre crop read) is decoded the same way, at full scale, so the result is exactly that of the
  transform on the whole image.
- Other formats (PNG, BMP, GIF) are decoded whole, then cropped.
- Files are checked lazily: before a file is decoded, a check of its ends (a JPEG's end-of-image
  marker, a PNG's IEND chunk) catches the common damage, a file cut short; such a file is left out
  of the stream and recorded (`UnreadableFiles`), so a run can name it at the end of the epoch that
  met it. Damage that only decoding finds is left out by the pipeline's last guard
  (`ignore_errors`), which logs TensorFlow's error.
"""

from __future__ import annotations

import math
import sys
import threading

import tensorflow as tf

from zoo.eval_transform import EvalTransform
from zoo.layers import eval_transform

JPEG_START = b"\xff\xd8\xff"
JPEG_END = b"\xff\xd9"
PNG_START = b"\x89PNG\r\n\x1a\n"
PNG_END = b"IEND"
# Some cameras write data after a JPEG's end-of-image marker: the marker is looked for in the last
# bytes, not only at the very end. Inside the compressed data a 0xFF byte is always followed by 0x00
# or a restart marker, so the end marker cannot be found there by mistake.
JPEG_TAIL = 4096
PNG_TAIL = 64
DCT_RATIOS = (8, 4, 2)  # libjpeg's scalings, tried from the smallest decode up
CROP_ATTEMPTS = 10  # torchvision's RandomResizedCrop draws up to 10 windows before its fallback
CROP_RATIOS = (3 / 4, 4 / 3)


def is_jpeg(contents):
    return tf.equal(tf.strings.substr(contents, 0, 3), JPEG_START)


def _contains(tail, marker: bytes):
    return tf.size(tf.strings.split(tail, sep=marker)) > 1


def looks_complete(contents):
    """False for a JPEG or PNG whose end is missing (a file cut short); True for anything else, which
    decoding checks."""
    length = tf.strings.length(contents)

    def tail(count):
        start = tf.maximum(length - count, 0)
        return tf.strings.substr(contents, start, length - start)

    jpeg = is_jpeg(contents)
    png = tf.equal(tf.strings.substr(contents, 0, len(PNG_START)), PNG_START)
    return tf.cond(jpeg, lambda: _contains(tail(JPEG_TAIL), JPEG_END),
                   lambda: tf.cond(png, lambda: _contains(tail(PNG_TAIL), PNG_END), lambda: tf.constant(True)))


def decode(contents):
    """Encoded JPEG/PNG/BMP/GIF bytes to a uint8 RGB image (first frame of a GIF; alpha dropped)."""
    image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def image_shape(contents):
    """(height, width) int32 of an encoded image: from the header for a JPEG, else by decoding."""
    return tf.cond(is_jpeg(contents), lambda: tf.image.extract_jpeg_shape(contents)[:2],
                   lambda: tf.shape(decode(contents))[:2])


def random_window(seed, height, width, area_range, ratio_range=CROP_RATIOS):
    """A random-resized-crop window (top, left, height, width) int32 of a height x width image, as
    torchvision's `RandomResizedCrop` draws it: up to 10 tries of an area (a fraction of the image's,
    uniform in `area_range`) and an aspect ratio (log-uniform in `ratio_range`) that fit; else the
    largest centred window of an allowed ratio. `seed`: int [2], for stateless draws."""
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    draws = tf.random.stateless_uniform([CROP_ATTEMPTS, 4], seed)
    area = h * w * (area_range[0] + (area_range[1] - area_range[0]) * draws[:, 0])
    low, high = math.log(ratio_range[0]), math.log(ratio_range[1])
    ratio = tf.exp(low + (high - low) * draws[:, 1])
    crop_w, crop_h = tf.round(tf.sqrt(area * ratio)), tf.round(tf.sqrt(area / ratio))
    fits = (crop_w >= 1) & (crop_h >= 1) & (crop_w <= w) & (crop_h <= h)
    first = tf.argmax(tf.cast(fits, tf.int32))
    aspect = w / h
    fallback_w = tf.where(aspect > ratio_range[1], tf.round(h * ratio_range[1]), w)
    fallback_h = tf.where(aspect < ratio_range[0], tf.round(w / ratio_range[0]), h)
    found = tf.reduce_any(fits)
    crop_h = tf.where(found, crop_h[first], tf.minimum(fallback_h, h))
    crop_w = tf.where(found, crop_w[first], tf.minimum(fallback_w, w))
    top = tf.where(found, tf.floor(draws[first, 2] * (h - crop_h + 1)), tf.floor((h - crop_h) / 2))
    left = tf.where(found, tf.floor(draws[first, 3] * (w - crop_w + 1)), tf.floor((w - crop_w) / 2))
    top, left = tf.minimum(top, h - crop_h), tf.minimum(left, w - crop_w)
    return tf.cast(tf.stack([top, left, crop_h, crop_w]), tf.int32)


def scaled_window(window, ratio: int, height, width):
    """A window of the full image in the coordinates of the image decoded at 1/ratio, as
    `decode_and_crop_jpeg` takes it (libjpeg's scaled image is ceil(side / ratio)): the window
    moves to the scaled pixel grid, by less than `ratio` pixels of the full image, which a random
    crop's distribution does not notice."""
    top, left, crop_h, crop_w = tf.unstack(window)
    scaled_h, scaled_w = (height + ratio - 1) // ratio, (width + ratio - 1) // ratio
    top_s, left_s = top // ratio, left // ratio
    crop_h = tf.clip_by_value(crop_h // ratio, 1, scaled_h - top_s)
    crop_w = tf.clip_by_value(crop_w // ratio, 1, scaled_w - left_s)
    return tf.stack([top_s, left_s, crop_h, crop_w])


def decode_jpeg_window(contents, window, output_size, shape):
    """The `window` (top, left, height, width) of a JPEG of `shape` (height, width), decoded at the
    smallest DCT scale that keeps it at least `output_size` (height, width) on both sides."""
    crop_h, crop_w = window[2], window[3]
    branches = []
    for ratio in DCT_RATIOS:
        def scaled(ratio=ratio):
            return tf.image.decode_and_crop_jpeg(contents, scaled_window(window, ratio, shape[0], shape[1]),
                                                 channels=3, ratio=ratio)
        branches.append((tf.logical_and(crop_h >= ratio * output_size[0], crop_w >= ratio * output_size[1]), scaled))
    image = tf.case(branches, default=lambda: tf.image.decode_and_crop_jpeg(contents, window, channels=3),
                    exclusive=False)
    image.set_shape([None, None, 3])
    return image


# Past this much shrinking, a bilinear resize skips input pixels altogether and aliases: the filter
# is stretched over them (antialiasing), at about twice the cost. Below it, plain bilinear
# interpolation is what TensorFlow's ImageNet pipelines use. A JPEG crop that much larger than the
# input is decoded at a DCT scale first (`decode_jpeg_window`), so it rarely needs the stretch.
ANTIALIAS_ABOVE = 2


def resize_to(image, size, antialias: bool | None = None):
    """uint8 [H, W, C] to `size` (height, width): bilinear, antialiased (as PIL and torchvision) when
    `antialias`, or, by default (None, for training crops), when shrinking more than ANTIALIAS_ABOVE times."""
    if antialias is None:
        shape = tf.shape(image)
        shrinks = (shape[0] > ANTIALIAS_ABOVE * size[0]) | (shape[1] > ANTIALIAS_ABOVE * size[1])
        resized = tf.cond(shrinks, lambda: tf.image.resize(image, size, antialias=True),
                          lambda: tf.image.resize(image, size))
    else:
        resized = tf.image.resize(image, size, antialias=antialias)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


def _flipped(image, seed, flip: bool):
    return tf.image.stateless_random_flip_left_right(image, seed=seed + 1) if flip else image


def decode_cropped(contents, output_size, seed=None, area_range=None, flip=False, antialias: bool | None = None):
    """Encoded image bytes to uint8 RGB [output_size..., 3]: a random-resized-crop of `area_range`
    (None: the whole image, squashed to the size), optionally flipped left-right at random; JPEGs
    decoded only where the window is (module docstring). `seed`: int [2]; `antialias`: see `resize_to`."""
    def window_of(height, width):
        if area_range is None:
            return tf.stack([0, 0, height, width])
        return random_window(seed, height, width, area_range)

    def jpeg():
        shape = tf.image.extract_jpeg_shape(contents)[:2]
        return decode_jpeg_window(contents, window_of(shape[0], shape[1]), output_size, shape)

    def other():
        image = decode(contents)
        shape = tf.shape(image)
        top, left, height, width = tf.unstack(window_of(shape[0], shape[1]))
        return image[top:top + height, left:left + width]

    image = tf.cond(is_jpeg(contents), jpeg, other)
    return _flipped(resize_to(image, output_size, antialias), seed, flip)


def crop_decoded(image, output_size, seed, area_range=None, flip=False):
    """A decoded uint8 image [H, W, C] through the same random-resized-crop and flip as
    `decode_cropped` (for images that come decoded, or from an in-memory cache)."""
    if area_range is not None:
        shape = tf.shape(image)
        top, left, height, width = tf.unstack(random_window(seed, shape[0], shape[1], area_range))
        image = resize_to(image[top:top + height, left:left + width], output_size)
    return _flipped(image, seed, flip)


# libjpeg upsamples the colour planes (stored at half resolution) from their neighbours: at the edge
# of a cropped decode the neighbours outside are missing and the edge pixels differ by a level or
# two from a whole decode. A margin of two 8x8 blocks (a 16x16 colour block) keeps them outside.
EDGE_MARGIN = 16


def with_margin(window, shape):
    """A (top, left, height, width) window grown by EDGE_MARGIN on every side, within the image."""
    top, left, height, width = tf.unstack(window)
    new_top, new_left = tf.maximum(top - EDGE_MARGIN, 0), tf.maximum(left - EDGE_MARGIN, 0)
    bottom = tf.minimum(top + height + EDGE_MARGIN, shape[0])
    right = tf.minimum(left + width + EDGE_MARGIN, shape[1])
    return tf.stack([new_top, new_left, bottom - new_top, right - new_left])


def decode_for_evaluation(contents, transform: EvalTransform, output_size):
    """Encoded image bytes through the evaluation transform (resize, centre crop), a JPEG decoded
    only in the window the transform reads: float32 [output_size..., 3], whole numbers in [0, 255].

    A JPEG at least 2 x 2 times larger than its resize (a 12-megapixel photo resized to 256) is
    decoded at the largest DCT scale, 1/2 to 1/8, that keeps it twice the resize, and resized from
    there: the antialiased resize then still averages several pixels into each one it makes, and
    the result is within a few levels of the exact transform's (under one on average). Smaller
    JPEGs, and other formats, give exactly the transform's result."""
    def jpeg():
        shape = tf.image.extract_jpeg_shape(contents)[:2]
        (resized_height, resized_width), _ = eval_transform.layout(shape[0], shape[1], transform, output_size)

        def at(ratio: int):
            def decode():
                scaled = (shape + ratio - 1) // ratio  # libjpeg's scaled size
                window = with_margin(eval_transform.crop_window(scaled[0], scaled[1], transform, output_size), scaled)
                image = tf.image.decode_and_crop_jpeg(contents, window, channels=3, ratio=ratio)
                return eval_transform.apply(image, transform, output_size, full_shape=scaled, offset=window[:2])

            return decode

        large = [(tf.logical_and(shape[0] >= 2 * ratio * resized_height, shape[1] >= 2 * ratio * resized_width),
                  at(ratio)) for ratio in DCT_RATIOS]
        return tf.case(large, default=at(1), exclusive=False)

    def other():
        return eval_transform.apply(decode(contents), transform, output_size)

    image = tf.cond(is_jpeg(contents), jpeg, other)
    image.set_shape([*output_size, 3])
    return image


class UnreadableFiles:
    """The files a stream left out because they are damaged, recorded as the stream meets them.

    `record` is used inside tf.data functions (a mutable hash table, path -> 1); `met()` gives the
    paths recorded so far, `new()` those not yet returned by an earlier `new()`. In a stream that runs
    on tf.data service workers the table cannot follow: the workers print each file they leave out
    (`print_only`)."""

    def __init__(self, print_only: bool = False):
        self.print_only = print_only
        self._table = None if print_only else tf.lookup.experimental.MutableHashTable(tf.string, tf.int64, 0)
        self._reported: set[str] = set()
        self._lock = threading.Lock()

    def record(self, path, readable):
        """`readable` (bool scalar) as it is; a False one records `path` first."""
        def note():
            if self._table is None:
                return tf.print("unreadable image file, left out:", path, output_stream=sys.stderr)
            return self._table.insert(path, tf.constant(1, tf.int64))

        with tf.control_dependencies([tf.cond(readable, tf.no_op, lambda: tf.group(note()))]):
            return tf.identity(readable)

    def met(self) -> list[str]:
        if self._table is None:
            return []
        keys, _ = self._table.export()
        return sorted(key.decode("utf8", "surrogateescape") for key in keys.numpy().tolist())

    def new(self) -> list[str]:
        with self._lock:
            fresh = [path for path in self.met() if path not in self._reported]
            self._reported.update(fresh)
        return fresh
