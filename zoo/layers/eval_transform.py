"""An evaluation transform (`zoo.eval_transform.EvalTransform`: resize, then centre crop) in
TensorFlow ops: images of any size in, the model's input out.

Resampling is PIL's algorithm (`ImagingResample`), which torchvision's antialiased resize and timm
(through PIL) use: along each axis, output pixel j of a resize from n to m pixels is centred at
c = (j + 0.5) * n / m of the input and weighs input pixels i in [int(c - s + 0.5), int(c + s + 0.5))
by filter((i + 0.5 - c) / f), normalized; f = max(n / m, 1) with antialiasing (the filter stretched
when downscaling), 1 without; s = the filter's support times f. Written as two matrix products, it
computes only the rows and columns inside the crop, and lowers to operations that ONNX (tf2onnx) and
LiteRT's built-in kernels convert: `tf.image.resize(antialias=True)` is a ScaleAndTranslate
operation, which neither does.

`crop_window` gives the part of the original image the output depends on, so that a decoder can
decode only that (`tf.image.decode_and_crop_jpeg`) and pass it to `apply` with its offset.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from zoo.eval_transform import BOTH, SQUASH, EvalTransform

SUPPORTS = {"bilinear": 1.0, "bicubic": 2.0}
CUBIC_A = -0.5  # PIL's and torchvision's antialiased bicubic (Keys' cubic convolution)


def _filter(x, interpolation: str):
    x = tf.abs(x)
    if interpolation == "bilinear":
        return tf.maximum(1.0 - x, 0.0)
    a = CUBIC_A
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return tf.where(x < 1.0, near, tf.where(x < 2.0, far, tf.zeros_like(x)))


def _torchvision_offset(margin):
    """int(round(margin / 2)) as Python computes it (halves to even), in integer operations."""
    half = margin // 2
    return half + (margin % 2) * (half % 2)


def layout(height, width, transform: EvalTransform, size):
    """Where the output comes from, for an image of height x width (int32 scalars) and a model
    input `size` (height, width): the resized image's (height, width) and the crop's (top, left)
    in it, as int32 scalars."""
    target, (crop_height, crop_width) = transform.sizes(*size)
    height, width = tf.cast(height, tf.int32), tf.cast(width, tf.int32)
    if transform.resize_mode == SQUASH:
        zero = tf.constant(0, tf.int32)
        return (tf.constant(crop_height), tf.constant(crop_width)), (zero, zero)
    if transform.resize_mode == BOTH:
        resized_height, resized_width = tf.constant(target[0]), tf.constant(target[1])
    else:  # torchvision's `_compute_resized_output_size`: the long side is int(size * long / short)
        short, long = tf.minimum(height, width), tf.maximum(height, width)
        new_long = (target * long) // short  # exact: int() of the float quotient, for sides below 2**31 / size
        width_is_short = width <= height
        resized_width = tf.where(width_is_short, target, new_long)
        resized_height = tf.where(width_is_short, new_long, target)
    top = _torchvision_offset(resized_height - crop_height)
    left = _torchvision_offset(resized_width - crop_width)
    return (resized_height, resized_width), (top, left)


def _taps(in_size, out_size, first, count: int, transform: EvalTransform):
    """For output pixels first .. first + count - 1 of a resize from in_size to out_size: the
    first and one-past-last input pixel each weighs, and the stretch of the filter."""
    in_size_f, out_size_f = tf.cast(in_size, tf.float32), tf.cast(out_size, tf.float32)
    scale = in_size_f / out_size_f
    stretch = tf.maximum(scale, 1.0) if transform.antialias else tf.constant(1.0)
    support = SUPPORTS[transform.interpolation] * stretch
    centres = (tf.cast(first + tf.range(count), tf.float32) + 0.5) * scale
    lowest = tf.maximum(tf.cast(tf.floor(centres - support + 0.5), tf.int32), 0)
    highest = tf.minimum(tf.cast(tf.floor(centres + support + 0.5), tf.int32), in_size)
    return centres, lowest, highest, stretch


def _weights(in_size, out_size, first, count: int, transform: EvalTransform, offset, extent):
    """The [count, extent] matrix taking input pixels offset .. offset + extent - 1 to output
    pixels first .. first + count - 1 (each row sums to 1)."""
    centres, lowest, highest, stretch = _taps(in_size, out_size, first, count, transform)
    pixels = offset + tf.range(extent)
    inside = (pixels[tf.newaxis, :] >= lowest[:, tf.newaxis]) & (pixels[tf.newaxis, :] < highest[:, tf.newaxis])
    distance = (tf.cast(pixels, tf.float32)[tf.newaxis, :] + 0.5 - centres[:, tf.newaxis]) / stretch
    weights = tf.where(inside, _filter(distance, transform.interpolation), 0.0)
    total = tf.reduce_sum(weights, axis=1, keepdims=True)
    return weights / tf.where(total == 0.0, 1.0, total)


def _to_pixels(values):
    """Rounded (halves up, as PIL's fixed-point arithmetic) and clipped to [0, 255]: bicubic overshoots."""
    return tf.clip_by_value(tf.floor(values + 0.5), 0.0, 255.0)


def crop_window(height, width, transform: EvalTransform, size):
    """The part of a height x width image that the output depends on: (top, left, height, width)
    int32, e.g. for `tf.image.decode_and_crop_jpeg`."""
    (resized_height, resized_width), (top, left) = layout(height, width, transform, size)
    _, (crop_height, crop_width) = transform.sizes(*size)
    bounds = []
    for in_size, out_size, first, count in ((height, resized_height, top, crop_height),
                                            (width, resized_width, left, crop_width)):
        _, lowest, highest, _ = _taps(tf.cast(in_size, tf.int32), out_size, first, count, transform)
        bounds.append((lowest[0], highest[-1] - lowest[0]))
    (window_top, window_height), (window_left, window_width) = bounds
    return tf.stack([window_top, window_left, window_height, window_width])


def apply(images, transform: EvalTransform, size, full_shape=None, offset=None):
    """Resize and centre crop images [H, W, C] or [N, H, W, C] (pixels in [0, 255], one size per
    batch) to float32 [(N,) size[0], size[1], C]: whole numbers in [0, 255], as PIL's 8-bit images.

    Args:
        transform: the evaluation transform.
        size: the model input (height, width): the crop.
        full_shape, offset: when `images` is a window of a larger image (`crop_window`), that
            image's (height, width) and the window's (top, left).
    """
    images = tf.convert_to_tensor(images)
    single = images.shape.rank == 3
    if single:
        images = images[tf.newaxis]
    images = tf.cast(images, tf.float32)
    shape = tf.shape(images)
    height, width = (shape[1], shape[2]) if full_shape is None else (full_shape[0], full_shape[1])
    top_offset, left_offset = (0, 0) if offset is None else (offset[0], offset[1])
    (resized_height, resized_width), (top, left) = layout(height, width, transform, size)
    _, (crop_height, crop_width) = transform.sizes(*size)
    channels = images.shape[-1] if images.shape[-1] is not None else shape[3]
    rows = _weights(height, resized_height, top, crop_height, transform, top_offset, shape[1])
    columns = _weights(width, resized_width, left, crop_width, transform, left_offset, shape[2])
    batch = shape[0]
    # PIL's order on 8-bit images: the horizontal pass first, each pass rounded and clipped to pixels;
    # OpenCV (the resize without antialiasing, Caffe's) keeps its sums between the passes
    # [N, H, W, C] -> [N*H*C, W] @ columns^T -> [N, H, C, crop W] -> [N*crop W*C, H] @ rows^T
    x = tf.reshape(tf.transpose(images, [0, 1, 3, 2]), [-1, shape[2]])
    x = tf.matmul(x, columns, transpose_b=True)
    if transform.antialias:
        x = _to_pixels(x)
    x = tf.transpose(tf.reshape(x, [batch, shape[1], channels, crop_width]), [0, 3, 2, 1])
    x = _to_pixels(tf.matmul(tf.reshape(x, [-1, shape[1]]), rows, transpose_b=True))
    # static sizes in the reshape, not tf.ensure_shape, which LiteRT has no kernel for
    x = tf.transpose(tf.reshape(x, [batch, crop_width, channels, crop_height]), [0, 3, 1, 2])
    return x[0] if single else x


@keras.saving.register_keras_serializable(package="zoo")
class EvalResizeCrop(keras.layers.Layer):
    """An evaluation transform as a layer: uint8 or float images [N, H, W, C] of any one size
    (pixels in [0, 255]) -> float32 [N, height, width, C], so exported graphs take any image size."""

    def __init__(self, transform: dict, size, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.transform = EvalTransform.from_dict(dict(transform))
        self.size = (int(size[0]), int(size[1]))

    def call(self, inputs):
        return apply(inputs, self.transform, self.size)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.size, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(transform=self.transform.to_dict(), size=list(self.size))
        return config
