"""Evaluation transforms: each tag evaluated as its source evaluates it (resize, crop, interpolation),
one implementation in TensorFlow ops for prediction, exports, evaluation and a run's validation.

The fixtures (tests/fixtures/eval_transforms/) come from scripts/check_eval_transforms.py, which ran
torchvision's `weights.transforms()`, timm's `create_transform`, Caffe's resize and crop and
keras.utils.load_img's on scikit-image's photographs: the JPEGs, and the sources' outputs at
seeded pixels. No PyTorch here.
"""

import dataclasses
import hashlib
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

import zoo  # noqa: E402
from finetune import files  # noqa: E402
from finetune.cli import main  # noqa: E402
from finetune.data.pipeline import load_data  # noqa: E402
from finetune.serving.export import export_model  # noqa: E402
from finetune.serving.loading import load_model  # noqa: E402
from finetune.serving.pixels import pixels_model  # noqa: E402
from finetune.serving.runtimes import LiteRTModel  # noqa: E402
from finetune.training.config import FinetuneConfig, check_buildable  # noqa: E402
from zoo.eval_transform import (  # noqa: E402
    BVLC_ALEXNET, SQUASH_BILINEAR, TIMM_RSB, TORCHVISION_V1, TORCHVISION_V2, EvalTransform, overridden,
)
from zoo.layers import EvalResizeCrop, eval_transform, preprocessing_layer  # noqa: E402
from zoo.weights import catalogue  # noqa: E402
from zoo.weights.download import cached_path  # noqa: E402
from zoo.weights.files import WEIGHTS_METADATA, save_legacy_weights  # noqa: E402
from zoo.weights.pretrained import converted_path  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "eval_transforms"
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
# the tag of each family the fixtures hold the source's outputs for (scripts/check_eval_transforms.py)
FAMILIES = {"tv_in1k": ("resnet50", "tv_in1k"), "tv2_in1k": ("resnet50", "tv2_in1k"),
            "a1_in1k": ("resnet50", "a1_in1k"), "bvlc": ("alexnet", "bvlc"), "caffenet": ("alexnet", "caffenet"),
            "bvlc_googlenet": ("googlenet", "bvlc"), "imagenet": ("resnet50", "imagenet")}
SAMPLES = 1500  # pixels per photo and family the fixtures keep
TARGET = 2  # of 255: the largest difference the resizes may have from their sources


def photos() -> dict[str, np.ndarray]:
    decoded = {name: np.asarray(Image.open(FIXTURES / f"{name}.jpg").convert("RGB")) for name in PHOTOS}
    decoded["coffee_upright"] = np.ascontiguousarray(np.rot90(decoded["coffee"]))
    return decoded


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_s_transform_gives_its_source_s_pixels_on_real_photos(family):
    sources = np.load(FIXTURES / "sources.npz")
    model, tag = FAMILIES[family]
    weights = zoo.info(model).weights[tag]
    for name, image in photos().items():
        mine = eval_transform.apply(image, weights.evaluation, weights.input_shape[:2]).numpy()
        assert mine.shape == tuple(sources[f"{family}/{name}/shape"])
        rng = np.random.default_rng(0)  # the script's seeded pixels (scripts/check_eval_transforms.py)
        rows, columns = rng.integers(0, mine.shape[0], SAMPLES), rng.integers(0, mine.shape[1], SAMPLES)
        theirs = sources[f"{family}/{name}/values"].astype(int)
        difference = np.abs(mine[rows, columns].astype(int) - theirs)
        assert difference.max() <= TARGET, f"{family} on {name}: {difference.max()}/255"
        # most pixels equal: over 99% on PIL's paths, whose rounding the zoo's follows; some 80% on
        # Caffe's, which OpenCV rounds once where the zoo rounds after each pass
        assert np.mean(difference == 0) > 0.75
        # the squash is not what these sources do: it differs far beyond the target
        if weights.evaluation.resize_mode != "none":
            squashed = eval_transform.apply(image, SQUASH_BILINEAR, weights.input_shape[:2]).numpy()
            assert np.abs(squashed[rows, columns].astype(int) - theirs).max() > 10 * TARGET


