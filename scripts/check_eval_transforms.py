"""Checks the zoo's evaluation transforms against the sources' own on real photographs.

    python scripts/check_eval_transforms.py --torch-python /work/torch-venv/bin/python
    python scripts/check_eval_transforms.py --torch-python ... --fixtures   # also rewrite the test's fixtures

Run with the kit's interpreter (TensorFlow); the sources' side runs in `--torch-python` (or
$ZOO_TORCH_PYTHON), an interpreter with torch, torchvision, timm and scikit-image, as
`python scripts/check_eval_transforms.py --reference OUT.npz`. The photographs are scikit-image's
(astronaut 512x512, coffee 400x600 and the same turned upright, chelsea 300x451, rocket 427x640),
each read through one JPEG encoding so that both sides decode the same bytes with PIL.

For every weight tag, the source's transform:
- tv_in1k, tv2_in1k: torchvision's `weights.transforms()` of the tag's weights enum, fed PIL images
  as torchvision's reference evaluation does (and, in the table only, uint8 tensors);
- a1_in1k: timm's `resolve_data_config` + `create_transform(...)` of `MODEL.a1_in1k`'s pretrained cfg;
- bvlc, caffenet: Caffe's pipeline, the 256x256 resize of `convert_imageset` (OpenCV's bilinear
  cv::resize, without antialiasing: torch's `interpolate(mode="bilinear", antialias=False)` computes
  the same, OpenCV not being installed) and the data layer's centre crop, offsets (side - crop) / 2;
- imagenet: keras.utils.load_img(target_size=(224, 224), interpolation="bilinear"), i.e. PIL's
  bilinear resize of the whole image.
The table gives, per tag family, the largest and mean absolute difference of the outputs in the
[0, 1] range and the share of equal pixels; the targets are 2/255 for the resizes, and the crops
exact (a crop one pixel off shows as differences far above the target on these photos).

With --fixtures, tests/fixtures/eval_transforms/ gets the JPEGs, per photo and tag family the
source's output at 1500 seeded pixels, and every torchvision and timm tag's source parameters
(tags.json), which tests/test_eval_transform.py checks offline.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIXTURES = ROOT / "tests" / "fixtures" / "eval_transforms"
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
UPRIGHT = "coffee_upright"  # coffee turned a quarter: a portrait
SAMPLES = 1500
TARGET = 2 / 255
JPEG_QUALITY = 90
# a tag of each family whose source transform is computed; every other tag of the family must
# carry the same record (checked against the sources too: their transforms' parameters)
FAMILIES = {"tv_in1k": "resnet50", "tv2_in1k": "resnet50", "a1_in1k": "resnet50", "bvlc": "alexnet",
            "caffenet": "alexnet", "bvlc_googlenet": "googlenet", "imagenet": "resnet50"}


def family_tag(family: str) -> tuple[str, str]:
    return FAMILIES[family], "bvlc" if family == "bvlc_googlenet" else family


def photo_files() -> dict[str, bytes]:
    """The photos as JPEG bytes: the fixtures' when they exist, else encoded from scikit-image's."""
    if all((FIXTURES / f"{name}.jpg").is_file() for name in PHOTOS):
        return {name: (FIXTURES / f"{name}.jpg").read_bytes() for name in PHOTOS}
    import skimage.data
    from PIL import Image

    encoded = {}
    for name in PHOTOS:
        buffer = io.BytesIO()
        Image.fromarray(getattr(skimage.data, name)()).save(buffer, format="JPEG", quality=JPEG_QUALITY)
        encoded[name] = buffer.getvalue()
    return encoded


def decoded_photos(encoded: dict[str, bytes]) -> dict[str, np.ndarray]:
    """Each photo decoded by PIL as RGB uint8, and coffee turned upright besides."""
    from PIL import Image

    photos = {name: np.asarray(Image.open(io.BytesIO(data)).convert("RGB")) for name, data in encoded.items()}
    photos[UPRIGHT] = np.ascontiguousarray(np.rot90(photos["coffee"]))
    return photos


# -- the sources' side (torch interpreter) ---------------------------------------------------------
def torchvision_weights(model: str, tag: str):
    import torchvision.models as models

    enum = models.get_model_weights(model)
    return getattr(enum, "IMAGENET1K_V2" if tag == "tv2_in1k" else "IMAGENET1K_V1")


def timm_data_config(name: str) -> dict:
    """timm's `resolve_data_config` for a model's pretrained cfg (what it resolves for the model itself)."""
    import timm.data
    import timm.models

    return timm.data.resolve_data_config({}, pretrained_cfg=timm.models.get_pretrained_cfg(name).to_dict())


def caffe_reference(image: np.ndarray, resize: int, crop: int):
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    resized = F.interpolate(tensor, size=(resize, resize), mode="bilinear", align_corners=False, antialias=False)
    # OpenCV writes uint8, rounding its fixed-point sums half up ((sum + half) >> bits)
    resized = torch.floor(resized + 0.5).clamp(0, 255)[0].permute(1, 2, 0).numpy()
    offset = (resize - crop) // 2
    return resized[offset:offset + crop, offset:offset + crop] / 255.0


def source_outputs(family: str, model: str, photos: dict) -> tuple[dict, dict, dict]:
    """(outputs per photo in [0, 1], HWC; the tensor path's where there is one; the source's
    parameters of the transform, for the record)."""
    import timm.data
    import torch
    from PIL import Image

    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])

    def unnormalized(tensor):
        return tensor.permute(1, 2, 0).numpy() * std + mean

    outputs, tensor_outputs = {}, {}
    if family in ("tv_in1k", "tv2_in1k"):
        transform = torchvision_weights(model, family).transforms()
        parameters = {"resize_size": transform.resize_size, "crop_size": transform.crop_size,
                      "interpolation": str(transform.interpolation), "antialias": transform.antialias}
        for name, image in photos.items():
            outputs[name] = unnormalized(transform(Image.fromarray(image)))
            tensor_outputs[name] = unnormalized(transform(torch.from_numpy(image).permute(2, 0, 1)))
    elif family == "a1_in1k":
        config = timm_data_config(f"{model}.a1_in1k")
        transform = timm.data.create_transform(**config)
        parameters = {key: config[key] for key in ("input_size", "interpolation", "crop_pct", "crop_mode")}
        for name, image in photos.items():
            outputs[name] = unnormalized(transform(Image.fromarray(image)))
    elif family in ("bvlc", "caffenet", "bvlc_googlenet"):
        crop = 224 if family == "bvlc_googlenet" else 227
        parameters = {"resize": [256, 256], "crop_size": crop, "interpolation": "OpenCV INTER_LINEAR"}
        for name, image in photos.items():
            outputs[name] = caffe_reference(image, 256, crop)
    else:  # keras.utils.load_img(path, target_size=(224, 224), interpolation="bilinear")
        parameters = {"target_size": [224, 224], "interpolation": "bilinear (PIL)"}
        for name, image in photos.items():
            outputs[name] = np.asarray(Image.fromarray(image).resize((224, 224), Image.BILINEAR)) / 255.0
    return outputs, tensor_outputs, parameters


def torchvision_parameters_of_every_tag() -> dict:
    """Each torchvision and timm tag of the catalogue with the source's transform parameters."""
    import zoo  # the registry only: data, no TensorFlow

    found = {}
    for name in zoo.list_models():
        for tag, weights in zoo.info(name).weights.items():
            if weights.source == "torchvision":
                transform = torchvision_weights(name, tag).transforms()
                found[f"{name}.{tag}"] = {"resize_size": transform.resize_size[0], "crop_size": transform.crop_size[0],
                                          "interpolation": transform.interpolation.value,
                                          "antialias": bool(transform.antialias)}
            elif weights.source == "timm":
                config = timm_data_config(f"{name}.{tag}")
                found[f"{name}.{tag}"] = {"crop_pct": config["crop_pct"], "crop_size": config["input_size"][-1],
                                          "interpolation": config["interpolation"], "antialias": True}
    return found


