"""The released ImageNet-1k weights of other libraries, as weight tags of the zoo's models: where
each file is, its hash, the family options the weights need, their preprocessing, input size and
published accuracy.

- torchvision: the files its model builders download (the hex after the dash in each name is the
  start of the file's SHA-256); accuracy as its weight metadata gives it (`IMAGENET1K_V1`, `_V2`).
- timm: `model.safetensors` of each model on the Hugging Face Hub; accuracy at 224x224 from timm's
  results table (results-imagenet.csv). The Hub's URL carries no hash; the SHA-256 it publishes
  for each file (its Git LFS pointer) is pinned in TIMM_SHA256 where known, and checked then.
- BVLC Caffe: the models of Caffe's model zoo, with the SHA-1 and accuracy of their readmes.

Every file is ImageNet-1k's 1000 classes in the usual (sorted WordNet id) order. Each tag records
how its source evaluates it (`zoo.eval_transform`) and, where the source's network takes smaller
inputs than the model's default variant, its minimum input side (torchvision's weight metadata,
`min_size`). The tags are data only; `zoo.weights.pretrained` downloads, converts and caches them.
"""

from __future__ import annotations

from zoo.eval_transform import BVLC_ALEXNET, BVLC_GOOGLENET, TIMM_RSB, TORCHVISION_V1, TORCHVISION_V2, EvalTransform
from zoo.preprocessing import CAFFE_BVLC_ALEXNET, CAFFE_BVLC_GOOGLENET, TF_SYMMETRIC, TORCH, Preprocessing
from zoo.registry import PretrainedWeights

TORCHVISION_URL = "https://download.pytorch.org/models"
HUB_URL = "https://huggingface.co/timm/{name}/resolve/main/model.safetensors"
CAFFE_URL = "http://dl.caffe.berkeleyvision.org"
RESNET = {"variant": "torchvision"}
VGG_BN = {"batch_norm_epsilon": 1e-5}

# model: (tag, file, top-1, top-5)
TORCHVISION_FILES = {
    "alexnet": [("tv_in1k", "alexnet-owt-7be5be79.pth", 56.522, 79.066)],
    "googlenet": [("tv_in1k", "googlenet-1378be20.pth", 69.778, 89.530)],
    "vgg11": [("tv_in1k", "vgg11-8a719046.pth", 69.020, 88.628)],
    "vgg13": [("tv_in1k", "vgg13-19584684.pth", 69.928, 89.246)],
    "vgg16": [("tv_in1k", "vgg16-397923af.pth", 71.592, 90.382)],
    "vgg19": [("tv_in1k", "vgg19-dcbb9e9d.pth", 72.376, 90.876)],
    "vgg11_bn": [("tv_in1k", "vgg11_bn-6002323d.pth", 70.370, 89.810)],
    "vgg13_bn": [("tv_in1k", "vgg13_bn-abd245e5.pth", 71.586, 90.374)],
    "vgg16_bn": [("tv_in1k", "vgg16_bn-6c64b313.pth", 73.360, 91.516)],
    "vgg19_bn": [("tv_in1k", "vgg19_bn-c79401a0.pth", 74.218, 91.842)],
    "resnet18": [("tv_in1k", "resnet18-f37072fd.pth", 69.758, 89.078)],
    "resnet34": [("tv_in1k", "resnet34-b627a593.pth", 73.314, 91.420)],
    "resnet50": [("tv_in1k", "resnet50-0676ba61.pth", 76.130, 92.862),
                 ("tv2_in1k", "resnet50-11ad3fa6.pth", 80.858, 95.434)],
    "resnet101": [("tv_in1k", "resnet101-63fe2227.pth", 77.374, 93.546),
                  ("tv2_in1k", "resnet101-cd907fc2.pth", 81.886, 95.780)],
    "resnet152": [("tv_in1k", "resnet152-394f9c45.pth", 78.312, 94.046),
                  ("tv2_in1k", "resnet152-f82ba261.pth", 82.284, 96.002)],
}
# torchvision's `weights.transforms()` per tag: IMAGENET1K_V1 resizes to 256, V2 (the tv2 tags) to 232
TORCHVISION_TRANSFORMS = {"tv_in1k": TORCHVISION_V1, "tv2_in1k": TORCHVISION_V2}
# the `min_size` of torchvision's weight metadata per family (resnet: (1, 1); vgg: (32, 32); ...)
TORCHVISION_MIN_SIZES = {"alexnet": 63, "googlenet": 15, "vgg": 32, "resnet": 1}
# timm's a1_in1k cfgs (`_rcfg`) evaluate at 224 with crop_pct 0.95, bicubic (their test size, 288 at
# crop_pct 1.0, is where timm's headline numbers are); the tags keep 224, where the accuracy below is
# model: (top-1, top-5) of timm's `MODEL.a1_in1k` at 224x224 (trained with the "ResNet strikes back" A1 recipe)
TIMM_A1 = {
    "resnet18": (71.504, 90.086), "resnet34": (76.420, 92.896), "resnet50": (80.382, 94.598),
    "resnet101": (81.494, 95.164), "resnet152": (81.998, 95.294),
}
# model: SHA-256 of timm/<model>.a1_in1k's model.safetensors as the Hub publishes it (the "oid
# sha256:" of its Git LFS pointer). None known yet: such a file is used unchecked until its value
# is added here (see `zoo.weights.download.file_hash_matches` for how it is checked).
TIMM_SHA256: dict[str, str] = {}
# model: (tag, file, SHA-1, options, preprocessing, evaluation, top-1, top-5)
CAFFE_FILES = {
    "alexnet": [
        ("bvlc", "bvlc_alexnet.caffemodel", "9116a64c0fbe4459d18f4bb6b56d647b63920377",
         {"variant": "bvlc", "towers": 2}, CAFFE_BVLC_ALEXNET, BVLC_ALEXNET, 57.1, 80.2),
        ("caffenet", "bvlc_reference_caffenet.caffemodel", "4c8d77deb20ea792f84eb5e6d0a11ca0a8660a46",
         {"variant": "caffenet", "towers": 2}, CAFFE_BVLC_ALEXNET, BVLC_ALEXNET, 57.4, 80.4),
    ],
    "googlenet": [
        ("bvlc", "bvlc_googlenet.caffemodel", "405fc5acd08a3bb12de8ee5e23a96bec22f08204",
         {"variant": "bvlc"}, CAFFE_BVLC_GOOGLENET, BVLC_GOOGLENET, 68.7, 88.9),
    ],
}


