"""Pretrained weights: Keras Applications files, the imagenet tag offline, the zoo's own files."""

import dataclasses
import hashlib
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import zoo  # noqa: E402
from zoo import imagenet  # noqa: E402
from finetune.cli import main  # noqa: E402
from zoo.weights.files import load_model_file, save_legacy_weights  # noqa: E402
from zoo.weights.keras_applications import IMAGENET_CLASSES  # noqa: E402

APPLICATIONS = {
    "vgg16": keras.applications.VGG16,
    "resnet50": keras.applications.ResNet50,
    "resnet50v2": keras.applications.ResNet50V2,
}
KERAS_TWINS = ("vgg16", "vgg19", "resnet50", "resnet101", "resnet152", "resnet50v2", "resnet101v2", "resnet152v2")


def relative_difference(actual, expected) -> float:
    return float(np.max(np.abs(np.asarray(actual) - np.asarray(expected))) / np.max(np.abs(expected)))


def randomize_batch_norm(model, seed=0):
    """Gives every BatchNorm non-default statistics, so a misplaced array changes the outputs."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, variance.shape)])


def images(size, channels=3, count=2, seed=0):
    """Preprocessed-looking inputs: zero-centred, pixel-scaled."""
    return np.random.default_rng(seed).uniform(-120, 120, (count, size, size, channels)).astype("float32")


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    """(name, include_top, size) -> (a Keras Applications weight file, the model that wrote it), cached."""
    made = {}

    def make(name, include_top, size):
        key = (name, include_top, size)
        if key not in made:
            reference = APPLICATIONS[name](weights=None, include_top=include_top, input_shape=(size, size, 3))
            randomize_batch_norm(reference)
            top = "" if include_top else "_notop"
            path = tmp_path_factory.mktemp("keras") / f"{name}_weights_tf_dim_ordering_tf_kernels{top}.h5"
            made[key] = (save_legacy_weights(reference, path), reference)
        return made[key]

    return make


@pytest.mark.parametrize("name, include_top, size", [("vgg16", False, 64), ("resnet50v2", False, 96),
                                                     ("resnet50", True, 224)])
def test_keras_applications_file_gives_the_same_outputs(keras_file, name, include_top, size):
    path, reference = keras_file(name, include_top, size)
    model = zoo.create(name, weights=path, include_top=include_top, input_shape=(size, size, 3))
    inputs = images(size)
    assert relative_difference(model(inputs), reference(inputs)) <= 1e-4


def test_every_keras_twin_lists_imagenet_weights():
    for name in KERAS_TWINS:
        spec = zoo.info(name)
        weights = spec.weights["imagenet"]
        assert f"{name}.imagenet" in spec.summary()["weights"]
        assert weights.top_url.endswith(f"{name}_weights_tf_dim_ordering_tf_kernels.h5")
        assert weights.notop_url.endswith(f"{name}_weights_tf_dim_ordering_tf_kernels_notop.h5")
        assert weights.preprocessing == spec.preprocessing  # the spec's convention is the weights'
        assert (weights.num_classes, weights.input_shape, weights.class_names) == (1000, (224, 224, 3), "imagenet")
    assert "imagenet" not in zoo.info("vgg11").weights and "imagenet" not in zoo.info("resnet18").weights


def test_imagenet_tag_loads_from_the_keras_cache_offline(keras_file, offline, monkeypatch):
    path, reference = keras_file("resnet50", False, 64)
    offline.mkdir(parents=True, exist_ok=True)
    cached = offline / os.path.basename(path)
    cached.write_bytes(open(path, "rb").read())
    spec = zoo.info("resnet50")
    # the generated file is not Keras's, so the expected hash is the generated file's
    file_hash = hashlib.md5(cached.read_bytes()).hexdigest()
    monkeypatch.setitem(spec.weights, "imagenet", dataclasses.replace(spec.weights["imagenet"], notop_hash=file_hash))
    model = zoo.create("resnet50.imagenet", include_top=False, input_shape=(64, 64, 3))
    inputs = images(64)
    assert relative_difference(model(inputs), reference(inputs)) <= 1e-4


def test_imagenet_tag_offline_without_the_file_says_where_to_put_it(offline):
    with pytest.raises(zoo.ZooError) as error:
        zoo.create("resnet50", weights="imagenet", include_top=False, input_shape=(64, 64, 3))
    message = str(error.value)
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert str(offline / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5") in message
    assert not any(offline.iterdir())  # no partial download left behind


def test_cached_file_with_another_hash_is_reported_and_kept(offline):
    offline.mkdir(parents=True, exist_ok=True)
    cached = offline / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    cached.write_bytes(b"not the weights")
    with pytest.raises(zoo.ZooError, match="is not the expected imagenet weights file"):
        zoo.create("vgg16", weights="imagenet", include_top=False, input_shape=(32, 32, 3))
    assert cached.read_bytes() == b"not the weights"


def test_new_num_classes_keeps_everything_but_the_classifier(keras_file):
    path, reference = keras_file("resnet50", True, 224)
    model = zoo.create("resnet50", weights=path, num_classes=3, input_shape=(64, 64, 3))
    for layer in model.layers:
        if layer.weights and layer.name != "predictions":
            for ours, theirs in zip(layer.get_weights(), reference.get_layer(layer.name).get_weights()):
                np.testing.assert_array_equal(ours, theirs)
    assert model.get_layer("predictions").kernel.shape == (2048, 3)
    assert model.output_shape == (None, 3)


def test_gray_input_sums_the_rgb_filters(keras_file):
    path, reference = keras_file("resnet50", False, 64)
    model = zoo.create("resnet50", weights=path, include_top=False, input_shape=(64, 64, 1))
    np.testing.assert_allclose(model.get_layer("conv1_conv").kernel.numpy(),
                               reference.get_layer("conv1_conv").kernel.numpy().sum(axis=2, keepdims=True), rtol=1e-6)
    gray = images(64, channels=1)
    # a gray image through summed filters is the RGB model on that image in all three channels
    assert relative_difference(model(gray), reference(np.repeat(gray, 3, axis=-1))) <= 1e-4


def test_rgb_input_from_a_gray_keras_file(tmp_path):
    gray_model = zoo.create("lenet5", num_classes=7)
    path = tmp_path / "lenet5.keras"
    gray_model.save(path)
    model = zoo.create("lenet5", weights=str(path), input_shape=(32, 32, 3))
    assert model.output_shape == (None, 7)  # the file's classifier size by default
    np.testing.assert_allclose(model.get_layer("c1").kernel.numpy(),
                               np.repeat(gray_model.get_layer("c1").kernel.numpy(), 3, axis=2) / 3, rtol=1e-6)
    gray = images(32, channels=1) / 255
    assert relative_difference(model(np.repeat(gray, 3, axis=-1)), gray_model(gray)) <= 1e-4


def test_keras3_weights_file_round_trip(tmp_path):
    source = zoo.create("lenet5", num_classes=5, variant="modern")
    path = tmp_path / "lenet5.weights.h5"
    source.save_weights(path)
    model = zoo.create("lenet5", weights=str(path), variant="modern")
    inputs = images(32, channels=1) / 255
    assert model.output_shape == (None, 5)
    np.testing.assert_allclose(model(inputs), source(inputs), rtol=1e-6)
    features = zoo.create("lenet5", weights=str(path), include_top=False)  # the file's top is left out
    np.testing.assert_array_equal(features.get_layer("c5").kernel.numpy(), source.get_layer("c5").kernel.numpy())


def test_mismatched_shapes_name_the_layer_and_both_shapes(tmp_path):
    path = tmp_path / "lenet5.keras"
    zoo.create("lenet5").save(path)
    with pytest.raises(zoo.ZooError, match=r"'f6' of lenet5: its kernel has shape \(120, 84\) in the file "
                                           r"and \(9720, 84\) in the model"):
        zoo.create("lenet5", weights=str(path), input_shape=(64, 64, 1))


def test_a_file_of_another_architecture_is_refused(keras_file, tmp_path):
    path, _ = keras_file("resnet50", False, 64)
    with pytest.raises(zoo.ZooError, match="no weights for layer 'conv4_block7_1_conv' of resnet101"):
        zoo.create("resnet101", weights=path, include_top=False, input_shape=(64, 64, 3))
    deeper = save_legacy_weights(zoo.create("vgg13", include_top=False, input_shape=(32, 32, 3)), tmp_path / "vgg13.h5")
    with pytest.raises(zoo.ZooError, match="'block1_conv2'.*that vgg11 lacks"):
        zoo.create("vgg11", weights=deeper, include_top=False, input_shape=(32, 32, 3))


def test_a_keras_file_with_a_lambda_layer_is_refused(tmp_path):
    inputs = keras.Input((32, 32, 1))
    outputs = keras.layers.Dense(10, activation="softmax")(
        keras.layers.Flatten()(keras.layers.Lambda(lambda x: x * 2)(inputs)))
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs, name="lenet5").save(path)
    with pytest.raises(zoo.ZooError, match="Lambda"):
        load_model_file(str(path))
    with pytest.raises(zoo.ZooError, match="Lambda"):
        zoo.create("lenet5", weights=str(path))


def test_unknown_tag_and_missing_file(tmp_path):
    with pytest.raises(zoo.ZooError, match="vgg11 has no weights 'imagenet' .its weights: tv_in1k"):
        zoo.create("vgg11", weights="imagenet")
    with pytest.raises(zoo.ZooError, match="no such weights file"):
        zoo.create("lenet5", weights=str(tmp_path / "missing.h5"))


def test_cli_import_writes_a_keras_file(tmp_path, capsys):
    source = tmp_path / "lenet5.keras"
    zoo.create("lenet5").save(source)
    out = tmp_path / "imported.keras"
    assert main(["import", "lenet5", "--weights", str(source), "--channels", "3", "--num-classes", "4",
                 "--out", str(out)]) == 0
    model = load_model_file(str(out))
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 4)
    assert "re-initialized for 4 classes" in capsys.readouterr().err
    assert main(["import", "lenet5", "--weights", str(tmp_path / "none.h5"), "--out", str(tmp_path / "x.keras")]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [f"Error: no such weights file: {tmp_path / 'none.h5'}"]
    before = out.read_bytes()
    assert main(["import", "lenet5", "--weights", str(source), "--out", str(out)]) == 1  # never overwritten
    assert "exists" in capsys.readouterr().err and out.read_bytes() == before


def test_imagenet_class_names_from_the_keras_cache(offline, monkeypatch):
    assert imagenet.class_names(download=False) is None
    with pytest.raises(zoo.ZooError, match=str(offline / "imagenet_class_index.json")):
        imagenet.class_names()
    offline.mkdir(parents=True, exist_ok=True)
    index = {str(i): [f"n{i:08d}", f"name_{i}"] for i in range(IMAGENET_CLASSES)}
    (offline / "imagenet_class_index.json").write_text(json.dumps(index))
    monkeypatch.setattr(imagenet, "CLASS_INDEX_HASH", hashlib.md5(json.dumps(index).encode()).hexdigest())
    names = imagenet.class_names()
    assert len(names) == 1000 and names[:2] == ["name_0", "name_1"]