def write_references(out: str) -> None:
    encoded = photo_files()
    photos = decoded_photos(encoded)
    arrays, record = {}, {"parameters": {}, "tags": torchvision_parameters_of_every_tag()}
    for name, data in encoded.items():
        arrays[f"jpeg/{name}"] = np.frombuffer(data, np.uint8)
    for family in FAMILIES:
        model, _ = family_tag(family)
        outputs, tensor_outputs, parameters = source_outputs(family, model, photos)
        record["parameters"][family] = json.loads(json.dumps(parameters, default=str))
        for name, output in outputs.items():
            arrays[f"{family}/{name}"] = output.astype(np.float32)
        for name, output in tensor_outputs.items():
            arrays[f"{family}/tensor/{name}"] = output.astype(np.float32)
    arrays["record"] = np.frombuffer(json.dumps(record).encode(), np.uint8)
    np.savez_compressed(out, **arrays)


# -- the zoo's side (TensorFlow) -------------------------------------------------------------------
def zoo_transform(family: str):
    import zoo

    model, tag = family_tag(family)
    return zoo.info(model).weights[tag]


def check_tag_records(record: dict) -> list[str]:
    """Every torchvision and timm tag's record against its source's parameters: the mismatches."""
    import zoo

    wrong = []
    for full_name, source in record["tags"].items():
        name, tag = full_name.split(".", 1)
        weights = zoo.info(name).weights[tag]
        mine = weights.evaluation
        expected_pct = source.get("crop_pct")
        same = (mine.interpolation == source["interpolation"] and mine.antialias == source["antialias"]
                and weights.input_shape[0] == source["crop_size"] and mine.resize_mode == "shorter"
                and (mine.crop_pct == expected_pct if expected_pct else
                     (mine.resize_size, mine.crop_size) == (source["resize_size"], source["crop_size"])))
        if not same:
            wrong.append(f"{full_name}: the zoo has {mine}, the source {source}")
    return wrong


