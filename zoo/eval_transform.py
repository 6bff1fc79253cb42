"""How a set of weights' source brings an image of any size to the model's input when it evaluates
them: resize, then centre crop. Plain data, read without Keras; `zoo.layers.eval_transform`
computes it in TensorFlow ops (one implementation for prediction, exports, evaluation and the
validation stream of a run).

The sources, as their own code does it:
- torchvision (`weights.transforms()`, `ImageClassification`): the shorter side resized to
  `resize_size` (256; 232 for the IMAGENET1K_V2 ResNets), the long side to
  int(resize_size * long / short), bilinear with antialiasing, then a centre crop of 224 whose
  offsets are int(round((side - 224) / 2)) (Python rounds halves to even);
- timm (`resolve_data_config` + `create_transform`, `transforms_imagenet_eval`): the shorter side
  resized to floor(input / crop_pct) (crop_pct 0.95, bicubic, for the `a1_in1k` ResNets), the same
  centre crop; timm feeds PIL images, whose resampling is always antialiased;
- BVLC Caffe: the images resized to 256x256 when the LMDB is made (`convert_imageset` with
  `create_imagenet.sh`'s RESIZE_HEIGHT/RESIZE_WIDTH, OpenCV's bilinear `cv::resize`, which does not
  antialias), then a centre crop of 227 (AlexNet, CaffeNet) or 224 (GoogLeNet) by the data layer;
- keras.applications publishes no evaluation protocol: its weights get the whole image resized
  to the input size (aspect not kept), bilinear with antialiasing.

Resampling is PIL's (`ImagingResample`: a triangle or a Keys a=-0.5 cubic filter stretched by the
downscaling factor when antialiasing, its weights normalized over the pixels inside the image),
which torchvision's antialiased tensor resize also follows; without antialiasing the same filter
unstretched, which is OpenCV's bilinear `cv::resize` (half-pixel centres, edges clamped).
"""

from __future__ import annotations

import dataclasses
import math

from zoo.errors import ZooError

SHORTER, BOTH, SQUASH = "shorter", "both", "none"
RESIZE_MODES = (SHORTER, BOTH, SQUASH)
INTERPOLATIONS = ("bilinear", "bicubic")
# bounds far beyond any source's (224 from 256): a record from a file cannot ask for an absurd resize
MAX_SIDE = 8192
MAX_RESIZE_FACTOR = 16


