"""Other libraries' weights: the readers, every family's converter, the catalogue's tags offline,
imported .keras files that keep their weights' convention, and fine-tuning from converted weights.

No PyTorch here: the fixtures under tests/fixtures/ come from scripts/check_converters.py, which
ran torchvision's, timm's and BVLC's nets (the last in torch functional ops) on seeded random
weights. Each converter case regenerates those weights with numpy from the seed and the key names
and shapes, writes them as safetensors (or a .caffemodel, through protobuf itself) and compares the
zoo's probabilities with the source net's.
"""

import dataclasses
import hashlib
import json
import os
import pickle
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import safetensors.numpy  # noqa: E402
from PIL import Image  # noqa: E402

import zoo  # noqa: E402
from finetune.cli import main  # noqa: E402
from finetune.serving.loading import load_model  # noqa: E402
from source_weights import (  # noqa: E402
    CONVERTER_FIXTURES, FIXTURES, caffe_layers_from, load_fixture, random_arrays, write_caffemodel,
)
from zoo.layers import CeilModeMaxPooling2D, preprocessing_layer  # noqa: E402
from zoo.preprocessing import CAFFE_BVLC_ALEXNET, TF_SYMMETRIC, TORCH  # noqa: E402
from zoo.weights.caffe import read_caffe_layers  # noqa: E402
from zoo.weights.files import read_keras_metadata  # noqa: E402
from zoo.weights.pretrained import converted_path, weights_preprocessing  # noqa: E402
from zoo.weights.pytorch import read_pytorch_checkpoint  # noqa: E402
from zoo.weights.sources import CAFFE, PYTORCH, SAFETENSORS, kind_of, read_source_weights  # noqa: E402

CASES = sorted(path.stem for path in CONVERTER_FIXTURES.glob("*.npz"))
TOLERANCE = 1e-4


def source_file(case: str, folder: Path, name: str | None = None) -> tuple[dict, np.ndarray, np.ndarray, Path]:
    """A fixture's source weights regenerated and written: safetensors for PyTorch nets (the mapping
    is the same whatever the container), a V1-format .caffemodel for Caffe nets."""
    metadata, pixels, probabilities = load_fixture(CONVERTER_FIXTURES / f"{case}.npz")
    arrays = random_arrays(metadata["shapes"], metadata["seed"], metadata["output_scale"])
    if metadata["format"] == "caffe":
        order = [tuple(each) for each in metadata["caffe_order"]]
        path = write_caffemodel(folder / (name or f"{case}.caffemodel"), caffe_layers_from(arrays, order), v1=True)
    else:
        path = folder / (name or f"{case}.safetensors")
        safetensors.numpy.save_file({key: np.ascontiguousarray(value) for key, value in arrays.items()}, str(path))
    return metadata, pixels, probabilities, path


def probabilities_of(model, pixels, preprocessing):
    return np.asarray(model(preprocessing_layer(preprocessing)(pixels.astype("float32")), training=False))


@pytest.mark.parametrize("case", CASES)
def test_converted_weights_give_the_source_probabilities(case, tmp_path):
    """Every mapping against its source net. The deeper models use their shallow sibling's mapping
    code unchanged (resnet34: resnet18's basic blocks; resnet101/152: resnet50's bottlenecks;
    vgg13/16/19 and their _bn: vgg11's and vgg11_bn's walk over the blocks), so one case covers
    each; scripts/check_converters.py checks every model at full size."""
    metadata, pixels, expected, path = source_file(case, tmp_path)
    spec = zoo.info(metadata["model"])
    model = zoo.create(metadata["model"], weights=str(path), input_shape=pixels.shape[1:])
    preprocessing = weights_preprocessing(spec, str(path))
    assert preprocessing.name == metadata["preprocessing"]
    probabilities = probabilities_of(model, pixels, preprocessing)
    assert np.max(np.abs(probabilities - expected)) <= TOLERANCE
    assert np.array_equal(probabilities.argmax(-1), expected.argmax(-1))