def compare(references) -> list[dict]:
    import tensorflow as tf  # noqa: F401  (the zoo's transform computes in it)
    from zoo.layers import eval_transform

    photos = decoded_photos({name: references[f"jpeg/{name}"].tobytes() for name in PHOTOS})
    rows = []
    for family in FAMILIES:
        weights = zoo_transform(family)
        size = weights.input_shape[:2]
        for path in ("", "tensor/"):
            keys = [f"{family}/{path}{name}" for name in photos if f"{family}/{path}{name}" in references]
            if not keys:
                continue
            worst, total, equal, count = 0.0, 0.0, 0, 0
            for key in keys:
                name = key.rsplit("/", 1)[1]
                mine = eval_transform.apply(photos[name], weights.evaluation, size).numpy() / 255.0
                theirs = references[key]
                if mine.shape != theirs.shape:
                    raise SystemExit(f"{family} {name}: the zoo gives {mine.shape}, the source {theirs.shape}")
                difference = np.abs(mine - theirs)
                worst, total = max(worst, float(difference.max())), total + float(difference.sum())
                equal += int(np.sum(difference < 0.5 / 255))
                count += difference.size
            rows.append({"family": family + (" (tensor input)" if path else ""), "tag": ".".join(family_tag(family)),
                         "zoo": weights.evaluation.short(*size), "photos": len(keys), "max": worst,
                         "mean": total / count, "equal": equal / count})
    return rows


def write_fixtures(references, record: dict) -> None:
    """The JPEGs, the sources' outputs at SAMPLES seeded pixels per photo and family (PIL path), and
    the sources' transform parameters of every torchvision and timm tag."""
    FIXTURES.mkdir(parents=True, exist_ok=True)
    (FIXTURES / "tags.json").write_text(json.dumps(record["tags"], indent=1, sort_keys=True) + "\n")
    samples = {}
    for name in PHOTOS:
        (FIXTURES / f"{name}.jpg").write_bytes(references[f"jpeg/{name}"].tobytes())
    for family in FAMILIES:
        for name in (*PHOTOS, UPRIGHT):
            output = references[f"{family}/{name}"]
            rows, columns = sample_positions(output.shape)
            samples[f"{family}/{name}/values"] = np.round(output[rows, columns] * 255).astype(np.uint8)
            samples[f"{family}/{name}/shape"] = np.array(output.shape, np.int16)
    np.savez_compressed(FIXTURES / "sources.npz", **samples)


def sample_positions(shape) -> tuple[np.ndarray, np.ndarray]:
    """The SAMPLES seeded pixels of an output the fixtures keep (tests/test_eval_transform.py draws the same)."""
    rng = np.random.default_rng(0)
    return rng.integers(0, shape[0], SAMPLES), rng.integers(0, shape[1], SAMPLES)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", help="(the torch side) write the sources' outputs to this .npz")
    parser.add_argument("--torch-python", default=os.environ.get("ZOO_TORCH_PYTHON", "python"),
                        help="an interpreter with torch, torchvision, timm and scikit-image")
    parser.add_argument("--fixtures", action="store_true", help="rewrite tests/fixtures/eval_transforms/")
    args = parser.parse_args(argv)
    if args.reference:
        write_references(args.reference)
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "references.npz"
        subprocess.run([args.torch_python, __file__, "--reference", str(out)], check=True)
        references = dict(np.load(out))
    record = json.loads(references["record"].tobytes())
    wrong = check_tag_records(record)
    rows = compare(references)
    print(f"| tag family | checked tag | the zoo's transform | photos | largest difference | mean | equal pixels |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['family']} | {row['tag']} | {row['zoo']} | {row['photos']} | {row['max'] * 255:.2f}/255 "
              f"| {row['mean'] * 255:.3f}/255 | {row['equal']:.1%} |")
    print(f"\nsources' parameters: {json.dumps(record['parameters'])}")
    print(f"every torchvision and timm tag's record against its source: {len(record['tags'])} tags, "
          f"{len(wrong)} wrong" + "".join(f"\n  {line}" for line in wrong))
    failed = [row for row in rows if "tensor" not in row["family"] and row["max"] > TARGET + 1e-6]
    if args.fixtures and not failed and not wrong:
        write_fixtures(references, record)
        print(f"wrote {FIXTURES}")
    return 1 if failed or wrong else 0


if __name__ == "__main__":
    sys.exit(main())