def test_every_torchvision_and_timm_tag_records_its_source_s_transform():
    sources = json.loads((FIXTURES / "tags.json").read_text())
    catalogued = {f"{name}.{tag}" for name in zoo.list_models() for tag, weights in zoo.info(name).weights.items()
                  if weights.source in ("torchvision", "timm")}
    assert set(sources) == catalogued
    for full_name, source in sources.items():
        name, tag = full_name.split(".", 1)
        weights = zoo.info(name).weights[tag]
        evaluation = weights.evaluation
        assert evaluation.resize_mode == "shorter" and weights.input_shape[0] == source["crop_size"]
        assert (evaluation.interpolation, evaluation.antialias) == (source["interpolation"], source["antialias"])
        if "crop_pct" in source:
            assert evaluation.crop_pct == source["crop_pct"]
        else:
            assert (evaluation.resize_size, evaluation.crop_size) == (source["resize_size"], source["crop_size"])
    assert zoo.info("resnet50").weights["tv2_in1k"].evaluation == TORCHVISION_V2
    assert zoo.info("alexnet").weights["caffenet"].evaluation == BVLC_ALEXNET
    assert zoo.info("resnet50").weights["imagenet"].evaluation == SQUASH_BILINEAR


@pytest.mark.parametrize("height, width", [(301, 400), (400, 301), (233, 233), (240, 249), (500, 217)])
def test_sizes_and_crop_offsets_are_torchvision_s(height, width):
    (resized_height, resized_width), (top, left) = [
        [int(value) for value in pair] for pair in eval_transform.layout(height, width, TORCHVISION_V2, (224, 224))]
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(232 * long / short)  # torchvision's _compute_resized_output_size
    assert (resized_width, resized_height) == ((232, new_long) if width <= height else (new_long, 232))
    assert (top, left) == (int(round((resized_height - 224) / 2.0)), int(round((resized_width - 224) / 2.0)))


def test_a_window_of_the_image_gives_what_the_whole_image_gives():
    image = photos()["chelsea"]
    for transform in (TORCHVISION_V2, TIMM_RSB, BVLC_ALEXNET):
        size = (224, 224) if transform.crop_size != 227 else (227, 227)
        whole = eval_transform.apply(image, transform, size).numpy()
        top, left, height, width = eval_transform.crop_window(*image.shape[:2], transform, size).numpy()
        assert height < image.shape[0] or width < image.shape[1]  # a real crop: less to decode
        part = image[top:top + height, left:left + width]
        windowed = eval_transform.apply(part, transform, size, full_shape=image.shape[:2], offset=(top, left)).numpy()
        assert np.abs(windowed - whole).max() <= 1  # summed in another order: a rounding step at most


def test_the_transform_is_plain_data_with_clear_errors():
    assert EvalTransform.from_dict(json.loads(json.dumps(TIMM_RSB.to_dict()))) == TIMM_RSB
    assert TIMM_RSB.sizes(224, 224) == (235, (224, 224)) and TORCHVISION_V2.sizes(128, 128) == (132, (128, 128))
    assert TORCHVISION_V1.before_crop(224, 224) == (dataclasses.replace(TORCHVISION_V1, resize_size=256,
                                                                        crop_size=256), (256, 256))
    for bad, message in (({"resize_mode": "fit"}, "resize mode"), ({"resize_mode": "shorter"}, "resize size"),
                         ({"resize_mode": "shorter", "resize_size": 200, "crop_size": 224}, "cannot be below"),
                         ({"resize_mode": "shorter", "crop_pct": 1.5}, "crop_pct"), ({"interpolation": "lanczos"},
                                                                                     "interpolation"),
                         ({"size": 3}, "unknown fields")):
        with pytest.raises(zoo.ZooError, match=message):
            EvalTransform.from_dict(bad)
    assert overridden(TIMM_RSB, "256", input_side=224) == EvalTransform("shorter", 256, 224, interpolation="bicubic")
    assert overridden(TORCHVISION_V2, "none") == EvalTransform(interpolation="bilinear")
    assert overridden(None, "256x256", input_side=227).resize_mode == "both"
    assert overridden(TORCHVISION_V2, crop=0.875) == EvalTransform("shorter", crop_pct=0.875)
    with pytest.raises(zoo.ZooError, match="not both"):
        overridden(TORCHVISION_V2, "256", 0.9, input_side=224)
    with pytest.raises(zoo.ZooError, match="--eval-resize takes"):
        overridden(None, "big")


