"""ONNX and LiteRT exports of trained runs, each run in its own runtime (ONNX Runtime, the LiteRT
interpreter) and compared with Keras on the same pixels."""

import contextlib
import functools
import io
import json
import os
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import zoo  # noqa: E402
from finetune import api  # noqa: E402
from finetune.cli import main  # noqa: E402
from finetune.practice.ensemble import ensemble  # noqa: E402
from finetune.serving.loading import load_model  # noqa: E402
from finetune.serving.pixels import pixels_model  # noqa: E402
from finetune.serving.rundata import load_run_data  # noqa: E402
from finetune.serving.runtimes import find_portable_model, open_model  # noqa: E402
from finetune.training.classification import finetune  # noqa: E402
from finetune.training.config import FinetuneConfig  # noqa: E402
from test_finetune import COLOURS, make_folder  # noqa: E402

SIZE = 32
FLOAT_TOLERANCE = 1e-4
INT8_AGREEMENT = 0.95
LENET_EXPORTS = [("onnx", "none"), ("onnx", "float16"), ("onnx", "int8"),
                 ("litert", "none"), ("litert", "float16"), ("litert", "int8")]
RESNET_EXPORTS = [("onnx", "int8"), ("litert", "none")]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("squares"), per_class=40, size=SIZE)  # 60 validation images


def run_config(folder, model: str, **settings) -> FinetuneConfig:
    return FinetuneConfig(model=model, data=str(folder), image_size=SIZE, channels=3, validation_fraction=0.5,
                          seed=1, batch_size=8, diagnostics=False, **settings)


