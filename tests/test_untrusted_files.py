"""Hostile safetensors, Caffe, `.keras`, `.h5` and `.weights.h5` files (tests/hostile_formats.py):
each refused with one line naming the file, within bounded memory and time, through `zoo.create`
and the `zoo` command; HDF5 files never read another file; valid Keras weight files of every
format go through `zoo import` and `zoo finetune --weights`."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import zoo  # noqa: E402
from finetune.cli import main  # noqa: E402
from hostile_files import command_inputs, run_case, write  # noqa: E402
from hostile_formats import (  # noqa: E402
    FIRST_KERNEL, external_link, external_storage, format_cases, h5_variant, write_external_target,
)
from zoo.weights.files import load_model_file, save_legacy_weights  # noqa: E402

CASES = format_cases()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return command_inputs(tmp_path_factory.mktemp("data"))


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_hostile_file_is_refused_in_one_line(case, data, tmp_path, capsys):
    run_case(case, tmp_path, *data, capsys, main)


def test_an_h5_file_reading_another_file_is_refused_as_keras_refuses_it(tmp_path):
    """External storage makes a kernel's bytes those of any file (h5py reads them, the control);
    an external link makes it another HDF5 file's dataset. The zoo refuses both, as Keras does."""
    secret = write(tmp_path / "secret.bin", bytes(range(256)) * 4)
    stored = h5_variant(tmp_path / "stored.weights.h5", external_storage(secret))
    with h5py.File(stored, "r") as file:
        assert np.asarray(file[FIRST_KERNEL]).tobytes() == secret.read_bytes()[:600]
    linked = h5_variant(tmp_path / "linked.weights.h5", external_link(write_external_target(tmp_path / "target.h5")))
    with h5py.File(linked, "r") as file:
        assert np.all(np.asarray(file[FIRST_KERNEL]) == 7.0)
    model = zoo.create("lenet5", num_classes=3)
    for path, what in ((stored, r"keeps its data in another file \(.*secret\.bin\)"),
                       (linked, r"is an external link to .*target\.h5")):
        with pytest.raises(zoo.ZooError, match=what):
            zoo.create("lenet5", weights=str(path))
        with pytest.raises(ValueError, match="Not allowed"):
            model.load_weights(path)


@pytest.mark.parametrize("suffix", [".h5", ".weights.h5"])
def test_a_valid_h5_file_goes_through_import_and_finetune(suffix, data, tmp_path):
    """Both Keras weight formats, as zoo.create has always loaded them, through the commands that
    refused them because they looked for a weights record in them as in a .keras archive."""
    source = zoo.create("lenet5", num_classes=3)
    source.get_layer("c1").set_weights([np.full((5, 5, 1, 6), 0.01, "float32"), np.arange(6, dtype="float32")])
    path = tmp_path / f"lenet5{suffix}"
    if suffix == ".h5":
        save_legacy_weights(source, path)
    else:
        source.save_weights(path)
    out = tmp_path / "imported.keras"
    assert main(["import", "lenet5", "--weights", str(path), "--out", str(out)]) == 0
    imported = load_model_file(str(out))
    for layer in source.layers:
        for theirs, ours in zip(layer.get_weights(), imported.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(ours, theirs)
    colours, _ = data
    run = tmp_path / "run"
    assert main(["finetune", "lenet5", "--weights", str(path), "--data", str(colours), "--epochs", "1",
                 "--batch-size", "4", "--strategy", "one", "--out", str(run), "--quiet"]) == 0
    assert keras.saving.load_model(run / "best.keras").output_shape == (None, 3)