def test_the_layer_reloads_and_onnx_and_litert_carry_it(tmp_path):
    inputs = keras.Input((None, None, 3), dtype="uint8", name="images")
    fitted = EvalResizeCrop(TORCHVISION_V2.to_dict(), (24, 24))(inputs)
    scaled = keras.layers.Rescaling(1 / 255.0)(fitted)
    outputs = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(3, 3)(scaled))
    model = keras.Model(inputs, {"probabilities": outputs})
    images = np.random.default_rng(0).integers(0, 256, (2, 37, 51, 3)).astype(np.uint8)
    expected = model(images)["probabilities"].numpy()
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(reloaded(images)["probabilities"], expected, atol=1e-6)
    signature = [tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")]
    model.export(str(tmp_path / "m.onnx"), format="onnx", input_signature=signature, verbose=False)
    served = onnxruntime.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"images": images})[0]
    np.testing.assert_allclose(served, expected, atol=1e-4)
    model.export(str(tmp_path / "m.tflite"), format="litert", input_signature=signature, verbose=False,
                 target_spec={"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]})
    np.testing.assert_allclose(LiteRTModel(tmp_path / "m.tflite").probabilities(images), expected, atol=1e-4)


def _photo_folder(root: Path, sizes) -> Path:
    rng = np.random.default_rng(1)
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for index, (height, width) in enumerate(sizes):
            Image.fromarray(rng.integers(0, 256, (height, width, 3)).astype(np.uint8)).save(root / label / f"{index}.png")
    return root


def test_validation_and_test_streams_are_resized_and_cropped_and_training_is_not(tmp_path):
    root = _photo_folder(tmp_path / "data", [(40, 56), (56, 40), (45, 45)])
    transform = EvalTransform("shorter", resize_size=36, crop_size=32)
    bundle = load_data(str(root), image_size=(32, 32, 3), validation_fraction=0.5, shuffle_buffer=0, batch_size=8,
                       evaluation=transform)
    squashed = load_data(str(root), image_size=(32, 32, 3), validation_fraction=0.5, shuffle_buffer=0, batch_size=8)
    validation = np.concatenate([images for images, _ in bundle.validation])
    plain = np.concatenate([images for images, _ in squashed.validation])
    originals = [np.asarray(Image.open(path)) for path in sorted(root.rglob("*.png"))]
    expected = {eval_transform.apply(image, transform, (32, 32)).numpy().tobytes() for image in originals}
    assert {image.tobytes() for image in validation} <= expected
    assert not {image.tobytes() for image in plain} & expected  # the default squashes, as before
    train = np.concatenate([images for images, _ in bundle.train])
    np.testing.assert_array_equal(train, np.concatenate([images for images, _ in squashed.train]))


def test_zoo_evaluate_applies_the_model_s_transform_unless_told_otherwise(tmp_path, capsys):
    root = _photo_folder(tmp_path / "data", [(40, 56), (56, 40), (45, 45)])
    keras.utils.set_random_seed(0)
    path = tmp_path / "model.keras"
    record = {"model": "lenet5", "class_names": ["a", "b"],
              "evaluation": EvalTransform("shorter", resize_size=48, crop_size=32).to_dict()}
    files.save_model_atomically(zoo.create("lenet5", num_classes=2, input_shape=(32, 32, 3)), path,
                                {WEIGHTS_METADATA: json.dumps(record)})
    outputs = {}
    for flags in ([], ["--eval-resize", "none"]):
        assert main(["evaluate", str(path), "--data", str(root), "--json", *flags]) == 0
        outputs[tuple(flags)] = json.loads(capsys.readouterr().out)
    assert outputs[()]["evaluated_with"] == "resize the shorter side to 48 (bilinear, antialiased), centre crop 32"
    assert outputs[("--eval-resize", "none")]["evaluated_with"].startswith("resize to the input size")
    assert outputs[()]["loss"] != outputs[("--eval-resize", "none")]["loss"]


def test_a_run_from_a_tag_keeps_its_transform_and_a_user_can_change_it():
    config = FinetuneConfig(model="resnet50", weights="tv2_in1k").validate()
    assert config.to_dict()["evaluation"] == TORCHVISION_V2.to_dict()
    assert FinetuneConfig.from_dict(config.to_dict()) == config  # the derived record is read back as settings
    smaller = FinetuneConfig(model="resnet50", weights="tv2_in1k", image_size=128).validate()
    assert smaller.evaluation_transform().sizes(128, 128) == (132, (128, 128))
    assert FinetuneConfig(model="resnet50", weights="tv2_in1k", eval_resize="none").evaluation_transform() \
        == SQUASH_BILINEAR
    assert FinetuneConfig(model="resnet50", weights="a1_in1k", eval_crop=0.875).evaluation_transform() \
        == EvalTransform("shorter", crop_pct=0.875, interpolation="bicubic")
    assert FinetuneConfig(model="lenet5").evaluation_transform() == SQUASH_BILINEAR
    with pytest.raises(zoo.ZooError, match="not both"):
        FinetuneConfig(model="resnet50", eval_resize="256", eval_crop=0.9).validate()


def test_a_tag_s_network_takes_the_inputs_its_source_takes():
    FinetuneConfig(model="alexnet", weights="tv_in1k", image_size=63).validate()
    check_buildable(FinetuneConfig(model="alexnet", weights="tv_in1k", image_size=63))
    with pytest.raises(zoo.ZooError, match="at least 67"):
        FinetuneConfig(model="alexnet", image_size=63).validate()  # the paper's net
    with pytest.raises(zoo.ZooError, match="at least 63"):
        FinetuneConfig(model="alexnet", weights="tv_in1k", image_size=62).validate()
    assert zoo.info("resnet18").weights["a1_in1k"].min_input_size == 1


def test_zoo_info_lists_each_tag_s_transform(capsys):
    assert main(["info", "resnet50", "--no-summary"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("resnet50.")}
    assert "shorter side 256, crop 224, bilinear" in rows["resnet50.tv_in1k"]
    assert "shorter side 232, crop 224, bilinear" in rows["resnet50.tv2_in1k"]
    assert "shorter side 235 (crop_pct 0.95), crop 224, bicubic" in rows["resnet50.a1_in1k"]
    assert "squash, bilinear" in rows["resnet50.imagenet"]


def test_a_pinned_timm_hash_is_checked_and_a_wrong_file_refused(offline, monkeypatch):
    offline.mkdir(parents=True)
    spec = zoo.info("resnet18")
    monkeypatch.setitem(catalogue.TIMM_SHA256, "resnet18", "0" * 64)
    pinned = catalogue.released_weights("resnet18")["a1_in1k"]
    assert pinned.top_hash == "sha256:" + "0" * 64
    monkeypatch.setitem(spec.weights, "a1_in1k", pinned)
    path = Path(cached_path(pinned.top_url, pinned.file_name))
    path.write_bytes(b"not the published file")
    with pytest.raises(zoo.ZooError, match="is not the expected resnet18.a1_in1k weights file"):
        zoo.create("resnet18.a1_in1k")
    # with the file's own hash pinned, the check passes and the reader has its say
    monkeypatch.setitem(spec.weights, "a1_in1k", dataclasses.replace(
        pinned, top_hash="sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()))
    with pytest.raises(zoo.ZooError) as error:
        zoo.create("resnet18.a1_in1k")
    assert "expected" not in str(error.value)


def _reference_crop(image: np.ndarray) -> np.ndarray:
    """torchvision's IMAGENET1K_V2 transforms() on a PIL image, up to the tensor: the shorter side to
    232 (PIL bilinear, which antialiases), the long side int(232 * long / short), centre crop 224."""
    height, width = image.shape[:2]
    short, long = min(height, width), max(height, width)
    new_long = int(232 * long / short)
    size = (232, new_long) if width <= height else (new_long, 232)
    resized = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR)).astype(np.float32)
    top, left = int(round((resized.shape[0] - 224) / 2.0)), int(round((resized.shape[1] - 224) / 2.0))
    return resized[top:top + 224, left:left + 224]


@pytest.fixture(scope="module")
def resnet50_tv2(tmp_path_factory):
    """`zoo import resnet50 --weights tv2_in1k` through the tag's real path, offline: random weights
    of torchvision's ResNet-50 stand in the converted-weights cache where the conversion leaves them."""
    folder = tmp_path_factory.mktemp("resnet50_tv2")
    photo = photos()["coffee_upright"][:380, :300]  # a portrait, neither side 224 or 232
    path = folder / "photo.png"
    Image.fromarray(photo).save(path)
    cropped = _reference_crop(photo)
    squashed = eval_transform.apply(photo, SQUASH_BILINEAR, (224, 224)).numpy()
    inputs = preprocessing_layer(zoo.info("resnet50").weights["tv2_in1k"].preprocessing)(np.stack([cropped, squashed]))
    previous = os.environ.get("KERAS_HOME")
    os.environ["KERAS_HOME"] = str(folder / "keras_home")
    try:
        spec = zoo.info("resnet50")
        keras.utils.set_random_seed(0)
        random = zoo.create("resnet50", variant="torchvision")
        # random weights saturate the softmax; a classifier scaled to logits of spread 3 keeps them apart
        classifier = random.get_layer("predictions")
        logits = keras.Model(random.input, classifier.input)(inputs, training=False).numpy() @ classifier.kernel.numpy()
        classifier.set_weights([classifier.kernel.numpy() * (3.0 / logits.std()), classifier.bias.numpy()])
        converted = converted_path(spec, "tv2_in1k")
        os.makedirs(os.path.dirname(converted))
        save_legacy_weights(random, converted)
        out = folder / "resnet50-tv2.keras"
        assert main(["import", "resnet50", "--weights", "tv2_in1k", "--out", str(out)]) == 0
    finally:
        os.environ.pop("KERAS_HOME") if previous is None else os.environ.__setitem__("KERAS_HOME", previous)
    loaded = load_model(out)
    expected = loaded.model(inputs, training=False).numpy()
    assert np.abs(expected[0] - expected[1]).max() > 1e-3  # the squash would be told apart
    return out, path, loaded, expected[0]


def test_zoo_predict_of_resnet50_tv2_resizes_to_232_and_crops_224(resnet50_tv2, tmp_path):
    out, photo, loaded, expected = resnet50_tv2
    assert loaded.evaluation == TORCHVISION_V2
    predictions = tmp_path / "predictions.json"
    assert main(["predict", str(out), str(photo), "--top-k", "5", "--output", str(predictions)]) == 0
    (row,) = json.loads(predictions.read_text())
    best = np.argsort(-expected)[:5]
    assert [each["class"] for each in row["predictions"]] == [loaded.class_names[i] for i in best]
    np.testing.assert_allclose([each["probability"] for each in row["predictions"]], expected[best], atol=1e-4)


def test_the_exports_of_resnet50_tv2_resize_to_232_and_crop_224(resnet50_tv2, tmp_path):
    out, photo, loaded, expected = resnet50_tv2
    folder = export_model(out, tmp_path / "serving")
    serving = tf.saved_model.load(str(folder)).signatures["serving_default"]
    served = serving(images=tf.constant([photo.read_bytes()]))["probabilities"].numpy()[0]
    np.testing.assert_allclose(served, expected, atol=1e-4)
    assert json.loads((folder / "assets.extra" / "zoo.json").read_text())["evaluation"] == TORCHVISION_V2.to_dict()
    # what the ONNX and LiteRT exports convert: the same transform in front of the model, any input size
    model = pixels_model(loaded)
    layer = model.get_layer("eval_resize_crop")
    assert layer.transform == TORCHVISION_V2 and layer.size == (224, 224)
    pixels = np.asarray(Image.open(photo))[np.newaxis]
    np.testing.assert_allclose(model(pixels, training=False)["probabilities"].numpy()[0], expected, atol=1e-4)
