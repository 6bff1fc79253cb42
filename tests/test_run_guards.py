"""Runs never lose finished work, and bad values are refused before anything starts.

Each case walks a command (in process, through the CLI's own `main`) with a bad input and checks:
a non-zero exit, one line on stderr, no traceback, and an earlier run's files left as they were.
"""

import errno
import hashlib
import json
import os
import shutil
import signal
import types
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from finetune import files
from finetune.captioning import train_captioner
from finetune.cli import main
from finetune.serving import export as export_module
from finetune.serving.evaluation import evaluate_source
from finetune.training import runfolder
from finetune.training.classification import finetune
from finetune.training.config import FinetuneConfig
from finetune.training.runfolder import RunFolder

COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 70, 230)}
RUN = ["--image-size", "32", "--channels", "3", "--batch-size", "8", "--seed", "1", "--quiet"]


def make_folder(root: Path, per_class: int = 8, names=None) -> Path:
    rng = np.random.default_rng(0)
    for name, colour in zip(names or COLOURS, COLOURS.values()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            image = rng.integers(0, 90, (32, 32, 3), dtype=np.uint8)
            image[8:24, 8:24] = colour
            Image.fromarray(image).save(root / name / f"{index}.png")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("colours"))


@pytest.fixture(scope="module")
def finished_run(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "done"
    assert main(["finetune", "lenet5", "--data", str(folder), "--epochs", "2", "--out", str(out), *RUN]) == 0
    return out


def fingerprint(folder: Path) -> dict:
    """Every file of a folder and a hash of its bytes (hidden files aside)."""
    return {str(path.relative_to(folder)): hashlib.sha1(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file() and not path.name.startswith(".")}


def refused(capsys, argv, *phrases) -> str:
    """Runs `zoo ARGV`, expects a one-line error without a traceback that says each phrase."""
    code = main([str(arg) for arg in argv])
    error = capsys.readouterr().err.strip()
    assert code != 0, f"zoo {' '.join(map(str, argv))} exited 0"
    assert len(error.splitlines()) == 1 and error.startswith("Error: ") and "Traceback" not in error, error
    for phrase in phrases:
        assert phrase in error, (phrase, error)
    return error


# -- a run folder is owned --------------------------------------------------------------------------

def test_resume_without_checkpoints_is_refused_and_changes_nothing(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    shutil.rmtree(run / files.CHECKPOINTS)
    before = fingerprint(run)
    refused(capsys, ["finetune", "lenet5", "--out", run, "--resume", "--epochs", "4", "--quiet"],
            "records 2 epoch(s)", "no checkpoint", "another --out")
    assert fingerprint(run) == before


def test_a_second_writer_is_refused_naming_the_holder(folder, finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = fingerprint(run)
    holder = RunFolder.create(run, resume=True)  # another run is writing this folder
    try:
        refused(capsys, ["finetune", "lenet5", "--out", run, "--resume", "--epochs", "3", "--quiet"],
                f"process {os.getpid()}")
        refused(capsys, ["finetune", "lenet5", "--data", folder, "--out", run, *RUN], f"process {os.getpid()}")
    finally:
        holder.release()
    assert fingerprint(run) == before
    refused(capsys, ["finetune", "lenet5", "--data", folder, "--out", run, *RUN], "already holds a run", "--resume")


def test_a_run_that_failed_before_its_first_epoch_leaves_a_reusable_folder(folder, tmp_path, capsys):
    out = tmp_path / "run"
    refused(capsys, ["finetune", "lenet5", "--data", tmp_path / "no-such-folder", "--out", out, *RUN], "no such folder")
    assert main(["finetune", "lenet5", "--data", str(folder), "--epochs", "1", "--out", str(out), *RUN]) == 0
    assert [row["epoch"] for row in runfolder.read_history(out / files.HISTORY)] == ["1"]


def test_resume_applies_what_may_change_and_refuses_the_rest_by_name(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = fingerprint(run)
    refused(capsys, ["finetune", "lenet5", "--out", run, "--resume", "--lr", "0.5", "--quiet"],
            "lr=0.5 (the run has 0.003)", "epochs")
    assert fingerprint(run) == before


class Killed(BaseException):
    """What a kill at a given point of the epoch's end does to the rest of the run."""


def kill_after(monkeypatch, point: str, epoch: int) -> None:
    seen = {"count": 0}

    def die_after(original, matches):
        def wrapper(*args, **kwargs):
            result = original(*args, **kwargs)
            if matches(*args, **kwargs):
                seen["count"] += 1
                if seen["count"] == epoch:
                    raise Killed
            return result
        return wrapper

    if point == "checkpoint":
        monkeypatch.setattr(tf.train.CheckpointManager, "save", die_after(tf.train.CheckpointManager.save,
                                                                          lambda *args, **kwargs: True))
    elif point == "history":
        monkeypatch.setattr(RunFolder, "write_history", die_after(RunFolder.write_history, lambda *args: True))
    else:
        name = files.BEST if point == "best" else files.LAST
        monkeypatch.setattr(RunFolder, "save_model", die_after(RunFolder.save_model,
                                                               lambda folder, model, target: target == name))


def assert_consistent(run: Path, epochs: int) -> None:
    """history.csv, best.keras and metrics.json tell the same story."""
    history = runfolder.read_history(run / files.HISTORY)
    assert [int(row["epoch"]) for row in history] == list(range(1, epochs + 1))
    best_loss = min(float(row["val_loss"]) for row in history)
    metrics = json.loads((run / files.METRICS).read_text())
    assert metrics["epochs_completed"] == epochs
    np.testing.assert_allclose(metrics["validation"]["loss"], best_loss, rtol=1e-4)
    np.testing.assert_allclose(evaluate_source(run)["loss"], best_loss, rtol=1e-4)  # best.keras's own loss


@pytest.mark.parametrize("point, epoch", [("checkpoint", 2), ("history", 2), ("best", 1), ("last", 2)])
def test_killed_at_any_write_then_rerun_and_resumed_stays_consistent(folder, tmp_path, monkeypatch, capsys, point,
                                                                     epoch):
    config = FinetuneConfig(model="lenet5", data=str(folder), epochs=3, batch_size=8, image_size=32, channels=3,
                            seed=1, lr=3e-3)
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        kill_after(patch, point, epoch)
        with pytest.raises(Killed):
            finetune(config, out=run, verbose=0)
    assert not (run / files.METRICS).exists()
    # a plain rerun is refused and leaves the killed run as it was
    before = fingerprint(run)
    refused(capsys, ["finetune", "lenet5", "--data", folder, "--out", run, *RUN], "already holds a run")
    assert fingerprint(run) == before
    finetune(None, out=run, resume=True, verbose=0)
    assert_consistent(run, 3)
    finetune(None, out=run, resume=True, verbose=0)  # resuming a finished run changes nothing in its story
    assert_consistent(run, 3)


# -- every setting is validated up front ------------------------------------------------------------

@pytest.mark.parametrize("argv, phrase", [
    (["--image-size", "0"], "--image-size must be at least 32"),
    (["--image-size", "1"], "--image-size must be at least 32"),
    (["--label-smoothing", "5"], "--label-smoothing must be in [0, 1)"),
    (["--weight-decay", "-0.1"], "--weight-decay must be at least 0"),
    (["--clip-norm", "-1"], "--clip-norm must be above 0"),
    (["--early-stopping", "-2"], "--early-stopping must be at least 1"),
    (["--lr", "nan"], "--lr must be a number"),
    (["--dropout", "1"], "--dropout must be in [0, 1)"),
    (["--mode", "predict"], "--mode predict classifies with trained weights"),
    (["--weights", "missing.keras"], "no such file"),
    (["--head-epochs", "2", "--mode", "head"], "--head-epochs applies to --mode full"),
])
def test_bad_values_are_refused_before_any_folder_is_made(capsys, tmp_path, argv, phrase):
    out = tmp_path / "run"
    refused(capsys, ["finetune", "lenet5", "--out", out, *argv], phrase)
    assert not out.exists()


def test_a_bad_option_value_of_the_model_is_refused_before_any_folder_is_made(capsys, tmp_path):
    out = tmp_path / "run"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model": "alexnet", "model_options": {"towers": 3}}))
    refused(capsys, ["finetune", "alexnet", "--config", config, "--out", out], "towers must be 1 or 2")
    assert not out.exists()


@pytest.mark.parametrize("content, phrase", [
    (b"\xff\xfe not utf-8 \x80", "not a valid JSON config file"),
    (b"[1, 2, 3]", "holds a JSON list"),
    (b'{"lr": "fast"}', "--lr must be a number"),
    (b'{"task": "captioning"}', "use `zoo finetune captioner`"),
])
def test_config_files_of_the_wrong_type_or_encoding_are_clean_errors(capsys, tmp_path, content, phrase):
    config = tmp_path / "config.json"
    config.write_bytes(content)
    refused(capsys, ["finetune", "lenet5", "--config", config, "--out", tmp_path / "run"], phrase)


def test_a_reversed_learning_rate_range_is_refused(capsys):
    refused(capsys, ["lr-find", "lenet5", "--start-lr", "1", "--end-lr", "0.001"], "need 0 < start < end")


# -- data sanity --------------------------------------------------------------------------------------

def test_split_folders_are_matched_whatever_their_case(tmp_path):
    make_folder(tmp_path / "Train", per_class=4)
    make_folder(tmp_path / "VAL", per_class=2)
    result = finetune(FinetuneConfig(model="lenet5", data=str(tmp_path), epochs=1, batch_size=8, image_size=32,
                                     channels=3), verbose=0)
    assert result.class_names == sorted(COLOURS)
    assert result.metrics["validation"]["examples"] == 6


def test_evaluating_on_data_with_other_classes_says_which_differ(finished_run, tmp_path, capsys):
    other = make_folder(tmp_path / "other", per_class=2, names=["red", "green", "purple"])
    refused(capsys, ["evaluate", finished_run, "--data", other], "has purple, which", "predicts blue, which")


@pytest.fixture(scope="module")
def captioning_run(tmp_path_factory):
    images = np.random.default_rng(0).uniform(0, 255, (6, 32, 32, 3)).astype("float32")
    captions = tf.constant([["a red square", "a square"]] * 6)
    split = tf.data.Dataset.from_tensor_slices((images, captions))
    out = tmp_path_factory.mktemp("captions") / "run"
    train_captioner(data=types.SimpleNamespace(train=split, validation=split, test=split), out=out, epochs=1,
                    backbone="lenet5", image_size=32, batch_size=8, units=8, embedding_dim=8, num_samples=0,
                    verbose=0)
    return out


def test_a_captioning_run_given_to_classifier_commands_says_which_to_use(captioning_run, finished_run, tmp_path,
                                                                       capsys):
    image = tmp_path / "image.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    refused(capsys, ["predict", captioning_run, image], "captioning model", "zoo caption")
    refused(capsys, ["caption", finished_run, image], "classification model", "zoo predict")
    refused(capsys, ["ensemble", finished_run, captioning_run], "captioning run")
    refused(capsys, ["finetune", "lenet5", "--out", captioning_run, "--resume", "--quiet"],
            "settings of a captioning run", "zoo finetune captioner")


def test_a_truncated_model_file_is_called_damaged_not_missing(finished_run, tmp_path, capsys):
    damaged = tmp_path / "damaged.keras"
    damaged.write_bytes((finished_run / files.BEST).read_bytes()[:2000])
    image = tmp_path / "image.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    error = refused(capsys, ["predict", damaged, image], "truncated or damaged")
    assert "not found" not in error.lower()


# -- output problems are errors, and work already done is kept ------------------------------------

def test_an_output_place_under_a_file_is_refused_before_any_work(folder, finished_run, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    image = folder / "red" / "0.png"
    refused(capsys, ["finetune", "lenet5", "--data", folder, "--out", blocker / "run", *RUN], "is a file")
    refused(capsys, ["predict", finished_run, image, "--output", blocker / "p.csv"], "is a file")
    refused(capsys, ["export", finished_run, "--out", blocker / "serving"], "is a file")
    refused(capsys, ["import", "lenet5", "--weights", finished_run / files.BEST, "--out", blocker / "m.keras"],
            "is a file")


def full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_after_predicting_keeps_the_printed_results(finished_run, folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(files.os, "replace", full_disk)
    code = main(["predict", str(finished_run), str(folder / "red" / "0.png"), "--output", str(tmp_path / "p.csv")])
    captured = capsys.readouterr()
    assert code == 1 and "1. " in captured.out  # the predictions were printed first
    assert "No space left on device" in captured.err and "Traceback" not in captured.err
    assert not list(tmp_path.iterdir())  # no temporary file left behind


def test_lr_find_prints_its_result_before_the_plot_fails(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(files.os, "replace", full_disk)
    code = main(["lr-find", "lenet5", "--data", str(folder), "--steps", "12", "--plot", str(tmp_path / "lr.png"), *RUN[:-1]])
    captured = capsys.readouterr()
    assert code == 1 and "Suggested learning rate" in captured.out and "No space left" in captured.err


def test_import_never_overwrites_a_model(finished_run, tmp_path, capsys):
    existing = tmp_path / "model.keras"
    shutil.copyfile(finished_run / files.BEST, existing)
    before = existing.read_bytes()
    refused(capsys, ["import", "lenet5", "--weights", finished_run / files.BEST, "--out", existing], "exists")
    assert existing.read_bytes() == before


def test_sigterm_during_an_export_leaves_nothing_behind(finished_run, tmp_path, monkeypatch):
    def terminated(loaded, directory, top_k):
        (directory / "saved_model.pb").write_bytes(b"half")
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(export_module, "write_saved_model", terminated)
    with pytest.raises(SystemExit):
        main(["export", str(finished_run), "--out", str(tmp_path / "serving")])
    assert [path.name for path in (tmp_path / "serving").rglob("*")] == [finished_run.name]


def test_non_utf8_names_and_label_files_are_handled(finished_run, folder, tmp_path, capsys):
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9.png"))
    shutil.copyfile(folder / "red" / "0.png", odd)
    assert main(["predict", str(finished_run), str(odd), "--output", str(tmp_path / "p.json")]) == 0
    assert "caf\ufffd.png" in capsys.readouterr().out
    assert json.loads((tmp_path / "p.json").read_text())[0]["image"].endswith("caf\ufffd.png")
    labels = tmp_path / "labels.txt"
    labels.write_bytes(b"r\xe9d\ngreen\nblue\n")
    refused(capsys, ["predict", finished_run, odd, "--labels", labels], "not UTF-8")


def test_a_class_folder_name_that_is_not_utf8_trains(tmp_path):
    data = tmp_path / "data"
    make_folder(data, per_class=3)
    os.rename(bytes(data / "red"), bytes(data) + b"/r\xe9d")
    result = finetune(FinetuneConfig(model="lenet5", data=str(data), epochs=1, batch_size=8, image_size=32,
                                     channels=3), out=tmp_path / "run", verbose=0)
    assert "r\ufffdd" in result.class_names
    assert keras.saving.load_model(tmp_path / "run" / files.BEST, safe_mode=True) is not None
