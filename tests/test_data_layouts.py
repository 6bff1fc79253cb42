"""Datasets as they are distributed, built in miniature and read through the `zoo` command: each
caption format trains or evaluates a captioner, each labelled-folder layout a classifier."""

import json
import logging

import pytest

import finetune
import layouts
from finetune.cli import main
from finetune.data import load_captions, load_data
from finetune.training.inputs import load as load_for_config
from zoo.errors import ZooError

TINY_CAPTIONER = ["--epochs", "1", "--image-size", "32", "--batch-size", "8", "--backbone", "lenet5", "--quiet"]
TINY_CLASSIFIER = ["--epochs", "1", "--image-size", "32", "--channels", "3", "--batch-size", "8", "--quiet"]


def zoo(*args) -> int:
    return main([str(arg) for arg in args])


@pytest.fixture(scope="module")
def captioner_run(tmp_path_factory):
    """A captioner trained by `zoo finetune captioner --data FOLDER` on Flickr8k as Kaggle has it."""
    root = tmp_path_factory.mktemp("captions")
    data = layouts.flickr8k_kaggle(root / "flickr8k")
    out = root / "run"
    assert zoo("finetune", "captioner", "--data", data, "--out", out, *TINY_CAPTIONER) == 0
    return out


def test_flickr8k_from_kaggle_trains_a_captioner(captioner_run):
    config = json.loads((captioner_run / "config.json").read_text())
    assert config["task"] == "captioning" and config["data"].endswith("flickr8k")
    metrics = json.loads((captioner_run / "metrics.json").read_text())
    assert metrics["epochs_completed"] == 1 and 0 <= metrics["greedy"]["bleu1"] <= 1
    vocabulary = json.loads((captioner_run / "captioner.json").read_text())["vocabulary"]
    assert {"red", "green", "blue", "plain", "square"} <= set(vocabulary)  # captions with commas read whole


@pytest.mark.parametrize("layout, split", [("flickr8k_original", "test"), ("flickr30k", "validation"),
                                           ("coco", "validation"), ("captions_csv", "validation")])
def test_caption_layouts_evaluate_through_the_cli(layout, split, captioner_run, tmp_path, capsys):
    data = layouts.CAPTION_LAYOUTS[layout](tmp_path / layout)
    capsys.readouterr()
    assert zoo("evaluate", captioner_run, "--data", data, "--split", split, "--max-examples", "1", "--json") == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["split"] == split and 0 <= metrics["beam"]["bleu4"] <= 1


def test_caption_splits_come_from_the_files(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    original = load_captions(str(layouts.flickr8k_original(tmp_path / "f8k")), image_size=16)
    # the lists: 6 train (+ one without a file), 2 dev, 3 test; the twelfth image is in none
    assert original.sizes == {"train": 6, "validation": 2, "test": 3}
    assert original.skipped == ["gone.jpg"] and "in none of the split lists" in caplog.text
    coco = load_captions(str(layouts.coco(tmp_path / "coco")), image_size=16)
    assert coco.sizes == {"train": 9, "validation": 3}
    flickr30k = load_captions(str(layouts.flickr30k(tmp_path / "f30k")), image_size=16, validation_fraction=1 / 3)
    references = sorted(caption.decode() for _, captions in flickr30k.train.take(1) for caption in captions.numpy())
    assert len(references) == 3 and "line 29" in caplog.text  # the row without its separator is named
    given_file = load_captions(str(tmp_path / "f8k" / "Flickr8k_text" / "Flickr8k.token.txt"), image_size=16)
    assert given_file.sizes == original.sizes


def test_an_unreadable_caption_file_shows_its_first_line(tmp_path):
    layouts.captions_csv(tmp_path)
    (tmp_path / "captions.csv").write_text("photo;words\nimg0.png;a red square\n")
    with pytest.raises(ZooError, match=r"cannot tell its format from its first line 'photo;words'; expected a CSV"):
        load_captions(str(tmp_path), image_size=16)
    (tmp_path / "captions.csv").write_text("image,caption\n" + "img0.png\n" * 5 + "img1.png,a thing\n")
    with pytest.raises(ZooError, match=r"5 of 6 rows are not .*the first, line 2: 'img0.png'"):
        load_captions(str(tmp_path), image_size=16)


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory):
    """LeNet-5 trained through `zoo finetune --data FOLDER --labels FILE`: a label file of the
    user's own, its columns found by content."""
    root = tmp_path_factory.mktemp("labelled")
    data = layouts.labels_elsewhere(root / "photos")
    out = root / "run"
    assert zoo("finetune", "lenet5", "--data", data, "--labels", "meta/species.csv", "--out", out,
               *TINY_CLASSIFIER) == 0
    return out


