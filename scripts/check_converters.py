"""Checks every weight converter against the source library: run where PyTorch, torchvision and timm are.

    python scripts/check_converters.py                  # the full table at the weights' input sizes
    python scripts/check_converters.py --fixtures       # also rewrite tests/fixtures/converters/
    python scripts/check_converters.py --only resnet18  # a subset, by model name

For each model and variant the source net (torchvision's or timm's module, or BVLC's Caffe net
written with torch functional ops: grouped conv2d, max_pool2d(ceil_mode=True), local_response_norm)
gets seeded random weights with non-trivial BatchNorm statistics (`tests/source_weights.py`), is
saved the way its library saves it (torch.save, safetensors, or a .caffemodel through protobuf),
and loaded with `zoo.create(NAME, weights=FILE)`. Both see the same pixels, each through the
preprocessing of the weights; the table gives the largest difference of their probabilities and
whether every image's top-1 class agrees.

With --fixtures it also writes small cases (seed, key names and shapes, pixels, the source's
probabilities) at small input sizes for the offline tests, and tiny PyTorch checkpoints for the
reader's tests. It never touches the network.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

# PyTorch's libraries before TensorFlow's: torchvision loaded after TensorFlow crashes the process
import safetensors.torch
import timm
import torch
import torch.nn.functional as F
import torchvision

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import zoo  # noqa: E402
from source_weights import (  # noqa: E402
    CONVERTER_FIXTURES, FIXTURES, caffe_layers_from, random_arrays, save_fixture, write_caffemodel,
)
from zoo.layers import preprocessing_layer  # noqa: E402
from zoo.weights.converters import converter_for, source_options  # noqa: E402
from zoo.weights.sources import read_source_weights  # noqa: E402

TOLERANCE = 1e-4
SEED = 13
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
CAFFE_ALEXNET_MEAN_BGR = np.array([104.007, 116.669, 122.679], np.float32)
CAFFE_GOOGLENET_MEAN_BGR = np.array([104.0, 117.0, 123.0], np.float32)
INCEPTIONS = ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")


# -- inputs ----------------------------------------------------------------------------------------
def torch_normalized(pixels: np.ndarray) -> torch.Tensor:
    """torchvision's transform: [0, 1], minus the ImageNet mean, over its std, NCHW."""
    return torch.from_numpy(((pixels / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).astype(np.float32)).permute(0, 3, 1, 2)


def caffe_input(pixels: np.ndarray, mean_bgr: np.ndarray) -> torch.Tensor:
    """Caffe's: BGR pixels in [0, 255] minus the channel means, NCHW."""
    return torch.from_numpy((pixels[..., ::-1].astype(np.float32) - mean_bgr)).permute(0, 3, 1, 2).contiguous()


def random_pixels(size: int, count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


# -- the source nets ------------------------------------------------------------------------------------
def caffe_lrn(x):
    return F.local_response_norm(x, size=5, alpha=1e-4, beta=0.75, k=1.0)


def caffe_pool(x, size=3, stride=2):
    return F.max_pool2d(x, size, stride, ceil_mode=True)


def caffe_alexnet_shapes(num_classes: int, flattened: int) -> dict[str, list[int]]:
    return {"conv1.weight": [96, 3, 11, 11], "conv1.bias": [96], "conv2.weight": [256, 48, 5, 5], "conv2.bias": [256],
            "conv3.weight": [384, 256, 3, 3], "conv3.bias": [384], "conv4.weight": [384, 192, 3, 3], "conv4.bias": [384],
            "conv5.weight": [256, 192, 3, 3], "conv5.bias": [256], "fc6.weight": [4096, flattened], "fc6.bias": [4096],
            "fc7.weight": [4096, 4096], "fc7.bias": [4096], "fc8.weight": [num_classes, 4096], "fc8.bias": [num_classes]}


def caffe_alexnet_order(caffenet: bool) -> list[tuple[str, str]]:
    order = [("data", "Data")]
    for index in (1, 2):
        normalize_and_pool = [(f"pool{index}", "Pooling"), (f"norm{index}", "LRN")]
        order += [(f"conv{index}", "Convolution"), (f"relu{index}", "ReLU")]
        order += normalize_and_pool if caffenet else normalize_and_pool[::-1]
    order += [("conv3", "Convolution"), ("relu3", "ReLU"), ("conv4", "Convolution"), ("relu4", "ReLU"),
              ("conv5", "Convolution"), ("relu5", "ReLU"), ("pool5", "Pooling"),
              ("fc6", "InnerProduct"), ("relu6", "ReLU"), ("drop6", "Dropout"),
              ("fc7", "InnerProduct"), ("relu7", "ReLU"), ("drop7", "Dropout"), ("fc8", "InnerProduct"),
              ("prob", "Softmax")]
    return order


def caffe_alexnet(arrays, x, caffenet: bool):
    """BVLC's bvlc_alexnet / bvlc_reference_caffenet deploy net in torch functional ops."""
    w = {key: torch.from_numpy(value) for key, value in arrays.items()}
    for index, (stride, padding, groups) in enumerate([(4, 0, 1), (1, 2, 2)], start=1):
        x = F.relu(F.conv2d(x, w[f"conv{index}.weight"], w[f"conv{index}.bias"], stride, padding, groups=groups))
        x = caffe_lrn(caffe_pool(x)) if caffenet else caffe_pool(caffe_lrn(x))
    x = F.relu(F.conv2d(x, w["conv3.weight"], w["conv3.bias"], 1, 1))
    x = F.relu(F.conv2d(x, w["conv4.weight"], w["conv4.bias"], 1, 1, groups=2))
    x = caffe_pool(F.relu(F.conv2d(x, w["conv5.weight"], w["conv5.bias"], 1, 1, groups=2)))
    x = torch.flatten(x, 1)
    x = F.relu(F.linear(x, w["fc6.weight"], w["fc6.bias"]))
    x = F.relu(F.linear(x, w["fc7.weight"], w["fc7.bias"]))
    return F.linear(x, w["fc8.weight"], w["fc8.bias"])


GOOGLENET_FILTERS = {stage: filters for stage, filters in zip(INCEPTIONS, [
    (64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64), (192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64),
    (128, 128, 256, 24, 64, 64), (112, 144, 288, 32, 64, 64), (256, 160, 320, 32, 128, 128),
    (256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128)])}


def caffe_googlenet_shapes(num_classes: int) -> tuple[dict[str, list[int]], list[tuple[str, str]]]:
    """Blob shapes and layer order of bvlc_googlenet's train_val net (auxiliary heads included)."""
    shapes, order = {}, [("data", "Data")]

    def conv(name, out, inputs, kernel):
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = [out, inputs, kernel, kernel], [out]
        order.extend([(name, "Convolution"), (f"{name}_relu", "ReLU")])

    def fc(name, out, inputs):
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = [out, inputs], [out]
        order.append((name, "InnerProduct"))

    conv("conv1/7x7_s2", 64, 3, 7)
    order += [("pool1/3x3_s2", "Pooling"), ("pool1/norm1", "LRN")]
    conv("conv2/3x3_reduce", 64, 64, 1)
    conv("conv2/3x3", 192, 64, 3)
    order += [("conv2/norm2", "LRN"), ("pool2/3x3_s2", "Pooling")]
    channels = 192
    for stage in INCEPTIONS:
        ones, reduce3, threes, reduce5, fives, pool_proj = GOOGLENET_FILTERS[stage]
        prefix = f"inception_{stage}"
        conv(f"{prefix}/1x1", ones, channels, 1)
        conv(f"{prefix}/3x3_reduce", reduce3, channels, 1)
        conv(f"{prefix}/3x3", threes, reduce3, 3)
        conv(f"{prefix}/5x5_reduce", reduce5, channels, 1)
        conv(f"{prefix}/5x5", fives, reduce5, 5)
        order.append((f"{prefix}/pool", "Pooling"))
        conv(f"{prefix}/pool_proj", pool_proj, channels, 1)
        order.append((f"{prefix}/output", "Concat"))
        channels = ones + threes + fives + pool_proj
        if stage in ("4a", "4d"):
            head = "loss1" if stage == "4a" else "loss2"
            order.append((f"{head}/ave_pool", "Pooling"))
            conv(f"{head}/conv", 128, channels, 1)
            fc(f"{head}/fc", 1024, 2048)
            fc(f"{head}/classifier", num_classes, 1024)
        if stage in ("3b", "4e"):
            order.append((f"pool{stage[0]}/3x3_s2", "Pooling"))
    order.append(("pool5/7x7_s1", "Pooling"))
    fc("loss3/classifier", num_classes, 1024)
    return shapes, order


def caffe_googlenet(arrays, x):
    """bvlc_googlenet's main path in torch functional ops (the auxiliary heads only train)."""
    w = {key: torch.from_numpy(value) for key, value in arrays.items()}

    def conv(x, name, padding=0, stride=1):
        return F.relu(F.conv2d(x, w[f"{name}.weight"], w[f"{name}.bias"], stride, padding))

    x = caffe_lrn(caffe_pool(conv(x, "conv1/7x7_s2", 3, 2)))
    x = caffe_pool(caffe_lrn(conv(conv(x, "conv2/3x3_reduce"), "conv2/3x3", 1)))
    for stage in INCEPTIONS:
        prefix = f"inception_{stage}"
        x = torch.cat([conv(x, f"{prefix}/1x1"), conv(conv(x, f"{prefix}/3x3_reduce"), f"{prefix}/3x3", 1),
                       conv(conv(x, f"{prefix}/5x5_reduce"), f"{prefix}/5x5", 2),
                       conv(F.max_pool2d(x, 3, 1, 1, ceil_mode=True), f"{prefix}/pool_proj")], 1)
        if stage in ("3b", "4e"):
            x = caffe_pool(x)
    x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
    return F.linear(x, w["loss3/classifier.weight"], w["loss3/classifier.bias"])


# -- one check --------------------------------------------------------------------------------------------
def keras_probabilities(name, path, pixels, options=None):
    """zoo.create(name, weights=path) on the pixels, through the preprocessing of the weights."""
    spec = zoo.info(name)
    source = read_source_weights(str(path))
    needed = {**spec.options, **source_options(spec, source, options or {})}
    preprocessing = converter_for(spec).preprocessing(needed)
    model = zoo.create(name, weights=str(path), input_shape=pixels.shape[1:], **(options or {}))
    inputs = preprocessing_layer(preprocessing)(pixels.astype(np.float32))
    return np.asarray(model(inputs, training=False)), preprocessing


def compare(label, name, path, pixels, source_logits, options=None):
    source_probabilities = torch.softmax(source_logits, dim=-1).detach().numpy()
    probabilities, preprocessing = keras_probabilities(name, path, pixels, options)
    difference = float(np.max(np.abs(probabilities - source_probabilities)))
    same_top1 = bool(np.all(probabilities.argmax(-1) == source_probabilities.argmax(-1)))
    return {"label": label, "difference": difference, "top1": same_top1, "preprocessing": preprocessing.name,
            "source_probabilities": source_probabilities, "max_probability": float(source_probabilities.max())}


def source_logits(case, size, num_classes, pixels, folder: Path, seed: int, output_scale: float):
    """Builds the source net of `case` with seeded random weights, saves it as its library does and
    runs it on the pixels: (logits, file, key shapes, Caffe layer order)."""
    kind, caffe_order, control = case["kind"], None, None
    if kind in ("torchvision", "timm"):
        module = case["build"](num_classes, size).eval()
        shapes = {key: list(value.shape) for key, value in module.state_dict().items()}
        arrays = random_arrays(shapes, seed, output_scale=output_scale)
        module.load_state_dict({key: torch.from_numpy(np.asarray(array)) for key, array in arrays.items()})
        path = folder / f"{case['label'].replace(' ', '_')}.{'pth' if kind == 'torchvision' else 'safetensors'}"
        if kind == "torchvision":
            torch.save(module.state_dict(), path)
        else:
            safetensors.torch.save_file({key: value.contiguous() for key, value in module.state_dict().items()}, str(path))
        logits = module(case.get("input", torch_normalized)(pixels))
    else:
        shapes, caffe_order = case["caffe_shapes"](num_classes, size)
        arrays = random_arrays(shapes, seed, output_scale=output_scale)
        path = write_caffemodel(folder / f"{case['label'].replace(' ', '_')}.caffemodel",
                                caffe_layers_from(arrays, caffe_order), v1=case.get("v1", False))
        logits = case["forward"](arrays, caffe_input(pixels, case["mean"]))
        if "control" in case:
            control = case["control"](arrays, caffe_input(pixels, case["mean"]))
    return logits, path, shapes, caffe_order, control


def check_case(case, size, num_classes, folder: Path, count=2, seed=SEED):
    """The source net of `case` against zoo.create on its saved file; returns (row, fixture fields).

    The classifier's weights are scaled down so that the logits spread by about 2 (random nets'
    logits can be large enough that every probability is 0 or 1, which would hide a wrong mapping)."""
    pixels = random_pixels(size, count, seed + 1)
    with torch.no_grad():
        logits, *_ = source_logits(case, size, num_classes, pixels, folder, seed, 1.0)
        output_scale = max(1.0, round(float(logits.std()) / 2.0, 1))
        logits, path, shapes, caffe_order, control = source_logits(case, size, num_classes, pixels, folder, seed,
                                                                   output_scale)
    row = compare(case["label"], case["model"], path, pixels, logits, case.get("options"))
    if control is not None:  # how far the other Caffe AlexNet is: what a wrong variant would cost
        row["control"] = float(np.max(np.abs(torch.softmax(control, -1).numpy() - row["source_probabilities"])))
    row.update(model=case["model"], size=size, format=case["kind"], file=path.name, output_scale=output_scale)
    keras.backend.clear_session()  # each case builds a large model: free the last one's graph
    return row, {"shapes": shapes, "pixels": pixels, "caffe_order": caffe_order}


# -- the cases ---------------------------------------------------------------------------------------------
def resnet_builder(depth, library):
    def build(num_classes, size):
        if library == "timm":
            return timm.create_model(f"resnet{depth}", pretrained=False, num_classes=num_classes)
        return getattr(torchvision.models, f"resnet{depth}")(weights=None, num_classes=num_classes)
    return build


def vgg_builder(name, library):
    """torchvision's (or timm's) VGG; below 224 its first fully connected layer is sized for the
    map the input gives (torchvision's adaptive pooling is the identity at 224, where the full check runs)."""
    def build(num_classes, size):
        side = size // 32
        if library == "timm":
            module = timm.create_model(name, pretrained=False, num_classes=num_classes)
            if side != 7:
                module.pre_logits = timm.models.vgg.ConvMlp(512, 4096, kernel_size=side, drop_rate=0.0)
            return module
        module = getattr(torchvision.models, name)(weights=None, num_classes=num_classes)
        if side != 7:
            module.avgpool = torch.nn.Identity()
            module.classifier[0] = torch.nn.Linear(512 * side * side, 4096)
        return module
    return build


def torchvision_alexnet(num_classes, size):
    module = torchvision.models.alexnet(weights=None, num_classes=num_classes)
    side = ((size + 4 - 11) // 4 + 1 - 3) // 2 + 1
    side = ((side - 3) // 2 + 1 - 3) // 2 + 1
    if side != 6:
        module.avgpool = torch.nn.Identity()
        module.classifier[1] = torch.nn.Linear(256 * side * side, 4096)
    return module


def torchvision_googlenet(num_classes, size):
    # the released weights come with transform_input (they expect [-1, 1] pixels) and untrained aux heads
    return torchvision.models.googlenet(weights=None, num_classes=num_classes, aux_logits=True, transform_input=True,
                                        init_weights=False)


def caffe_alexnet_side(size):
    side = (size - 11) // 4 + 1
    for _ in range(3):
        side = -(-(side - 3) // 2) + 1
    return side


CASES = [
    *[{"label": f"resnet{depth} torchvision", "model": f"resnet{depth}", "kind": "torchvision",
       "build": resnet_builder(depth, "torchvision")} for depth in (18, 34, 50, 101, 152)],
    *[{"label": f"resnet{depth} timm", "model": f"resnet{depth}", "kind": "timm",
       "build": resnet_builder(depth, "timm")} for depth in (18, 50)],
    *[{"label": f"{name} torchvision", "model": name, "kind": "torchvision", "build": vgg_builder(name, "torchvision")}
      for name in ("vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn")],
    *[{"label": f"{name} timm", "model": name, "kind": "timm", "build": vgg_builder(name, "timm")}
      for name in ("vgg11", "vgg11_bn")],
    {"label": "alexnet torchvision", "model": "alexnet", "kind": "torchvision", "build": torchvision_alexnet},
    {"label": "alexnet bvlc", "model": "alexnet", "kind": "caffe", "v1": True, "mean": CAFFE_ALEXNET_MEAN_BGR,
     "caffe_shapes": lambda classes, size: (caffe_alexnet_shapes(classes, 256 * caffe_alexnet_side(size) ** 2),
                                            caffe_alexnet_order(False)),
     "forward": lambda arrays, x: caffe_alexnet(arrays, x, caffenet=False),
     "control": lambda arrays, x: caffe_alexnet(arrays, x, caffenet=True)},
    {"label": "alexnet caffenet", "model": "alexnet", "kind": "caffe", "mean": CAFFE_ALEXNET_MEAN_BGR,
     "caffe_shapes": lambda classes, size: (caffe_alexnet_shapes(classes, 256 * caffe_alexnet_side(size) ** 2),
                                            caffe_alexnet_order(True)),
     "forward": lambda arrays, x: caffe_alexnet(arrays, x, caffenet=True),
     "control": lambda arrays, x: caffe_alexnet(arrays, x, caffenet=False)},
    {"label": "googlenet torchvision", "model": "googlenet", "kind": "torchvision", "build": torchvision_googlenet},
    {"label": "googlenet bvlc", "model": "googlenet", "kind": "caffe", "v1": True, "mean": CAFFE_GOOGLENET_MEAN_BGR,
     "caffe_shapes": lambda classes, size: caffe_googlenet_shapes(classes), "forward": caffe_googlenet},
]
FULL_SIZE = {"alexnet bvlc": 227, "alexnet caffenet": 227}
# the offline tests' cases: one per mapping (deeper models share their shallow sibling's), at small
# sizes chosen so that rounding-up pools differ from rounding down (alexnet 103, googlenet 72)
FIXTURE_CASES = {"resnet18 torchvision": 64, "resnet50 torchvision": 64, "vgg11 torchvision": 64,
                 "vgg11_bn torchvision": 64, "vgg11 timm": 64, "alexnet torchvision": 127, "alexnet bvlc": 103,
                 "alexnet caffenet": 103, "googlenet torchvision": 72, "googlenet bvlc": 72}
FIXTURE_CLASSES = 10


# -- tiny checkpoints for the reader's tests ----------------------------------------------------------------
def write_reader_fixtures(folder: Path) -> None:
    """Checkpoints that exercise the reader: strided and offset views, shared storages, several
    dtypes, a nested checkpoint, the legacy format; the expected arrays beside them."""
    folder.mkdir(parents=True, exist_ok=True)
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 7
    state = {
        "conv.weight": base.t(),  # a transposed (non-contiguous) view
        "conv.bias": base[1, 2:5],  # an offset view of the same storage
        "half": torch.linspace(-2, 2, 5).half(),
        "brain": torch.linspace(-1, 1, 4).to(torch.bfloat16),
        "count": torch.tensor(7, dtype=torch.int64),
        "flags": torch.tensor([True, False, True]),
    }
    expected = {key: (value.float() if value.dtype == torch.bfloat16 else value).numpy() for key, value in state.items()}
    np.savez(folder / "expected.npz", **expected)
    torch.save(state, folder / "state_dict.pth")
    torch.save({"epoch": 3, "state_dict": state}, folder / "checkpoint.pt")
    torch.save(state, folder / "legacy.pth", _use_new_zipfile_serialization=False)


def print_table(rows) -> None:
    print("\n| model | source | file | input | max abs difference of probabilities | top-1 equal | preprocessing |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['model']} | {row['label'].split(' ', 1)[1]} | {row['file'].rsplit('.', 1)[1]} | "
              f"{row['size']}x{row['size']} | {row['difference']:.2e} | {'yes' if row['top1'] else 'NO'} | "
              f"{row['preprocessing']} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fixtures", action="store_true", help="Also rewrite the offline tests' fixtures.")
    parser.add_argument("--only", nargs="*", help="Check only these models (e.g. resnet18 alexnet).")
    parser.add_argument("--skip-full", action="store_true", help="Only the fixtures' small cases.")
    args = parser.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    cases = [case for case in CASES if not args.only or case["model"] in args.only]
    rows, failed = [], False
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        if not args.skip_full:
            for case in cases:
                started = time.perf_counter()
                row, _ = check_case(case, FULL_SIZE.get(case["label"], 224), 1000, folder)
                rows.append(row)
                failed |= row["difference"] > TOLERANCE or not row["top1"]
                print(f"{row['label']:24s} {row['size']}px  max |dp| {row['difference']:.2e}  top-1 "
                      f"{'equal' if row['top1'] else 'DIFFERS'}  (largest probability {row['max_probability']:.3f}, "
                      f"{time.perf_counter() - started:.0f}s)"
                      + (f"; the other Caffe AlexNet differs by {row['control']:.2e}" if "control" in row else ""),
                      flush=True)
                for leftover in folder.iterdir():
                    leftover.unlink()
        if args.fixtures:
            CONVERTER_FIXTURES.mkdir(parents=True, exist_ok=True)
            for case in cases:
                if case["label"] not in FIXTURE_CASES:
                    continue
                row, fields = check_case(case, FIXTURE_CASES[case["label"]], FIXTURE_CLASSES, folder, count=1)
                failed |= row["difference"] > TOLERANCE or not row["top1"]
                print(f"fixture {row['label']:24s} {row['size']}px  max |dp| {row['difference']:.2e}  (largest "
                      f"probability {row['max_probability']:.3f})"
                      + (f"; the other Caffe AlexNet differs by {row['control']:.2e}" if "control" in row else ""),
                      flush=True)
                save_fixture(CONVERTER_FIXTURES / f"{case['label'].replace(' ', '_')}.npz", model=case["model"],
                             options=case.get("options") or {}, file_format=case["kind"], seed=SEED,
                             shapes=fields["shapes"], pixels=fields["pixels"],
                             probabilities=row["source_probabilities"], preprocessing=row["preprocessing"],
                             caffe_order=fields["caffe_order"], output_scale=row["output_scale"])
            write_reader_fixtures(FIXTURES / "pytorch")
    if rows:
        print_table(rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
