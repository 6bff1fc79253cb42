"""zoo ensemble (averaged probabilities of several runs, one SavedModel) and --ema (averaged weights)."""

import json
import os
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from finetune.training import modeling  # noqa: E402
from finetune.training.config import FinetuneConfig  # noqa: E402
from finetune.practice.ensemble import build_ensemble, ensemble, load_members  # noqa: E402
from finetune.serving.loading import load_model  # noqa: E402
from finetune.training.classification import finetune  # noqa: E402
from finetune.training.inputs import load  # noqa: E402
from finetune.training.evaluation import evaluate  # noqa: E402
from test_doctor import image_folder  # noqa: E402
from finetune.cli import main  # noqa: E402
from zoo.errors import ZooError  # noqa: E402
from zoo.layers import preprocessing_layer  # noqa: E402


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return image_folder(tmp_path_factory.mktemp("quadrants"))


def config_for(folder, **overrides) -> FinetuneConfig:
    settings = dict(model="lenet5", data=str(folder), epochs=2, batch_size=16, validation_fraction=0.25, seed=0,
                    model_options={"variant": "modern"})
    settings.update(overrides)
    return FinetuneConfig(**settings)


@pytest.fixture(scope="module")
def runs(folder, tmp_path_factory):
    """Two runs on the same split (same seed) that differ in learning rate and dropout."""
    root = tmp_path_factory.mktemp("runs")
    finetune(config_for(folder, lr=3e-3), out=root / "a", verbose=0)
    finetune(config_for(folder, lr=1e-3, dropout=0.3), out=root / "b", verbose=0)
    return root / "a", root / "b"


def pixels(count=6, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, 32, 32, 1)).astype("float32")


def test_ensemble_averages_the_members_probabilities(runs, tmp_path):
    result = ensemble(runs, tmp_path / "ensemble")
    assert [member["source"] for member in result.members] == [str(run) for run in runs]
    assert all(0 <= member["accuracy"] <= 1 for member in result.members)
    assert result.gain == pytest.approx(result.ensemble["accuracy"] - np.mean([m["accuracy"] for m in result.members]))
    assert json.loads((tmp_path / "ensemble" / "ensemble.json").read_text())["split"] == "validation"

    # The saved ensemble (reloaded with safe_mode, as a run folder) is the mean of its members.
    loaded = load_model(tmp_path / "ensemble")
    assert loaded.class_names == load_model(runs[0]).class_names
    members = [load_model(run) for run in runs]
    expected = np.mean([m.model(preprocessing_layer(m.preprocessing)(pixels())).numpy() for m in members], axis=0)
    np.testing.assert_allclose(loaded.model(pixels()).numpy(), expected, atol=1e-6)


def test_members_with_other_input_sizes_are_resized_inside_the_ensemble(runs, folder, tmp_path):
    finetune(config_for(folder, epochs=1, image_size=36), out=tmp_path / "big", verbose=0)
    members = load_members([runs[0], tmp_path / "big"])
    model, pipelines = build_ensemble(members)
    assert model.input_shape == (None, 36, 36, 1)
    images = np.random.default_rng(1).integers(0, 256, (3, 36, 36, 1)).astype("float32")
    np.testing.assert_allclose(model(images).numpy(), np.mean([p(images).numpy() for p in pipelines], axis=0),
                               atol=1e-6)


def test_ensemble_exports_as_one_saved_model(runs, tmp_path):
    assert main(["ensemble", *map(str, runs), "--out", str(tmp_path / "ensemble"), "--export",
                 str(tmp_path / "serving"), "--name", "shapes"]) == 0
    version = tmp_path / "serving" / "shapes" / "1"
    serving = tf.saved_model.load(str(version)).signatures["serve_pixels"]
    images = pixels().astype("uint8")
    outputs = serving(images=tf.constant(images))
    reference = load_model(tmp_path / "ensemble").model(images.astype("float32")).numpy()
    np.testing.assert_allclose(outputs["probabilities"].numpy(), reference, atol=1e-5)
    assert (version / "assets" / "labels.txt").read_text().split() == load_model(runs[0]).class_names


def test_class_names_must_agree(runs, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(runs[1], other)
    classes = json.loads((other / "classes.json").read_text())
    classes["class_names"] = classes["class_names"][::-1]
    (other / "classes.json").write_text(json.dumps(classes))
    with pytest.raises(ZooError, match="same classes"):
        load_members([runs[0], other])
    with pytest.raises(ZooError, match="at least two"):
        load_members([runs[0]])


def test_runs_with_other_validation_splits_are_refused_on_validation(runs, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(runs[1], other)
    config = json.loads((other / "config.json").read_text())
    config["seed"] = 7
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(ZooError, match="seed.*--split test"):
        ensemble([runs[0], other])


def test_an_ema_run_evaluates_with_its_averaged_weights(folder, tmp_path):
    """--ema: the saved model and the reported metrics use the moving average of the weights, not
    the last step's weights (which the checkpoint keeps)."""
    config = config_for(folder, epochs=2, ema=0.9)
    result = finetune(config, out=tmp_path / "run", verbose=0)
    averaged = load_model(tmp_path / "run").model
    raw = modeling.build(config, 4, config.input_shape())
    last_step = tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints"))
    tf.train.Checkpoint(model=raw).restore(last_step).expect_partial()
    difference = max(float(np.max(np.abs(a - b))) for a, b in zip(averaged.get_weights(), raw.get_weights()))
    assert difference > 1e-4
    np.testing.assert_allclose(result.model.get_weights()[0], averaged.get_weights()[0])
    _, _, validation, _, _ = load(config, config.batch_size, drop_remainder=False)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["validation"]
    assert metrics["loss"] == pytest.approx(evaluate(averaged, validation)["loss"], rel=1e-5)
    assert metrics["loss"] != pytest.approx(evaluate(raw, validation)["loss"], rel=1e-5)
