"""SavedModel export and prediction from every kind of source."""

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import zoo  # noqa: E402
from finetune.serving import export, staging  # noqa: E402
from finetune.serving.export import export_model  # noqa: E402
from finetune.serving.loading import load_model  # noqa: E402
from finetune.serving.predictor import load_predictor  # noqa: E402
from zoo import imagenet  # noqa: E402
from finetune.cli import main  # noqa: E402
from zoo.eval_transform import SQUASH_BILINEAR  # noqa: E402
from zoo.layers import eval_transform, preprocessing_layer  # noqa: E402
from zoo.preprocessing import CAFFE  # noqa: E402

# TensorFlow's command, from the environment the tests run in (which need not be on PATH)
SAVED_MODEL_CLI = str(Path(sys.executable).with_name("saved_model_cli"))

CLASS_NAMES = ["circle", "square", "triangle"]
SIZE = 32
RUN_METADATA = {"model": "lenet5", "input_shape": [SIZE, SIZE, 3], "class_names": CLASS_NAMES,
                "preprocessing": CAFFE.to_dict()}
QUIET = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def small_lenet(channels: int, num_classes: int = 3, seed: int = 0):
    """A random lenet5; its tanh units keep the probabilities apart without saturating."""
    keras.utils.set_random_seed(seed)
    return zoo.create("lenet5", num_classes=num_classes, input_shape=(SIZE, SIZE, channels))


def write_png(path, pixels) -> str:
    path.write_bytes(tf.io.encode_png(pixels).numpy())
    return str(path)