def test_images_with_a_label_file_train_a_classifier(classifier_run):
    assert json.loads((classifier_run / "config.json").read_text())["labels"] == "meta/species.csv"
    assert json.loads((classifier_run / "classes.json").read_text())["class_names"] == ["blue", "green", "red"]
    assert json.loads((classifier_run / "metrics.json").read_text())["train_examples"] == 12 - round(0.2 * 12)


@pytest.mark.parametrize("layout, split", [("class_folders", "validation"), ("kaggle_labels_csv", "validation"),
                                           ("split_label_files", "test"), ("one_hot_labels", "validation")])
def test_labelled_layouts_evaluate_through_the_cli(layout, split, classifier_run, tmp_path, capsys):
    data = getattr(layouts, layout)(tmp_path / layout)
    capsys.readouterr()
    assert zoo("evaluate", classifier_run, "--data", data, "--split", split, "--json") == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["split"] == split and 0 <= metrics["accuracy"] <= 1


def test_the_run_evaluates_on_its_own_label_file(classifier_run, capsys):
    capsys.readouterr()
    assert zoo("evaluate", classifier_run, "--json") == 0
    assert json.loads(capsys.readouterr().out)["split"] == "validation"


def test_label_file_splits_missing_files_and_unknown_labels(tmp_path, caplog):
    kaggle = load_data(str(layouts.kaggle_labels_csv(tmp_path / "dogs")), image_size=(8, 8, 3))
    assert kaggle.sizes == {"train": 10, "validation": 2}  # lost_image left out, test.csv has no labels
    assert "1 image(s) named in labels.csv were not found and are left out: lost_image" in caplog.text
    one_hot = load_data(str(layouts.one_hot_labels(tmp_path / "plants")), image_size=(8, 8, 3))
    assert one_hot.class_names == ["blue", "green", "red"]
    data = layouts.split_label_files(tmp_path / "data")
    with (data / "train.csv").open("a") as file:
        file.write("nowhere_1.png,red\nnowhere_2.png,blue\n")
    bundle = load_data(str(data), image_size=(8, 8, 3))
    assert bundle.sizes == {"train": 9, "validation": 3, "test": 3}  # from the files, nothing carved
    assert "2 image(s) named in train.csv were not found and are left out: nowhere_1.png, nowhere_2.png" in caplog.text
    with (data / "val.csv").open("a") as file:
        file.write("train_0.png,purple\n")
    with pytest.raises(ZooError, match=r"val.csv has labels that no readable training image in train.csv has: "
                                       r"'purple'"):
        load_data(str(data), image_size=(8, 8, 3))


def test_the_python_api_takes_a_label_file(tmp_path):
    data = layouts.labels_elsewhere(tmp_path / "photos")
    config = finetune.make_config("lenet5", data=str(data), labels="meta/species.csv", image_size=32, channels=3)
    bundle = load_for_config(config, global_batch=4, drop_remainder=False)[0]
    assert bundle.class_names == ["blue", "green", "red"] and bundle.sizes["train"] == 12 - round(0.2 * 12)
    dogs = layouts.kaggle_labels_csv(tmp_path / "dogs")  # a label file alone: its folder is the data
    alone = finetune.make_config("lenet5", labels=str(dogs / "labels.csv"), image_size=32, channels=3)
    assert load_for_config(alone, global_batch=4, drop_remainder=False)[0].sizes == {"train": 10, "validation": 2}
