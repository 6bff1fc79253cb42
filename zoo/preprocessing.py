"""What a model expects of its input pixels: plain data, read without Keras (`zoo.layers.preprocessing`
applies it in a graph)."""

from __future__ import annotations

import dataclasses

IMAGENET_MEAN_RGB = (123.675, 116.28, 103.53)
IMAGENET_STD_RGB = (58.395, 57.12, 57.375)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """Maps pixels in [0, 255] to model input: ``(pixels[..., order] - mean) / std``.

    ``channel_order`` is "rgb", "bgr" (caffe-style models reverse the channels first) or "gray".
    ``mean``/``std`` are per channel (after reordering) or a single value for all channels;
    a scale/offset convention such as [-1, 1] is ``mean=127.5, std=127.5``.
    """

    name: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channel_order: str = "rgb"

    def describe(self) -> str:
        mean = ", ".join(f"{value:g}" for value in self.mean)
        std = ", ".join(f"{value:g}" for value in self.std)
        return f"{self.name}: {self.channel_order.upper()} pixels in [0, 255], minus ({mean}), divided by ({std})"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def for_channels(self, channels: int) -> "Preprocessing":
        """The same convention for inputs with another number of channels (gray <-> RGB)."""
        if len(self.mean) in (1, channels):
            return self
        mean = (sum(self.mean) / len(self.mean),) if channels == 1 else (self.mean[0],) * channels
        std = (sum(self.std) / len(self.std),) if channels == 1 else (self.std[0],) * channels
        order = "gray" if channels == 1 else ("rgb" if self.channel_order == "gray" else self.channel_order)
        return dataclasses.replace(self, mean=mean, std=std, channel_order=order)


UNIT_SCALE = Preprocessing("unit", mean=(0.0,), std=(255.0,), channel_order="gray")
TORCH = Preprocessing("torch", mean=IMAGENET_MEAN_RGB, std=IMAGENET_STD_RGB)
CAFFE = Preprocessing("caffe", mean=CAFFE_MEAN_BGR, std=(1.0, 1.0, 1.0), channel_order="bgr")
TF_SYMMETRIC = Preprocessing("tf", mean=(127.5,), std=(127.5,))
# BVLC's Caffe models: BGR minus the per-channel means of their training images (the AlexNets'
# are those of ilsvrc_2012_mean.npy; GoogLeNet's prototxt gives them rounded)
CAFFE_BVLC_ALEXNET = Preprocessing("caffe_bvlc", mean=(104.007, 116.669, 122.679), std=(1.0, 1.0, 1.0),
                                   channel_order="bgr")
CAFFE_BVLC_GOOGLENET = Preprocessing("caffe_bvlc", mean=(104.0, 117.0, 123.0), std=(1.0, 1.0, 1.0),
                                     channel_order="bgr")