def test_ceil_mode_pooling_rounds_up_ignores_the_overhang_and_reloads(tmp_path):
    """Caffe's and PyTorch's ceil mode: 7 -> 3 windows of 3x3/2 (floor: 3), 8 -> 4 (floor: 3); the
    last window hangs over the edge and the part outside does not count (all inputs negative here)."""
    inputs = keras.Input((None, None, 1))
    model = keras.Model(inputs, CeilModeMaxPooling2D(3, strides=2, name="pool")(inputs))
    image = -np.arange(1, 65, dtype="float32").reshape(1, 8, 8, 1)
    pooled = np.asarray(model(image))
    assert pooled.shape == (1, 4, 4, 1) and model(image[:, :7, :7]).shape == (1, 3, 3, 1)
    assert pooled[0, 3, 3, 0] == image[0, 6, 6, 0]  # max of the 2x2 inside the edge, not a padded zero
    model.save(tmp_path / "pool.keras")
    reloaded = keras.saving.load_model(tmp_path / "pool.keras", safe_mode=True)
    np.testing.assert_array_equal(reloaded(image), pooled)


def test_pytorch_checkpoints_read_as_torch_wrote_them():
    """Zip and legacy formats, a bare state dict and one under "state_dict"; transposed and offset
    views of one storage, float16, bfloat16 (widened to float32), int64 and bool tensors."""
    folder = FIXTURES / "pytorch"
    with np.load(folder / "expected.npz") as expected:
        for name in ("state_dict.pth", "checkpoint.pt", "legacy.pth"):
            assert kind_of(str(folder / name)) == PYTORCH
            arrays = read_pytorch_checkpoint(str(folder / name))
            assert sorted(arrays) == sorted(expected.files), name
            for key in expected.files:
                assert arrays[key].dtype == expected[key].dtype, (name, key)
                np.testing.assert_array_equal(arrays[key], expected[key])