@dataclasses.dataclass(frozen=True)
class EvalTransform:
    """Resize, then centre crop to the model's input.

    - resize_mode "shorter": the shorter side to the resize size, the aspect kept; "both": both
      sides to it, the aspect not kept; "none": the whole image squashed to the input, no crop.
    - resize_size and crop_size: the resize size (and the crop it is meant for: the weights' input
      side); at another input the resize size scales with it. crop_pct instead (timm's): the resize
      size is floor(input side / crop_pct).
    """

    resize_mode: str = SQUASH
    resize_size: int | None = None
    crop_size: int | None = None
    crop_pct: float | None = None
    interpolation: str = "bilinear"
    antialias: bool = True

    def __post_init__(self):
        if self.resize_mode not in RESIZE_MODES:
            raise ZooError(f"the resize mode is one of {', '.join(RESIZE_MODES)}, not {self.resize_mode!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ZooError(f"the interpolation is one of {', '.join(INTERPOLATIONS)}, not {self.interpolation!r}")
        if self.resize_mode == SQUASH:
            if self.resize_size is not None or self.crop_pct is not None:
                raise ZooError("resize mode none squashes the image to the input: it takes no resize size or crop")
            return
        if (self.resize_size is None) == (self.crop_pct is None):
            raise ZooError("a resize-and-crop transform takes a resize size (with its crop size) or a crop_pct")
        if self.resize_size is not None:
            if not isinstance(self.crop_size, int) or not isinstance(self.resize_size, int) or self.crop_size < 1:
                raise ZooError(f"the resize and crop sizes are whole numbers, got {self.resize_size} and "
                               f"{self.crop_size}")
            if self.resize_size < self.crop_size:
                raise ZooError(f"the resize size ({self.resize_size}) cannot be below the crop's ({self.crop_size})")
            if self.crop_size > MAX_SIDE or self.resize_size > MAX_RESIZE_FACTOR * self.crop_size:
                raise ZooError(f"a crop of at most {MAX_SIDE} pixels from a resize of at most {MAX_RESIZE_FACTOR}x it, "
                               f"not {self.crop_size} from {self.resize_size}")
        elif not 0 < self.crop_pct <= 1:
            raise ZooError(f"crop_pct is in (0, 1], got {self.crop_pct}")

    def sizes(self, height: int, width: int) -> tuple[int | tuple[int, int], tuple[int, int]]:
        """(the resize target, the crop (height, width)) for a model input of height x width. The
        target is the shorter side's length ("shorter") or (height, width) ("both", "none")."""
        if self.resize_mode == SQUASH:
            return (height, width), (height, width)
        if self.crop_pct is not None:
            sides = (math.floor(height / self.crop_pct), math.floor(width / self.crop_pct))
        else:
            sides = (self.resize_size * height // self.crop_size, self.resize_size * width // self.crop_size)
        return (max(sides) if self.resize_mode == SHORTER else sides), (height, width)

    def before_crop(self, height: int, width: int) -> tuple["EvalTransform", tuple[int, int]]:
        """The transform that stops before the crop at this input, and the size of its output: that
        output brought through this transform again is this transform's output (up to a one-pixel
        shift of the crop where the rounding of odd margins differs). For data to feed an export
        that applies this transform itself."""
        if self.resize_mode == SQUASH:
            return self, (height, width)
        target, _ = self.sizes(height, width)
        side = target if self.resize_mode == SHORTER else max(target)
        return dataclasses.replace(self, resize_size=side, crop_size=side, crop_pct=None), (side, side)

    def describe(self, height: int | None = None, width: int | None = None) -> str:
        """One line: what happens to an image at a model input of height x width (default: the
        crop size the transform was given for)."""
        how = f"{self.interpolation}{', antialiased' if self.antialias else ''}"
        if self.resize_mode == SQUASH:
            return f"resize to the input size, aspect not kept ({how}); no crop"
        height = height or self.crop_size
        if height is None:
            resize, crop = f"floor(input / {self.crop_pct:g})", "the input size"
        else:
            width = width or height
            target, _ = self.sizes(height, width)
            resize = str(target) if self.resize_mode == SHORTER else f"{target[0]}x{target[1]}"
            crop = str(height) if height == width else f"{height}x{width}"
        if self.crop_pct is not None:
            how = f"crop_pct {self.crop_pct:g}; {how}"
        if self.resize_mode == SHORTER:
            return f"resize the shorter side to {resize} ({how}), centre crop {crop}"
        return f"resize to {resize}, aspect not kept ({how}), centre crop {crop}"

    def short(self, height: int | None = None, width: int | None = None) -> str:
        """A few words for a table: "shorter side 232, crop 224, bilinear", "squash, bilinear", ..."""
        how = self.interpolation + ("" if self.antialias else " (no antialias)")
        if self.resize_mode == SQUASH:
            return f"squash, {how}"
        height = height or self.crop_size
        if height is None:
            return f"crop_pct {self.crop_pct:g}, {how}"
        width = width or height
        target, crop = self.sizes(height, width)
        resize = f"shorter side {target}" if self.resize_mode == SHORTER else f"resize {target[0]}x{target[1]}"
        if self.crop_pct is not None:
            resize += f" (crop_pct {self.crop_pct:g})"
        crop = str(height) if height == width else f"{height}x{width}"
        return f"{resize}, crop {crop}, {how}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "EvalTransform":
        """A transform from its `to_dict()` (as JSON files keep it); a bad one raises ZooError."""
        if not isinstance(values, dict):
            raise ZooError(f"an evaluation transform is a mapping of its fields, not {values!r}")
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = {str(key) for key in values} - known
        if unknown:
            raise ZooError(f"unknown fields of an evaluation transform: {', '.join(sorted(unknown))[:200]}")
        for key, value in values.items():  # files from anywhere record it: the types before any comparison
            if not isinstance(value, FIELD_TYPES[key]) or isinstance(value, bool) is not (key == "antialias"):
                raise ZooError(f"the evaluation transform's {key} must be {FIELD_DESCRIPTIONS[key]}, not "
                               f"{str(value)[:60]!r}")
        return cls(**values)


FIELD_TYPES = {"resize_mode": str, "resize_size": (int, type(None)), "crop_size": (int, type(None)),
               "crop_pct": (int, float, type(None)), "interpolation": str, "antialias": bool}
FIELD_DESCRIPTIONS = {"resize_mode": "text", "resize_size": "a whole number or null", "crop_size": "a whole number or null",
                      "crop_pct": "a number or null", "interpolation": "text", "antialias": "true or false"}


# the sources' own transforms (module docstring)
SQUASH_BILINEAR = EvalTransform()
TORCHVISION_V1 = EvalTransform(SHORTER, resize_size=256, crop_size=224)
TORCHVISION_V2 = EvalTransform(SHORTER, resize_size=232, crop_size=224)
TIMM_RSB = EvalTransform(SHORTER, crop_pct=0.95, interpolation="bicubic")
BVLC_ALEXNET = EvalTransform(BOTH, resize_size=256, crop_size=227, antialias=False)
BVLC_GOOGLENET = EvalTransform(BOTH, resize_size=256, crop_size=224, antialias=False)


def parse_resize(text: str | int | None) -> tuple[str, int | tuple[int, int] | None] | None:
    """A user's resize choice: "none" (squash), "N" (the shorter side) or "HxW" (both sides)."""
    if text is None:
        return None
    text = str(text).strip().lower()
    if text == SQUASH:
        return SQUASH, None
    try:
        if "x" in text:
            height, width = (int(part) for part in text.split("x"))
            if height != width:
                raise ValueError
            return BOTH, height
        return SHORTER, int(text)
    except ValueError:
        raise ZooError(f"--eval-resize takes N (the shorter side), NxN (both sides) or none (squash to the input), "
                       f"not {text!r}") from None


def overridden(base: EvalTransform | None, resize=None, crop: float | None = None,
               input_side: int | None = None) -> EvalTransform:
    """`base` (default: the squash) with a user's --eval-resize and --eval-crop: a resize size
    (meant for an input of `input_side`), or a crop fraction of the resized image (timm's crop_pct);
    the interpolation stays `base`'s."""
    base = base or SQUASH_BILINEAR
    parsed = parse_resize(resize)
    if parsed is None and crop is None:
        return base
    common = {"interpolation": base.interpolation, "antialias": base.antialias}
    if parsed is not None and parsed[0] == SQUASH:
        if crop is not None:
            raise ZooError("--eval-resize none squashes the whole image: it does not go with --eval-crop")
        return EvalTransform(SQUASH, **common)
    mode = parsed[0] if parsed is not None else (base.resize_mode if base.resize_mode != SQUASH else SHORTER)
    if parsed is not None and crop is not None:
        raise ZooError("give --eval-resize (the resized size) or --eval-crop (the crop's share of it), not both")
    if crop is not None:
        if isinstance(crop, bool) or not isinstance(crop, (int, float)) or not 0 < crop <= 1:
            raise ZooError(f"--eval-crop is the crop's share of the resized image, in (0, 1], got {crop!r}")
        return EvalTransform(mode, crop_pct=float(crop), **common)
    side = input_side or base.crop_size
    if side is None:
        raise ZooError("--eval-resize N needs the model's input size to crop to")
    if parsed[1] < side:
        raise ZooError(f"--eval-resize {parsed[1]} is below the input size ({side}) the image is then cropped to")
    return EvalTransform(mode, resize_size=parsed[1], crop_size=side, **common)
