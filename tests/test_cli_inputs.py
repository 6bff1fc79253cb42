"""Bad inputs through the `zoo` command: each a non-zero exit and one line on stderr that says what
is wrong and what to do, never a traceback."""

import json
import os
import subprocess
import sys

import keras
import pytest

import layouts
import zoo
from finetune.cli import main


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    """Everything the walk feeds the commands: broken files, another task's run, an export, models."""
    root = tmp_path_factory.mktemp("walk")
    (root / "notes.txt").write_text("hello\n")
    (root / "binary.csv").write_bytes(bytes(range(256)))
    (root / "bad.json").write_text("{not json")
    (root / "empty.keras").write_bytes(b"")
    (root / "broken.keras").write_bytes(b"PK\x03\x04 the start of an archive, and no more")
    (root / "empty").mkdir()
    layouts.class_folders(root / "colours", count=6)
    layouts.save_image(root / "red.png", "red")
    captioning_run = root / "captioning_run"  # a captioner's run folder before its first epoch
    captioning_run.mkdir()
    (captioning_run / "config.json").write_text(json.dumps({"task": "captioning", "epochs": 1}))
    export = root / "serving" / "lenet5" / "1"  # TF Serving's layout of an export
    (export / "assets.extra").mkdir(parents=True)
    (export / "saved_model.pb").write_bytes(b"")
    (export / "assets.extra" / "zoo.json").write_text(json.dumps({"task": "classification"}))
    zoo.create("lenet5", num_classes=3).save(root / "lenet5.keras")
    (root / "names.txt").write_text("red\ngreen\nblue\n")
    inputs = keras.Input((8, 8, 3))
    keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs), name="features").save(root / "features.keras")
    # a folder of images with a labels.csv that names files it does not have
    layouts.save_image(root / "missing_files" / "train" / "a.png", "red")
    (root / "missing_files" / "labels.csv").write_text("id,label\nx1,red\nx2,blue\n")
    # a label file whose columns say nothing
    layouts.save_image(root / "columns" / "a.png", "red")
    (root / "columns" / "labels.csv").write_text("first,second,third\na.png,red,x\n")
    # captions of images that are not there
    (root / "no_images").mkdir()
    (root / "no_images" / "captions.csv").write_text("image,caption\ngone1.jpg,a thing\ngone2.jpg,another\n")
    (root / "empty_captions").mkdir()
    (root / "empty_captions" / "captions.csv").write_text("\n")
    return root


