"""The rest of the course notes' practice: k-fold cross-validation, balanced sampling and class
weights for imbalanced data, the training-memory estimate, normalization for small batches."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import finetune
import zoo
from finetune.cli import main
from finetune.data import pipeline
from finetune.data.source import fold_of_each
from finetune.practice import folds as cross_validation
from finetune.training.config import FinetuneConfig
from finetune.training.objectives import Classification
from zoo import memory

COLOURS = {"blue": (50, 70, 230), "green": (40, 200, 60), "red": (220, 40, 40), "teal": (40, 200, 120)}


def make_classes(root: Path, counts: dict, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for name, count in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image = rng.integers(0, 90, (32, 32, 3), dtype=np.uint8)
            image[8:24, 8:24] = COLOURS[name]
            Image.fromarray(image).save(root / name / f"{index}.png")
    return root


def labels_in(dataset) -> list[int]:
    return [int(label) for _, labels in dataset for label in labels.numpy()]


# -- k-fold cross-validation ---------------------------------------------------------------------

def test_folds_are_stratified_disjoint_and_seeded():
    labels = np.array([0] * 10 + [1] * 7 + [2] * 3)
    assignment = fold_of_each(labels, 3, seed=0)
    assert np.array_equal(assignment, fold_of_each(labels, 3, seed=0))
    assert not np.array_equal(assignment, fold_of_each(labels, 3, seed=1))
    sizes = np.bincount(assignment, minlength=3)
    assert sizes.max() - sizes.min() <= 1
    for label in range(3):  # each class spread over the folds as evenly as its count allows
        per_fold = np.bincount(assignment[labels == label], minlength=3)
        assert per_fold.max() - per_fold.min() <= 1


def test_each_fold_validates_on_its_own_part_and_the_test_split_is_untouched(tmp_path):
    make_classes(tmp_path / "train", {"blue": 6, "green": 6, "red": 6})
    make_classes(tmp_path / "test", {"blue": 2, "green": 2, "red": 2}, seed=1)
    seen, tests = [], []
    for fold in range(3):
        bundle = pipeline.load_data(str(tmp_path), image_size=(32, 32, 3), batch_size=64, shuffle_buffer=0,
                                    folds=3, fold=fold)
        assert bundle.sizes["validation"] == 6 and bundle.sizes["train"] == 12
        assert sorted(np.bincount(labels_in(bundle.validation))) == [2, 2, 2]
        seen.append({image.tobytes() for images, _ in bundle.validation for image in images.numpy()})
        tests.append([image.tobytes() for images, _ in bundle.test for image in images.numpy()])
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    assert len(seen[0] | seen[1] | seen[2]) == 18
    assert tests[0] == tests[1] == tests[2]


def test_cross_validation_through_the_cli_and_the_api(tmp_path, capsys):
    data = make_classes(tmp_path / "data", {"blue": 4, "green": 4, "red": 4})
    out = tmp_path / "cv"
    argv = ["finetune", "lenet5", "--data", str(data), "--folds", "2", "--epochs", "1", "--out", str(out),
            "--image-size", "32", "--channels", "3", "--batch-size", "8", "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / cross_validation.SUMMARY).read_text())
    assert [path.name for path in sorted(out.glob("fold-*"))] == ["fold-1", "fold-2"]
    accuracies = [fold["accuracy"] for fold in summary["per_fold"]]
    assert summary["summary"]["accuracy"]["mean"] == pytest.approx(np.mean(accuracies))
    assert summary["summary"]["accuracy"]["std"] == pytest.approx(np.std(accuracies))
    assert "accuracy" in printed and "±" in printed
    stamps = [path.stat().st_mtime_ns for path in sorted(out.glob("fold-*/best.keras"))]
    assert main(argv) == 0  # run again: every fold is read back, none trained again
    assert [path.stat().st_mtime_ns for path in sorted(out.glob("fold-*/best.keras"))] == stamps
    result = finetune.finetune("lenet5", data=str(data), folds=2, epochs=1, out=tmp_path / "api", image_size=32,
                               channels=3, batch_size=8, verbose=0)
    assert isinstance(result, cross_validation.CrossValidation) and len(result.per_fold) == 2


def test_tune_ranks_trials_by_their_fold_mean(tmp_path, capsys):
    data = make_classes(tmp_path / "data", {"blue": 4, "green": 4, "red": 4})
    out = tmp_path / "tune"
    assert main(["tune", "lenet5", "--data", str(data), "--folds", "2", "--trials", "2", "--rounds", "1",
                 "--epochs", "1", "--out", str(out), "--image-size", "32", "--channels", "3"]) == 0
    rows = list(json.loads((out / "tune.json").read_text())["best"].items())
    best = dict(rows)
    trial = out / "trials" / f"{best['trial']:03d}"
    folds = json.loads((trial / cross_validation.SUMMARY).read_text())
    assert best["val_accuracy"] == pytest.approx(folds["summary"]["accuracy"]["mean"])
    assert "val_accuracy_std" in best


# -- imbalanced data -----------------------------------------------------------------------------------

def test_balanced_epochs_draw_every_class_equally(tmp_path):
    data = make_classes(tmp_path, {"blue": 40, "green": 8, "red": 4})
    common = dict(image_size=(32, 32, 3), batch_size=16, validation_fraction=0.1, seed=3)
    plain = pipeline.load_data(str(data), **common)
    over = pipeline.load_data(str(data), balance="oversample", **common)
    under = pipeline.load_data(str(data), balance="undersample", **common)
    train_counts = np.bincount(labels_in(plain.train), minlength=3)
    assert over.sizes["train"] == train_counts.sum()
    assert under.sizes["train"] == 3 * train_counts.min()
    drawn = np.bincount([label for _ in range(6) for label in labels_in(over.train)], minlength=3)
    assert drawn.min() / drawn.max() > 0.6 and train_counts.min() / train_counts.max() < 0.15
    epochs = [labels_in(under.train) for _ in range(2)]
    assert all(len(epoch) == under.sizes["train"] for epoch in epochs)


def test_class_weights_weigh_each_example_by_its_class():
    labels = tf.constant([0, 0, 1])
    probabilities = tf.constant([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    plain = Classification().replica_loss(labels, probabilities)
    weighted = Classification(class_weights=[0.5, 2.0]).replica_loss(labels, probabilities)
    losses = -np.log([0.9, 0.6, 0.7])
    assert float(plain) == pytest.approx(losses.mean(), rel=1e-5)
    assert float(weighted) == pytest.approx((losses * [0.5, 0.5, 2.0]).mean(), rel=1e-5)


def rare_class_recall(data: Path, tmp_path: Path, **settings) -> float:
    # no augmentation: the remedies for imbalance alone are compared
    config = FinetuneConfig(model="lenet5", data=str(data), epochs=4, batch_size=16, image_size=32, channels=3, seed=0,
                            lr=3e-3, augment="none", **settings)
    result = finetune.finetune(config, verbose=0)
    bundle = pipeline.load_data(str(data), image_size=(32, 32, 3), batch_size=64, shuffle_buffer=0,
                                preprocessing=zoo.info("lenet5").preprocessing)
    truth, predicted = [], []
    for images, labels in bundle.validation:
        truth += list(labels.numpy())
        predicted += list(np.argmax(result.model.predict(images, verbose=0), axis=-1))
    truth, predicted = np.array(truth), np.array(predicted)
    rare = bundle.class_names.index("teal")
    return float(np.mean(predicted[truth == rare] == rare))


def test_balancing_raises_the_recall_of_the_rare_class(tmp_path):
    # teal is green's near neighbour: with 4 examples against 60, an unbalanced model calls it green
    make_classes(tmp_path / "data" / "train", {"blue": 60, "green": 60, "teal": 4})
    make_classes(tmp_path / "data" / "val", {"blue": 10, "green": 10, "teal": 10}, seed=1)
    data = tmp_path / "data"
    plain = rare_class_recall(data, tmp_path)
    oversampled = rare_class_recall(data, tmp_path, balance="oversample")
    weighted = rare_class_recall(data, tmp_path, class_weights=True)
    assert oversampled > plain + 0.3 and weighted > plain + 0.3, (plain, oversampled, weighted)


def test_balance_and_class_weights_are_one_or_the_other():
    with pytest.raises(zoo.ZooError, match="use one of them"):
        FinetuneConfig(balance="oversample", class_weights=True).validate()
    with pytest.raises(zoo.ZooError, match="--balance must be one of"):
        FinetuneConfig(balance="sideways").validate()


# -- memory ----------------------------------------------------------------------------------------

def test_the_estimate_adds_up_its_parts():
    model = zoo.create("resnet18", num_classes=10, input_shape=(64, 64, 3))
    trainable = sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)
    adam = memory.estimate(model, 8, optimizer="adam")
    sgd = memory.estimate(model, 8, optimizer="sgd")
    assert adam.parameters == 4 * model.count_params() and adam.gradients == 4 * trainable
    assert adam.optimizer == 2 * 4 * trainable and sgd.optimizer == 4 * trainable
    assert memory.estimate(model, 16).activations == pytest.approx(2 * adam.activations, abs=1)
    assert memory.estimate(model, 8, precision="mixed").activations == pytest.approx(adam.activations / 2, abs=1)
    assert adam.inputs == 8 * 64 * 64 * 3 * 4
    assert adam.runtime > sgd.runtime > memory.RUNTIME_BASE  # the update's temporaries follow the state
    assert adam.total == (adam.parameters + adam.gradients + adam.optimizer + adam.activations + adam.inputs
                          + adam.runtime)


def test_the_largest_batch_is_the_last_that_fits_the_budget():
    estimate = memory.estimate_model("resnet18", 1, image_size=64)
    budget = memory.parse_bytes("1GiB")
    largest = estimate.largest_batch(budget)
    assert memory.estimate_model("resnet18", largest, image_size=64).total <= budget
    assert memory.estimate_model("resnet18", largest + 1, image_size=64).total > budget
    assert memory.parse_bytes("512 MB") == 512 * 2**20 and memory.parse_bytes("3e9") == 3_000_000_000
    with pytest.raises(zoo.ZooError, match="amount of memory"):
        memory.parse_bytes("lots")


def test_zoo_info_memory(capsys):
    assert main(["info", "resnet18", "--memory", "--batch-size", "16", "--image-size", "64", "--budget", "2GiB",
                 "--json"]) == 0
    values = json.loads(capsys.readouterr().out)
    assert values["batch_size"] == 16 and values["largest_batch"] > 16
    assert values["total"] == memory.estimate_model("resnet18", 16, image_size=64).total
    assert main(["info", "vgg16", "--memory", "--budget", "100MiB"]) == 0
    assert "Not even the weights" in capsys.readouterr().out
    keras.backend.clear_session()