@pytest.fixture(scope="module")
def lenet_run(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "lenet5"
    finetune(run_config(folder, "lenet5", epochs=2, lr=3e-3), out=out, verbose=0)
    return out


@pytest.fixture(scope="module")
def resnet_run(folder, tmp_path_factory):
    """A ResNet-18 run folder made as tests/test_export.py makes runs: compiling the kit's training
    step for ResNet-18 takes longer on 2 cores than this whole file may, so one epoch trains
    eagerly. Its three steps leave BatchNorm's moving statistics at their initial values, which
    saturate the softmax and would leave nothing to compare; they are set from the training
    images, as a longer run would have set them."""
    out = tmp_path_factory.mktemp("runs") / "resnet18"
    out.mkdir()
    run_config(folder, "resnet18", epochs=1).save(out / "config.json")
    preprocessing = zoo.info("resnet18").preprocessing
    bundle = load_run_data(out, (SIZE, SIZE, 3), preprocessing=preprocessing, batch_size=8)
    keras.utils.set_random_seed(0)
    model = zoo.create("resnet18", num_classes=bundle.num_classes, input_shape=(SIZE, SIZE, 3))
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", run_eagerly=True)
    model.fit(bundle.train, epochs=1, verbose=0)
    settle_batch_norm(model, np.concatenate([images for images, _ in bundle.train]))
    model.save(out / "best.keras")
    (out / "classes.json").write_text(json.dumps({
        "model": "resnet18", "class_names": bundle.class_names, "input_shape": [SIZE, SIZE, 3],
        "preprocessing": preprocessing.to_dict()}))
    return out


def settle_batch_norm(model, images) -> None:
    """BatchNorm's moving mean and variance := those of `images` (momentum 0 for one training-mode pass)."""
    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in layers:
        layer.momentum = 0.0
    model(images, training=True)
    for layer in layers:
        layer.momentum = 0.99


def export_all(run, base, exports) -> dict:
    """Each (format, quantize) exported through `zoo export`, with what the command printed."""
    exported = {}
    for export_format, quantize in exports:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert main(["export", str(run), "--out", str(base), "--format", export_format, "--quantize", quantize,
                         "--name", f"{run.name}-{export_format}-{quantize}"]) == 0
        exported[export_format, quantize] = (base / f"{run.name}-{export_format}-{quantize}" / "1", printed.getvalue())
    return exported


@pytest.fixture(scope="module")
def lenet_exports(lenet_run, tmp_path_factory):
    return export_all(lenet_run, tmp_path_factory.mktemp("serving"), LENET_EXPORTS)


@pytest.fixture(scope="module")
def resnet_exports(resnet_run, tmp_path_factory):
    return export_all(resnet_run, tmp_path_factory.mktemp("serving"), RESNET_EXPORTS)


@functools.cache
def validation_pixels(run):
    """The run's validation images as uint8 pixels, and the Keras model's probabilities for them."""
    loaded = load_model(run)
    bundle = load_run_data(run, loaded.input_shape)
    images = np.concatenate([np.asarray(batch) for batch, _ in bundle.validation]).astype(np.uint8)
    return images, pixels_model(loaded)(images, training=False)["probabilities"].numpy()


def check_in_runtime(run, folder, quantize: str) -> None:
    """The export, in its runtime, against Keras on the run's validation images; batches of any size."""
    images, expected = validation_pixels(run)
    runtime = open_model(*find_portable_model(folder))
    served = runtime.probabilities(images)
    # one image, then all: the batch dimension is dynamic (int8 kernels may round one step apart)
    np.testing.assert_allclose(runtime.probabilities(images[:1]), served[:1], atol=1e-6 if quantize == "none" else 0.01)
    agreement = float(np.mean(np.argmax(served, axis=1) == np.argmax(expected, axis=1)))
    report = json.loads((folder / "zoo.json").read_text())["report"]
    if quantize == "none":
        np.testing.assert_allclose(served, expected, atol=FLOAT_TOLERANCE)
        assert expected.max(axis=1).min() < 0.99, "one-hot outputs would leave nothing to compare"
    else:
        assert agreement >= INT8_AGREEMENT
        assert report["top1_agreement"] == pytest.approx(agreement)
        assert report["examples"] == len(images) and report["split"] == "validation"
    assert report["size_bytes"] == (folder / ("model.onnx" if runtime.format == "onnx" else "model.tflite")).stat().st_size


@pytest.mark.parametrize("export_format, quantize", LENET_EXPORTS)
def test_lenet5_exports_serve_what_keras_computes(lenet_run, lenet_exports, export_format, quantize):
    folder, printed = lenet_exports[export_format, quantize]
    check_in_runtime(lenet_run, folder, quantize)
    report = json.loads((folder / "zoo.json").read_text())["report"]
    assert "size:" in printed and ("validation accuracy" in printed) == (quantize != "none")
    if quantize != "none":
        # the weights shrink by half or more; the graph around them (the resize and crop: some 20-50 KB
        # of operations in these formats) does not
        unquantized = json.loads((lenet_exports[export_format, "none"][0] / "zoo.json").read_text())["report"]
        assert unquantized["size_bytes"] - report["size_bytes"] > 0.4 * report["float32_weights_bytes"]
        assert report["export_accuracy"] == pytest.approx(report["keras_accuracy"], abs=1 - INT8_AGREEMENT)
    if quantize == "int8":
        assert report["calibration_images"] == 60  # the whole training split: fewer than 300 images


@pytest.mark.parametrize("export_format, quantize", RESNET_EXPORTS)
def test_resnet18_exports_serve_what_keras_computes(resnet_run, resnet_exports, export_format, quantize):
    folder, _ = resnet_exports[export_format, quantize]
    check_in_runtime(resnet_run, folder, quantize)


def test_class_names_and_preprocessing_travel_with_the_export(lenet_run, lenet_exports):
    class_names = sorted(COLOURS)
    onnx_folder, _ = lenet_exports["onnx", "none"]
    model = onnx.load(str(onnx_folder / "model.onnx"))
    properties = {entry.key: json.loads(entry.value) for entry in model.metadata_props}
    assert properties["class_names"] == class_names
    assert properties["preprocessing"] == json.loads(json.dumps(load_model(lenet_run).preprocessing.to_dict()))
    assert properties["input"]["dtype"] == "uint8" and properties["preprocessing_in_graph"] is True
    (graph_input,) = model.graph.input
    # any image size: the model resizes and crops it to its input (its evaluation transform)
    assert [dim.dim_param or dim.dim_value for dim in graph_input.type.tensor_type.shape.dim] == [
        "batch", "height", "width", 3]
    assert properties["evaluation"]["resize_mode"] == "none" and properties["input"]["model_input"] == [SIZE, SIZE, 3]
    assert [output.name for output in model.graph.output] == ["probabilities"]
    litert_folder, _ = lenet_exports["litert", "int8"]
    assert (litert_folder / "labels.txt").read_text().split() == class_names
    assert json.loads((litert_folder / "zoo.json").read_text())["class_names"] == class_names
    assert sorted(path.name for path in litert_folder.iterdir()) == ["labels.txt", "model.tflite", "zoo.json"]


def test_zoo_predict_runs_onnx_and_tflite_files_as_the_run_folder_does(lenet_run, lenet_exports, tmp_path):
    images, _ = validation_pixels(lenet_run)
    paths = []
    for index, image in enumerate(images[:6]):
        paths.append(str(tmp_path / f"{index}.png"))
        (tmp_path / f"{index}.png").write_bytes(tf.io.encode_png(image).numpy())

    def top1(source) -> list[str]:
        out = tmp_path / "predictions.json"
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["predict", str(source), *paths, "--output", str(out)]) == 0
        return [row["predictions"][0]["class"] for row in json.loads(out.read_text())]

    expected = top1(lenet_run)
    assert len(set(expected)) > 1
    assert top1(lenet_exports["onnx", "none"][0] / "model.onnx") == expected
    assert top1(lenet_exports["litert", "none"][0] / "model.tflite") == expected
    assert top1(lenet_exports["litert", "int8"][0].parent) == expected  # the served model's folder, latest version