def pixels(count, size, channels=3, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, channels), dtype=np.uint8)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A run folder as fine-tuning writes it: an RGB lenet5 with caffe (BGR) preprocessing."""
    folder = tmp_path_factory.mktemp("runs") / "shapes"
    folder.mkdir()
    small_lenet(3).save(folder / "best.keras")
    (folder / "config.json").write_text(json.dumps({"model": "lenet5", "image_size": SIZE, "channels": 3}))
    (folder / "classes.json").write_text(json.dumps(RUN_METADATA))
    return folder


def test_a_run_folder_may_keep_everything_in_config_json(tmp_path):
    small_lenet(3).save(tmp_path / "last.keras")
    (tmp_path / "config.json").write_text(json.dumps(RUN_METADATA))
    loaded = load_model(tmp_path)
    assert (loaded.preprocessing, loaded.class_names, loaded.input_shape) == (CAFFE, CLASS_NAMES, (SIZE, SIZE, 3))
    assert loaded.keras_path == str(tmp_path / "last.keras")


@pytest.fixture(scope="module")
def exported(run_folder, tmp_path_factory):
    base = tmp_path_factory.mktemp("serving")
    return export_model(run_folder, base, top_k=2)


def keras_reference(folder, images):
    """What the Keras model gives for uint8 images at its input size, preprocessed outside any graph."""
    loaded = load_model(folder)
    return loaded.model(preprocessing_layer(loaded.preprocessing)(images.astype("float32"))).numpy()


def test_layout_labels_and_versions(run_folder, exported):
    assert exported == exported.parent / "1" and exported.parent.name == "shapes"
    assert (exported / "saved_model.pb").is_file()
    assert (exported / "assets" / "labels.txt").read_text().split() == CLASS_NAMES
    assert (exported / "assets.extra" / "model.keras").read_bytes() == (run_folder / "best.keras").read_bytes()
    assert json.loads((exported / "assets.extra" / "zoo.json").read_text())["preprocessing"]["name"] == "caffe"
    with pytest.raises(zoo.ZooError, match="already exists"):
        export_model(run_folder, exported.parent.parent, version=1)
    assert staging.next_version(exported.parent) == 2


def test_an_interrupted_export_leaves_nothing_behind(run_folder, tmp_path, monkeypatch):
    def interrupted(loaded, directory, top_k):
        (directory / "saved_model.pb").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "write_saved_model", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_model(run_folder, tmp_path, name="shapes")
    assert list((tmp_path / "shapes").iterdir()) == []


def test_saved_model_cli_shows_both_signatures(exported):
    shown = subprocess.run([SAVED_MODEL_CLI, "show", "--dir", str(exported), "--all"], capture_output=True,
                           text=True, check=True, env=QUIET).stdout
    default = shown.split("signature_def['serving_default']")[1]
    assert "DT_STRING" in default and "shape: (-1)" in default
    pixels_signature = shown.split("signature_def['serve_pixels']")[1].split("signature_def[")[0]
    assert "DT_UINT8" in pixels_signature and "shape: (-1, -1, -1, 3)" in pixels_signature
    for output, shape in (("classes", "(-1, 2)"), ("scores", "(-1, 2)"), ("probabilities", "(-1, 3)")):
        assert f"outputs['{output}']" in default and shape in default


def test_saved_model_cli_run_serves_what_keras_computes(run_folder, exported, tmp_path):
    images = pixels(3, SIZE)
    encoded = np.array([tf.io.encode_png(image).numpy() for image in images])
    np.save(tmp_path / "encoded.npy", encoded)
    subprocess.run([SAVED_MODEL_CLI, "run", "--dir", str(exported), "--tag_set", "serve", "--signature_def",
                    "serving_default", "--inputs", f"images={tmp_path / 'encoded.npy'}", "--outdir",
                    str(tmp_path / "out")], capture_output=True, check=True, env=QUIET)
    served = np.load(tmp_path / "out" / "probabilities.npy")
    np.testing.assert_allclose(served, keras_reference(run_folder, images), atol=1e-5)


def test_a_fresh_tensorflow_process_serves_what_keras_computes(run_folder, exported, tmp_path):
    at_size, larger = pixels(2, SIZE, seed=1), pixels(2, 48, seed=2)
    png_files = [write_png(tmp_path / f"{index}.png", image) for index, image in enumerate(at_size)]
    np.save(tmp_path / "larger.npy", larger)
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        import tensorflow as tf
        served = tf.saved_model.load({str(exported)!r})
        encoded = tf.constant([open(path, "rb").read() for path in {png_files!r}])
        default = served.signatures["serving_default"](images=encoded)
        from_pixels = served.signatures["serve_pixels"](images=tf.constant(np.load({str(tmp_path / 'larger.npy')!r})))
        assert "zoo" not in sys.modules and "finetune" not in sys.modules
        np.savez({str(tmp_path / 'served.npz')!r}, classes=default["classes"].numpy().astype(bytes), scores=default["scores"].numpy(),
                 probabilities=default["probabilities"].numpy(), pixels=from_pixels["probabilities"].numpy())
    """)
    subprocess.run([sys.executable, "-c", script], check=True, env=QUIET, capture_output=True)
    served = np.load(tmp_path / "served.npz")
    expected = keras_reference(run_folder, at_size)
    np.testing.assert_allclose(served["probabilities"], expected, atol=1e-5)
    top = np.argsort(-expected, axis=1)[:, :2]
    assert served["classes"].astype(str).tolist() == [[CLASS_NAMES[i] for i in row] for row in top]
    np.testing.assert_allclose(served["scores"], np.take_along_axis(expected, top, axis=1), atol=1e-5)
    # a run without pretrained weights: the whole image squashed to the input (zoo.eval_transform)
    resized = eval_transform.apply(larger, SQUASH_BILINEAR, (SIZE, SIZE)).numpy()
    np.testing.assert_allclose(served["pixels"], keras_reference(run_folder, resized), atol=1e-5)


def test_cli_predict_agrees_across_sources_and_skips_bad_images(run_folder, exported, tmp_path, capsys):
    images = [write_png(tmp_path / f"{index}.png", image) for index, image in enumerate(pixels(2, 40, seed=3))]
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    arguments = [*images, str(tmp_path / "broken.jpg"), "--top-k", "3"]
    outputs = {}
    for kind, source in (("saved_model", exported.parent), ("run", run_folder), ("keras", run_folder / "best.keras")):
        out = tmp_path / f"{kind}.json"
        labels = ["--labels", str(exported / "assets" / "labels.txt")] if kind == "keras" else []
        assert main(["predict", str(source), *arguments, *labels, "--output", str(out)]) == 0
        assert f"Skipped {tmp_path / 'broken.jpg'}: not a readable" in capsys.readouterr().err
        outputs[kind] = json.loads(out.read_text())

    def classes(kind):
        return [[entry["class"] for entry in row["predictions"]] for row in outputs[kind]]

    assert sorted(classes("saved_model")[0]) == CLASS_NAMES
    assert classes("run") == classes("saved_model")
    for ours, served in zip(outputs["run"], outputs["saved_model"]):
        np.testing.assert_allclose([entry["probability"] for entry in ours["predictions"]],
                                   [entry["probability"] for entry in served["predictions"]], atol=1e-5)
    # the bare file knows nothing of the run's caffe preprocessing: the spec's applies, labels from the file
    assert sorted(classes("keras")[0]) == CLASS_NAMES
    assert main(["predict", str(exported), str(tmp_path / "broken.jpg"), "--output", str(tmp_path / "p.csv")]) == 1
    assert "Error: none of the images could be read" in capsys.readouterr().err