BAD_INPUTS = [
    # finetune: data
    ("finetune lenet5 --data {w}/missing --out {out}", "no such folder"),
    ("finetune lenet5 --data {w}/empty --out {out}", "has no class subfolders"),
    ("finetune lenet5 --data {w}/notes.txt --out {out}", "is a file: a data folder holds"),
    ("finetune lenet5 --data {w}/missing_files --out {out}", "none of the 2 images labels.csv names were found"),
    ("finetune lenet5 --data {w}/columns --out {out}", "cannot tell which column holds the labels"),
    ("finetune lenet5 --data {w}/empty --labels {w}/missing.csv --out {out}", "no such labels file"),
    ("finetune lenet5 --data {w}/empty --labels {w}/binary.csv --out {out}", "is not UTF-8 text"),
    ("finetune lenet5 --data builtin:zoo_shapes/tiny --labels {w}/notes.txt", "--labels names the labels of a folder"),
    ("finetune lenet5 --data tfds:no_such_dataset --out {out}", "unknown TFDS dataset"),
    # finetune: settings, weights, run folders
    ("finetune lenet5 --config {w}/missing.json", "no config file at"),
    ("finetune lenet5 --config {w}/bad.json", "is not a valid JSON config file"),
    ("finetune lenet5 --config {w}/captioning_run/config.json", "settings of a captioning run"),
    ("finetune lenet5 --data {w}/colours --weights {w}/missing.keras --out {out}", "no such file, and lenet5 has no weights of that name"),
    ("finetune lenet5 --data {w}/colours --weights {w}/empty.keras --out {out}", "is not a whole .keras archive"),
    ("finetune lenet5 --data {w}/colours --weights {w}/broken.keras --out {out}", "is not a whole .keras archive"),
    ("finetune lenet5 --data {w}/colours --weights {w}/notes.txt --out {out}", "is not a weights file"),
    ("finetune lenet5 --resume --out {w}/captioning_run", "`zoo finetune captioner`"),
    ("finetune lenet5 --resume --out {w}/empty", "no config file at"),
    ("finetune lenet5 --epochs many", "Invalid value for '--epochs'"),
    # the captioner's data
    ("finetune captioner --data {w}/empty --out {out}", "has no caption file"),
    ("finetune captioner --data {w}/notes.txt --out {out}", "cannot tell its format from its first line 'hello'"),
    ("finetune captioner --data {w}/no_images --out {out}", "none of the 2 images"),
    ("finetune captioner --data {w}/empty_captions --out {out}", "captions.csv is empty"),
    ("finetune captioner --resume --out {w}/empty", "no config file at"),
    # what a trained model is expected to be
    ("evaluate {w}/missing", "no such run folder or .keras file"),
    ("evaluate {w}/empty", "neither a .keras file nor a run folder"),
    ("evaluate {w}/serving/lenet5", "is a SavedModel export"),
    ("evaluate {w}/broken.keras", "is not a whole .keras archive"),
    ("evaluate {w}/features.keras", "is not a classifier"),
    ("predict {w}/captioning_run {w}/red.png", "is a captioning model"),
    ("predict {w}/lenet5.keras {w}/missing.png --labels {w}/names.txt", "none of the images could be read"),
    ("predict {w}/lenet5.keras {w}/notes.txt --labels {w}/names.txt", "none of the images could be read"),
    ("predict {w}/features.keras {w}/red.png", "is not a classifier"),
    ("predict {w}/empty.keras {w}/red.png", "is not a whole .keras archive"),
    ("predict {w}/lenet5.keras {w}/red.png --output {w}/out.txt", "--output must end in .csv or .json"),
    ("export {w}/serving/lenet5 --out {w}/again", "is a SavedModel export"),
    ("export {w}/notes.txt --out {w}/again", "neither a .keras file nor a run folder"),
    ("caption {w}/lenet5.keras {w}/red.png", "is a classification model"),
    ("caption {w}/captioning_run {w}/red.png", "holds no trained captioner"),
    ("caption {w}/captioning_run {w}/red.png --beam 0", "Invalid value for '--beam'"),
    ("ensemble {w}/lenet5.keras {w}/captioning_run --out {w}/e", "is a captioning run: ensembles average classifiers"),
    ("import resnet18 --weights {w}/missing.h5 --out {w}/x.keras", "no such weights file"),
    ("info no_such_model", "unknown model"),
    ("tune lenet5 --data {w}/notes.txt --out {w}/search", "is a file: a data folder holds"),
]


@pytest.mark.parametrize("command, message", BAD_INPUTS, ids=[f"{number}-{command.split()[0]}" for number, (command, _) in enumerate(BAD_INPUTS)])
def test_a_bad_input_is_one_line_on_stderr(command, message, walk, tmp_path, capsys):
    capsys.readouterr()
    code = main(command.format(w=walk, out=tmp_path / "out").split())
    stderr = capsys.readouterr().err
    assert code != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
    assert message in lines[0]


def test_the_real_command_prints_only_that_line(walk):
    """In a process of its own: no traceback and no TensorFlow start-up chatter beside the error."""
    result = subprocess.run([sys.executable, "-m", "finetune", "finetune", "lenet5", "--data", str(walk / "columns"),
                             "--out", str(walk / "out")], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "ZOO_TF_VERBOSE": ""})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: {walk / 'columns' / 'labels.csv'}: cannot tell which column holds the labels (columns: first, "
        f"second, third); name it `label` or `class`"]