def test_an_ensemble_exports_to_onnx_and_litert(lenet_run, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(lenet_run, other)
    keras.utils.set_random_seed(5)
    zoo.create("lenet5", num_classes=len(COLOURS), input_shape=(SIZE, SIZE, 3)).save(other / "best.keras")
    ensemble([lenet_run, other], tmp_path / "ensemble")
    for export_format in ("onnx", "litert"):
        folder = api.export(tmp_path / "ensemble", tmp_path / "serving", format=export_format, name=export_format)
        images = np.random.default_rng(2).integers(0, 256, (5, SIZE, SIZE, 3), dtype=np.uint8)
        expected = load_model(tmp_path / "ensemble").model(images.astype("float32")).numpy()
        np.testing.assert_allclose(open_model(*find_portable_model(folder)).probabilities(images), expected,
                                   atol=FLOAT_TOLERANCE)


def test_what_cannot_be_exported_is_refused_with_the_reason(lenet_run, tmp_path, capsys):
    captions = tmp_path / "captions"
    captions.mkdir()
    (captions / "config.json").write_text(json.dumps({"task": "captioning"}))
    with pytest.raises(zoo.ZooError, match="SavedModels only.*LookupTableFindV2"):
        api.export(captions, tmp_path / "serving", format="litert")
    assert main(["export", str(captions), "--out", str(tmp_path / "serving"), "--format", "onnx"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("Error: captioners export as SavedModels only") and error.count("\n") == 1
    with pytest.raises(zoo.ZooError, match="SavedModel exports stay float32"):
        api.export(lenet_run, tmp_path / "serving", quantize="int8")
    bare = tmp_path / "lenet5.keras"
    shutil.copyfile(lenet_run / "best.keras", bare)
    with pytest.raises(zoo.ZooError, match="does not say what data.*--data"):
        api.export(bare, tmp_path / "serving", format="onnx", quantize="int8")
    assert not (tmp_path / "serving").exists()