def _torchvision_options(model_name: str) -> tuple[dict, Preprocessing]:
    if model_name == "alexnet":
        return {"variant": "torchvision", "towers": 1}, TORCH
    if model_name == "googlenet":
        # torchvision's GoogLeNet was trained in TensorFlow on [-1, 1] pixels: its `transform_input`
        # maps mean/std-normalized input back to that, so [-1, 1] is the convention of its weights
        return {"variant": "torchvision"}, TF_SYMMETRIC
    if model_name.startswith("resnet"):
        return dict(RESNET), TORCH
    return (dict(VGG_BN) if model_name.endswith("_bn") else {}), TORCH


def _family(model_name: str) -> str:
    return next(family for family in TORCHVISION_MIN_SIZES if model_name.startswith(family))


def _entry(model_name, tag, source, file_format, url, file_hash, options, preprocessing, side, top1, top5,
           evaluation: EvalTransform, min_input_size=None, file_name=None) -> PretrainedWeights:
    return PretrainedWeights(
        tag=tag, description=f"ImageNet-1k weights of {source} (top-1 {top1}%, top-5 {top5}%)",
        preprocessing=preprocessing, input_shape=(side, side, 3), num_classes=1000, top_url=url, top_hash=file_hash,
        class_names="imagenet", source=source, file_format=file_format, options=options, top1=top1, top5=top5,
        file_name=file_name, evaluation=evaluation, min_input_size=min_input_size,
    )


def released_weights(model_name: str) -> dict[str, PretrainedWeights]:
    """A spec's `weights` entries for torchvision's, timm's and BVLC's files of `model_name`."""
    weights = {}
    for tag, file_name, top1, top5 in TORCHVISION_FILES.get(model_name, []):
        options, preprocessing = _torchvision_options(model_name)
        file_hash = file_name.rsplit("-", 1)[1].split(".")[0]
        weights[tag] = _entry(model_name, tag, "torchvision", "pytorch", f"{TORCHVISION_URL}/{file_name}", file_hash,
                              options, preprocessing, 224, top1, top5, TORCHVISION_TRANSFORMS[tag],
                              TORCHVISION_MIN_SIZES[_family(model_name)])
    if model_name in TIMM_A1:
        top1, top5 = TIMM_A1[model_name]
        hub_name = f"{model_name}.a1_in1k"
        sha256 = TIMM_SHA256.get(model_name)
        # timm's ResNet is torchvision's network, which takes inputs down to 1x1 (its `min_size`)
        weights["a1_in1k"] = _entry(model_name, "a1_in1k", "timm", "safetensors", HUB_URL.format(name=hub_name),
                                    f"sha256:{sha256}" if sha256 else None, dict(RESNET), TORCH, 224, top1, top5,
                                    TIMM_RSB, TORCHVISION_MIN_SIZES["resnet"], file_name=f"timm-{hub_name}.safetensors")
    for tag, file_name, sha1, options, preprocessing, evaluation, top1, top5 in CAFFE_FILES.get(model_name, []):
        weights[tag] = _entry(model_name, tag, "BVLC Caffe", "caffe", f"{CAFFE_URL}/{file_name}", f"sha1:{sha1}",
                              options, preprocessing, evaluation.crop_size, top1, top5, evaluation)
    return weights
