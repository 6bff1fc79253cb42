"""zoo doctor and the training monitor: healthy settings pass, each broken one is flagged with the
right advice; the end-of-run diagnosis reads the curves right."""

import json
import math
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

from finetune.practice import checks as verdicts  # noqa: E402
from finetune.practice import doctor  # noqa: E402
from finetune.training import diagnostics, modeling, optim  # noqa: E402
from finetune.training.config import FinetuneConfig  # noqa: E402
from finetune.practice.lr_find import RangeTest  # noqa: E402
from finetune.training.classification import finetune  # noqa: E402
from finetune.training.classification import classifier_trainer  # noqa: E402
from finetune.cli import main  # noqa: E402

QUADRANTS = ("top_left", "top_right", "bottom_left", "bottom_right")


def image_folder(root: Path, per_class: int = 16, size: int = 32, seed: int = 0) -> Path:
    """Class-per-subfolder PNGs: a bright square in one quadrant of a noisy image (LeNet learns it
    in a few epochs)."""
    rng = np.random.default_rng(seed)
    half = size // 2
    for label, name in enumerate(QUADRANTS):
        (root / name).mkdir(parents=True, exist_ok=True)
        row, column = divmod(label, 2)
        for index in range(per_class):
            image = rng.integers(0, 100, (size, size, 3), dtype=np.uint8)
            top, left = row * half + rng.integers(0, half // 2), column * half + rng.integers(0, half // 2)
            image[top:top + half // 2, left:left + half // 2] = 230
            Image.fromarray(image).save(root / name / f"{index}.png")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return image_folder(tmp_path_factory.mktemp("quadrants"))


def config_for(folder, **overrides) -> FinetuneConfig:
    settings = dict(model="lenet5", data=str(folder), epochs=3, batch_size=16, validation_fraction=0.25, seed=0)
    settings.update(overrides)
    return FinetuneConfig(**settings)


def by_name(checks) -> dict:
    return {check.name: check for check in checks}


# --- the whole doctor on real data --------------------------------------------------------------------

def test_healthy_lenet_on_the_built_in_data_passes_every_check(tmp_path):
    out = tmp_path / "doctor"
    code = main(["doctor", "lenet5", "--data", "builtin:zoo_shapes/tiny", "--data-dir", str(tmp_path / "data"),
                 "--out", str(out), "--lr-find-steps", "20"])
    assert code == 0
    report = json.loads((out / "doctor.json").read_text())
    assert {check["name"]: check["status"] for check in report["checks"]} == {
        "initial loss": "pass", "initialization": "pass", "gradient flow": "pass", "activations": "pass",
        "update/weight ratio": "pass", "overfit a small subset": "pass", "learning rate": "pass"}
    for plot in ("activations.png", "gradients.png", "overfit.png", "lr_find.png"):
        assert (out / plot).stat().st_size > 1000, plot
    # The activation statistics reach inside the backbone (a nested model).
    layers = next(check for check in report["checks"] if check["name"] == "activations")["details"]["layers"]
    assert [layer["path"] for layer in layers] == ["backbone/c1", "backbone/c3", "backbone/c5", "backbone/f6"]


def test_learning_rate_10_is_flagged_with_lower_the_learning_rate(folder, tmp_path, capsys):
    code = main(["doctor", "lenet5", "--data", str(folder), "--lr", "10", "--batch-size", "32", "--out",
                 str(tmp_path / "doctor"), "--overfit-steps", "50", "--lr-find-steps", "20"])
    assert code == 1 and "check(s) failed" in capsys.readouterr().err
    report = json.loads((tmp_path / "doctor" / "doctor.json").read_text())
    checks = {check["name"]: verdicts.Check(**check) for check in report["checks"]}
    assert report["status"] == verdicts.FAIL
    assert checks["initial loss"].status == verdicts.PASS  # the initialization is fine: only the rate is wrong
    assert checks["update/weight ratio"].status == verdicts.FAIL
    assert "lower the learning rate" in checks["update/weight ratio"].advice
    assert checks["overfit a small subset"].status == verdicts.FAIL
    assert "lower the learning rate" in checks["overfit a small subset"].advice
    assert checks["learning rate"].status == verdicts.WARN and "high" in checks["learning rate"].advice


# --- deliberately broken models, built directly ---------------------------------------------------------

def batch(count=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (count, 16, 16, 1)).astype("float32"), rng.integers(0, 10, count)


def multilayer_perceptron(activation, initializer, depth=5):
    """A deep fully connected network (CS231n's initialization demo) as a `build_model` function."""
    def build():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((16, 16, 1))
        x = keras.layers.Flatten()(inputs)
        for index in range(depth):
            x = keras.layers.Dense(64, activation=activation, kernel_initializer=initializer, name=f"hidden{index}")(x)
        outputs = keras.layers.Dense(10, activation="softmax", kernel_initializer=initializer, name="predictions")(x)
        return keras.Model(inputs, outputs)
    return build


def examine(build, lr=1e-3):
    images, labels = batch()
    checks, _ = doctor.examine(build, images, labels, 10, lambda: optim.optimizer("adam", lr), overfit_steps=60)
    return by_name(checks)


def test_the_healthy_baseline_passes():
    checks = examine(multilayer_perceptron("relu", "he_normal"))
    assert {name: check.status for name, check in checks.items()} == dict.fromkeys(checks, verdicts.PASS)


def test_zero_initialization_is_flagged():
    checks = examine(multilayer_perceptron("relu", "zeros"))
    assert checks["initialization"].status == verdicts.FAIL
    assert "zero or constant initialization" in checks["initialization"].advice
    assert checks["gradient flow"].status == verdicts.FAIL and "no gradient" in checks["gradient flow"].summary
    assert checks["overfit a small subset"].status == verdicts.FAIL
    # Zero weights have no update/weight ratio: the check defers to the initialization instead of
    # blaming the learning rate.
    assert "initialization" in checks["update/weight ratio"].advice


def test_sigmoid_everywhere_with_tiny_initialization_is_flagged():
    checks = examine(multilayer_perceptron("sigmoid", keras.initializers.RandomNormal(stddev=1e-3)))
    assert checks["initialization"].status == verdicts.FAIL and "too small" in checks["initialization"].advice
    assert checks["gradient flow"].status == verdicts.FAIL and "vanishing" in checks["gradient flow"].summary
    assert "avoid sigmoid" in checks["gradient flow"].advice
    assert checks["activations"].status == verdicts.FAIL and "too small" in checks["activations"].advice
    assert "learning rate" not in checks["update/weight ratio"].advice.replace("judge the learning rate", "")


def test_too_large_tanh_initialization_saturates_and_is_flagged():
    checks = examine(multilayer_perceptron("tanh", keras.initializers.RandomNormal(stddev=1.0)))
    assert checks["initial loss"].status == verdicts.FAIL and "too large" in checks["initial loss"].advice
    assert checks["activations"].status == verdicts.FAIL and "saturated" in checks["activations"].summary


def test_activation_statistics_tell_dead_relus_and_saturated_tanh():
    inputs = keras.Input((4,))
    relu = keras.layers.Dense(8, activation="relu", kernel_initializer="ones",
                              bias_initializer=keras.initializers.Constant(-100.0), name="dead")(inputs)
    tanh = keras.layers.Dense(8, activation="tanh", kernel_initializer=keras.initializers.Constant(50.0),
                              name="saturated")(inputs)
    model = keras.Model(inputs, [relu, tanh])
    images = np.random.default_rng(0).uniform(0, 1, (32, 4)).astype("float32")
    statistics = {layer.path: layer for layer in diagnostics.activation_statistics(model, images)}
    assert statistics["dead"].dead_fraction == 1.0 and statistics["saturated"].saturated_fraction == 1.0


# --- the checks' thresholds --------------------------------------------------------------------------

def test_initial_loss_threshold_is_half_of_ln_c():
    assert verdicts.check_initial_loss(math.log(10) * 1.4, 10).status == verdicts.PASS
    assert verdicts.check_initial_loss(math.log(10) * 1.6, 10).status == verdicts.FAIL
    assert verdicts.check_initial_loss(math.log(10) * 0.4, 10).status == verdicts.WARN  # labels leaking?
    assert verdicts.check_initial_loss(math.nan, 10).status == verdicts.FAIL


def test_update_ratio_band():
    assert verdicts.check_update_ratios({"a": 1e-3, "b": 3e-3}).status == verdicts.PASS
    assert verdicts.check_update_ratios({"a": 1e-6, "b": 1e-5}).status == verdicts.WARN
    assert "too low" in verdicts.check_update_ratios({"a": 1e-6}).advice
    assert verdicts.check_update_ratios({"a": 0.05}).status == verdicts.WARN
    assert verdicts.check_update_ratios({"a": 2.0, "b": 1e-3, "c": 5.0}).status == verdicts.FAIL
    assert verdicts.check_update_ratios({"a": 2.0, "b": 1e-3}, off_scale=["a"]).status == verdicts.PASS


def range_test(losses, suggestion=None):
    rates = list(np.geomspace(1e-6, 1.0, len(losses)))
    return RangeTest(rates, losses, suggestion, None)


def test_learning_rate_check_reads_the_range_test():
    falling = range_test([2.3, 2.3, 2.2, 1.8, 1.2, 1.0, 3.0, 9.0], suggestion=1e-3)  # rates 1e-6 ... 1
    assert verdicts.check_learning_rate(1e-3, falling).status == verdicts.PASS
    assert "try --lr 0.001" in verdicts.check_learning_rate(1e-5, falling).advice  # 10x below the suggestion
    assert verdicts.check_learning_rate(0.5, falling).status == verdicts.WARN  # where the loss rose
    flat = range_test([2.3, 2.3, 2.29, 2.3, 2.31, 2.32, 2.8, 9.0], suggestion=1e-6)
    assert verdicts.check_learning_rate(1e-3, flat).status == verdicts.PASS  # no evidence either way
    assert "try --lr 5.2e-06" in verdicts.check_learning_rate(1.0, flat).advice  # a tenth of the minimum's rate
    noisy_start = range_test([2.5, 2.45, 2.42, 2.4, 2.35, 2.3, 2.3, 2.6], suggestion=1e-7)  # dead at 1.0
    assert "try --lr 0.0019" in verdicts.check_learning_rate(1.0, noisy_start).advice
    assert verdicts.check_learning_rate(1e-3, range_test([])).status == verdicts.WARN


# --- the end-of-run diagnosis ---------------------------------------------------------------------------

def history(losses, accuracies, val_losses, val_accuracies):
    columns = zip(losses, accuracies, val_losses, val_accuracies)
    return [{"epoch": index + 1, "loss": loss, "accuracy": accuracy, "val_loss": val_loss, "val_accuracy": val_accuracy}
            for index, (loss, accuracy, val_loss, val_accuracy) in enumerate(columns)]


def test_diagnosis_of_the_curves():
    overfit = history([1.0, 0.5, 0.2, 0.05, 0.01], [0.6, 0.8, 0.93, 0.99, 1.0], [1.0, 0.7, 0.65, 0.8, 1.0],
                      [0.6, 0.75, 0.8, 0.8, 0.79])
    assert diagnostics.diagnose(overfit)["verdict"] == "overfitting"
    assert "regularization" in diagnostics.diagnose(overfit)["message"]
    underfit = history([2.0, 1.6, 1.5, 1.49, 1.49], [0.3, 0.45, 0.5, 0.5, 0.5], [1.9, 1.6, 1.5, 1.5, 1.5],
                       [0.3, 0.44, 0.5, 0.5, 0.5])
    assert diagnostics.diagnose(underfit)["verdict"] == "underfitting"
    assert "more capacity or a higher learning rate" in diagnostics.diagnose(underfit)["message"]
    falling = history([2.0, 1.5, 1.1, 0.8, 0.55], [0.3, 0.5, 0.6, 0.7, 0.8], [1.9, 1.5, 1.1, 0.8, 0.6],
                      [0.3, 0.5, 0.6, 0.7, 0.79])
    assert diagnostics.diagnose(falling)["verdict"] == "not converged"
    assert "train longer" in diagnostics.diagnose(falling)["message"]
    good = history([1.0, 0.3, 0.1, 0.08, 0.079], [0.7, 0.9, 0.97, 0.98, 0.98], [1.0, 0.35, 0.15, 0.12, 0.12],
                   [0.7, 0.9, 0.96, 0.97, 0.97])
    assert diagnostics.diagnose(good)["verdict"] == "good fit"
    # Accuracies 6 points apart and the validation loss still at its best, but 5x the training loss:
    # the model is far surer of its training examples than of new ones.
    confident = history([1.0, 0.4, 0.15, 0.08, 0.06], [0.7, 0.88, 0.95, 0.98, 0.99], [1.0, 0.5, 0.35, 0.31, 0.30],
                        [0.7, 0.85, 0.9, 0.92, 0.93])
    assert diagnostics.diagnose(confident)["verdict"] == "overfitting"
    assert "train loss 0.060, validation 0.300, 5.0x" in diagnostics.diagnose(confident)["message"]
    tiny = history([0.5, 0.05, 0.01, 0.002, 0.001], [0.9, 0.99, 1.0, 1.0, 1.0], [0.5, 0.06, 0.012, 0.005, 0.004],
                   [0.9, 0.99, 1.0, 1.0, 1.0])
    assert diagnostics.diagnose(tiny)["verdict"] == "good fit"  # 4x, but of losses too small to matter
    as_read_from_csv = [{key: str(value) for key, value in row.items()} for row in good]
    assert diagnostics.diagnose(as_read_from_csv) == diagnostics.diagnose(good)
    assert diagnostics.diagnose(good[:2])["verdict"] == "too short"


# --- during training --------------------------------------------------------------------------------------

def scalar_tags(log_dir: Path) -> set[str]:
    tags = set()
    for path in log_dir.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            tags.update(value.tag for value in event.summary.value)
    return tags


def test_monitor_logs_gradients_and_update_ratios_and_the_run_is_diagnosed(folder, tmp_path):
    result = finetune(config_for(folder, epochs=2), out=tmp_path / "run", verbose=0)
    tags = scalar_tags(tmp_path / "run" / "logs" / "train")
    for layer in ("backbone/c1", "backbone/f6", "predictions"):
        assert f"gradient_norm/{layer}" in tags and f"update_ratio/{layer}" in tags
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["diagnosis"] == diagnostics.diagnose(result.history)

    finetune(config_for(folder, epochs=1, diagnostics=False), out=tmp_path / "quiet", verbose=0)
    assert not any(tag.startswith("gradient_norm/") for tag in scalar_tags(tmp_path / "quiet" / "logs" / "train"))
    assert "diagnosis" not in json.loads((tmp_path / "quiet" / "metrics.json").read_text())


def test_a_non_finite_loss_ends_the_epoch_at_once():
    # The classic variant: tanh and average pooling carry NaN through (max pooling may drop it).
    config = FinetuneConfig(epochs=1, batch_size=4, image_size=32, channels=1, model_options={"variant": "classic"})
    model = modeling.build(config, 3, (32, 32, 1))
    trainer = classifier_trainer(model, config, tf.distribute.get_strategy(), steps_per_epoch=20)
    consumed = []

    def batches():
        while True:
            consumed.append(1)
            yield np.full((4, 32, 32, 1), np.nan, "float32"), np.zeros(4, "int64")

    dataset = tf.data.Dataset.from_generator(batches, output_signature=(
        tf.TensorSpec((4, 32, 32, 1), tf.float32), tf.TensorSpec((4,), tf.int64)))
    result = trainer.train_epoch(iter(dataset))
    assert not math.isfinite(result.loss)
    assert len(consumed) < 5  # stopped after the first step, not 20