class _WritesAFile:
    """A pickle payload that writes a file when unpickled by a plain pickle.load."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return exec, (f"open({self.target!r}, 'w').write('ran')",)


def test_a_checkpoint_asking_for_another_global_is_refused_and_nothing_runs(tmp_path):
    payload = pickle.dumps({"conv.weight": _WritesAFile(tmp_path / "ran.txt")}, protocol=2)
    pickle.loads(payload)  # the control: a plain unpickler runs it
    assert (tmp_path / "ran.txt").read_text() == "ran"
    (tmp_path / "ran.txt").unlink()
    checkpoint = tmp_path / "model.pth"
    with zipfile.ZipFile(checkpoint, "w") as archive:  # laid out as torch.save lays out its zip
        archive.writestr("model/data.pkl", payload)
        archive.writestr("model/byteorder", "little")
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(b"".join(pickle.dumps(value, protocol=2) for value in
                                (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True})) + payload)
    for path in (checkpoint, legacy):
        with pytest.raises(zoo.ZooError, match=r"refusing to load .*(builtins|__builtin__)\.exec.*Nothing in it was run"):
            zoo.create("resnet18", weights=str(path))
        assert not (tmp_path / "ran.txt").exists()


def test_caffe_models_of_both_layer_formats_read_from_the_wire_format(tmp_path):
    rng = np.random.default_rng(0)
    layers = [("data", "Data", []), ("conv1", "Convolution", [rng.normal(size=(4, 3, 3, 3)), rng.normal(size=4)]),
              ("pool1", "Pooling", []), ("fc", "InnerProduct", [rng.normal(size=(5, 36)), rng.normal(size=5)])]
    for v1 in (False, True):
        path = write_caffemodel(tmp_path / f"net{v1}.weights", layers, v1=v1)  # any name
        assert kind_of(str(path)) == CAFFE
        read = read_caffe_layers(str(path))
        assert [(layer.name, layer.type) for layer in read] == [(name, kind) for name, kind, _ in layers]
        source = read_source_weights(str(path))
        assert sorted(source.arrays) == ["conv1.bias", "conv1.weight", "fc.bias", "fc.weight"]
        np.testing.assert_allclose(source.arrays["conv1.weight"], layers[1][2][0], rtol=1e-6)
        np.testing.assert_allclose(source.arrays["fc.weight"], layers[3][2][0], rtol=1e-6)  # (out, in) in both
        assert source.arrays["fc.bias"].shape == (5,)


def test_safetensors_are_recognized_whatever_their_name(tmp_path):
    path = tmp_path / "weights.bin"
    safetensors.numpy.save_file({"a": np.ones((2, 3), np.float32)}, str(path))
    assert kind_of(str(path)) == SAFETENSORS
    np.testing.assert_array_equal(read_source_weights(str(path)).arrays["a"], np.ones((2, 3)))
    (tmp_path / "noise.bin").write_bytes(b"\x07" * 64)
    with pytest.raises(zoo.ZooError, match="noise.bin is not a weights file: give a .keras model"):
        zoo.create("alexnet", weights=str(tmp_path / "noise.bin"))
    (tmp_path / "noise.caffemodel").write_bytes(b"\x07" * 64)  # named as one: what is wrong with it
    with pytest.raises(zoo.ZooError, match="noise.caffemodel is not a Caffe model"):
        zoo.create("alexnet", weights=str(tmp_path / "noise.caffemodel"))


def test_a_file_for_another_model_or_variant_is_refused_by_name(tmp_path):
    _, _, _, path = source_file("resnet18_torchvision", tmp_path)
    with pytest.raises(zoo.ZooError, match="holds resnet18's weights, not resnet50's: create resnet18 with it"):
        zoo.create("resnet50", weights=str(path))
    with pytest.raises(zoo.ZooError, match="needs variant='torchvision', not variant='keras'"):
        zoo.create("resnet18", weights=str(path), variant="keras")


def test_a_mismatching_or_extra_key_names_the_key_and_both_shapes(tmp_path):
    metadata, _, _, _ = source_file("resnet18_torchvision", tmp_path)
    arrays = random_arrays(metadata["shapes"], metadata["seed"])
    arrays["layer1.0.conv1.weight"] = np.zeros((64, 64, 5, 5), np.float32)
    safetensors.numpy.save_file(arrays, str(tmp_path / "wrong.safetensors"))
    with pytest.raises(zoo.ZooError, match=r"'conv2_block1_1_conv' of resnet18: its kernel has shape \(5, 5, 64, 64\) "
                                           r"in the file \(from layer1.0.conv1.weight\) and \(3, 3, 64, 64\)"):
        zoo.create("resnet18", weights=str(tmp_path / "wrong.safetensors"), input_shape=(64, 64, 3))
    arrays = random_arrays(metadata["shapes"], metadata["seed"])
    arrays["layer1.0.extra.weight"] = np.zeros((3, 3), np.float32)
    safetensors.numpy.save_file(arrays, str(tmp_path / "extra.safetensors"))
    with pytest.raises(zoo.ZooError, match=r"has layer1.0.extra.weight \(shape \(3, 3\)\), which has no place in resnet18"):
        zoo.create("resnet18", weights=str(tmp_path / "extra.safetensors"), input_shape=(64, 64, 3))


def test_a_tag_loads_offline_from_the_keras_cache_and_is_converted_once(offline, tmp_path, monkeypatch):
    metadata, _, _, _ = source_file("resnet18_torchvision", tmp_path)
    shapes = {**metadata["shapes"], "fc.weight": [1000, 512], "fc.bias": [1000]}  # the release's 1000 classes
    offline.mkdir(parents=True)
    cached = offline / "resnet18-f37072fd.pth"  # read by its content whatever its name
    safetensors.numpy.save_file(random_arrays(shapes, 3), str(cached))
    spec = zoo.info("resnet18")
    # the file is not torchvision's, so the expected hash is the generated file's
    file_hash = hashlib.sha256(cached.read_bytes()).hexdigest()[:8]
    monkeypatch.setitem(spec.weights, "tv_in1k", dataclasses.replace(spec.weights["tv_in1k"], top_hash=file_hash))
    first = zoo.create("resnet18.tv_in1k", input_shape=(64, 64, 3))
    assert os.path.isfile(converted_path(spec, "tv_in1k"))
    cached.unlink()  # later loads read the converted weights alone
    second = zoo.create("resnet18", weights="tv_in1k", include_top=False, pooling="avg", input_shape=(64, 64, 3))
    pixels = np.random.default_rng(0).uniform(-2, 2, (2, 64, 64, 3)).astype("float32")
    np.testing.assert_array_equal(first.get_layer("conv1_conv").kernel.numpy(), second.get_layer("conv1_conv").kernel.numpy())
    # the source's conv1.weight (out, in, h, w), laid out as Keras's (h, w, in, out)
    source_kernel = random_arrays(shapes, 3)["conv1.weight"]
    np.testing.assert_array_equal(first.get_layer("conv1_conv").kernel.numpy(), source_kernel.transpose(2, 3, 1, 0))
    assert first.output_shape == (None, 1000) and second(pixels).shape == (2, 512)


def test_a_tag_offline_without_the_file_says_where_to_put_it(offline):
    with pytest.raises(zoo.ZooError) as error:
        zoo.create("resnet18.tv_in1k")
    message = str(error.value)
    assert "resnet18-f37072fd.pth" in message and str(offline / "resnet18-f37072fd.pth") in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert not os.path.exists(converted_path(zoo.info("resnet18"), "tv_in1k"))


def test_every_catalogued_tag_says_where_it_comes_from_and_what_it_expects():
    tagged = [name for name in zoo.list_models() if zoo.info(name).weights]
    assert set(tagged) == {"alexnet", "googlenet", *zoo.list_models("resnet*"), *zoo.list_models("vgg*")}
    for name in tagged:
        for weights in zoo.info(name).weights.values():
            assert weights.top_url.startswith(("https://", "http://")) and weights.source and weights.top1
            assert weights.num_classes == 1000 and weights.class_names == "imagenet"
            assert set(weights.options) <= set(zoo.info(name).options)
    assert weights_preprocessing(zoo.info("resnet50"), "tv_in1k") == TORCH  # not the keras twin's caffe
    assert weights_preprocessing(zoo.info("resnet50"), "imagenet").name == "caffe"
    assert weights_preprocessing(zoo.info("googlenet"), "tv_in1k") == TF_SYMMETRIC
    assert weights_preprocessing(zoo.info("alexnet"), "bvlc") == CAFFE_BVLC_ALEXNET
    assert zoo.info("alexnet").weights["caffenet"].input_shape == (227, 227, 3)
    assert zoo.info("resnet18").weights["tv_in1k"].top_hash == "f37072fd"


def test_import_records_the_weights_so_predict_and_reloading_follow_them(tmp_path):
    _, pixels, _, path = source_file("googlenet_torchvision", tmp_path, name="downloaded.bin")
    out = tmp_path / "googlenet-tv.keras"
    assert main(["import", "googlenet", "--weights", str(path), "--input-size", "72", "--out", str(out)]) == 0
    record = read_keras_metadata(out)
    assert record["options"] == {"variant": "torchvision"} and record["source"] == "safetensors"
    loaded = load_model(out)
    assert loaded.preprocessing == TF_SYMMETRIC != zoo.info("googlenet").preprocessing  # the weights', not the model's
    again = zoo.create("googlenet", weights=str(out))  # rebuilt as the torchvision variant the record names
    np.testing.assert_allclose(again(pixels.astype("float32")), loaded.model(pixels.astype("float32")), atol=1e-6)


def _image_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for label, colour in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
        (root / label).mkdir(parents=True)
        for index in range(6):
            image = np.clip(np.array(colour) + rng.normal(0, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(image).save(root / label / f"{index}.png")
    return root


def test_finetune_head_from_a_converted_file_runs_and_exports_with_its_preprocessing(tmp_path):
    _, _, _, weights = source_file("resnet18_torchvision", tmp_path)
    data, run, serving = _image_folder(tmp_path / "photos"), tmp_path / "run", tmp_path / "serving"
    assert main(["finetune", "resnet18", "--weights", str(weights), "--mode", "head", "--data", str(data),
                 "--image-size", "32", "--epochs", "1", "--batch-size", "4", "--strategy", "one", "--out", str(run),
                 "--quiet"]) == 0
    torch_convention = json.loads(json.dumps(TORCH.to_dict()))
    classes = json.loads((run / "classes.json").read_text())
    assert classes["preprocessing"] == torch_convention and classes["class_names"] == ["blue", "red"]
    assert main(["export", str(run), "--out", str(serving)]) == 0
    exported = json.loads(next(serving.rglob("zoo.json")).read_text())
    assert exported["preprocessing"] == torch_convention