def test_a_bare_keras_file_takes_the_spec_preprocessing_and_default_names(tmp_path, monkeypatch):
    path = tmp_path / "gray.keras"
    small_lenet(1).save(path)
    loaded = load_model(path)
    assert loaded.preprocessing == zoo.info("lenet5").preprocessing
    assert loaded.class_names == ["class_0", "class_1", "class_2"] and "--labels" in loaded.warnings[0]
    predictor = load_predictor(path)
    gray = pixels(1, SIZE, channels=1)[0]
    expected = loaded.model(preprocessing_layer(loaded.preprocessing)(gray[None].astype("float32"))).numpy()
    # an RGB file of a gray image is converted back to that gray image in the graph
    rgb_png = tf.io.encode_png(np.repeat(gray, 3, axis=-1)).numpy()
    np.testing.assert_allclose(predictor.probabilities([rgb_png]), expected, atol=1e-4)

    # 1000 outputs: ImageNet names, when Keras's class index is in the cache
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    (tmp_path / "keras_home" / "models").mkdir(parents=True)
    index = {str(i): [f"n{i}", f"imagenet_{i}"] for i in range(1000)}
    (tmp_path / "keras_home" / "models" / "imagenet_class_index.json").write_text(json.dumps(index))
    monkeypatch.setattr(imagenet, "CLASS_INDEX_HASH", hashlib.md5(json.dumps(index).encode()).hexdigest())
    wide = tmp_path / "wide.keras"
    zoo.create("lenet5", num_classes=1000).save(wide)
    assert load_model(wide).class_names[:2] == ["imagenet_0", "imagenet_1"]

    # a model the zoo does not know: pixels go in unchanged, with a warning
    unknown = zoo.create("lenet5", num_classes=3)
    unknown.name = "my_net"
    unknown.save(tmp_path / "mine.keras")
    loaded = load_model(tmp_path / "mine.keras")
    assert loaded.preprocessing.name == "identity" and "not a zoo model" in loaded.warnings[0]


def test_a_model_trained_in_mixed_precision_loads_and_exports_in_float32(tmp_path):
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed = small_lenet(3)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    folder = tmp_path / "mixed"
    folder.mkdir()
    mixed.save(folder / "best.keras")
    (folder / "config.json").write_text(json.dumps(RUN_METADATA))
    loaded = load_model(folder)
    assert {layer.dtype_policy.name for layer in loaded.model.layers} == {"float32"}
    images = pixels(4, SIZE, seed=3)
    inputs = preprocessing_layer(loaded.preprocessing)(images.astype("float32"))
    float32_probabilities = loaded.model(inputs).numpy()
    assert float32_probabilities.dtype == np.float32
    # the same weights: bfloat16 arithmetic differs from float32 in the third digit, no more
    np.testing.assert_allclose(float32_probabilities, np.asarray(mixed(inputs), dtype=np.float32), atol=0.03)
    served = tf.saved_model.load(str(export_model(folder, tmp_path / "serving")))
    signature = served.signatures["serve_pixels"]
    np.testing.assert_allclose(signature(images=tf.constant(images))["probabilities"].numpy(), float32_probabilities,
                               atol=1e-5)


def test_untrusted_sources_are_refused(tmp_path):
    inputs = keras.Input((SIZE, SIZE, 1))
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(
        keras.layers.Lambda(lambda x: x / 255)(inputs)))
    keras.Model(inputs, outputs, name="lenet5").save(tmp_path / "lambda.keras")
    with pytest.raises(zoo.ZooError, match="Lambda"):
        load_predictor(tmp_path / "lambda.keras")
    with pytest.raises(zoo.ZooError, match="Lambda"):
        export_model(tmp_path / "lambda.keras", tmp_path / "serving")
    assert not (tmp_path / "serving").exists()
    with pytest.raises(zoo.ZooError, match="neither a .keras file nor a run folder"):
        load_predictor(tmp_path)
