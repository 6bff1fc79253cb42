"""Hostile PyTorch checkpoints (tests/hostile_pickles.py): each refused with one line naming the file,
nothing in it run, within bounded memory and time, through `zoo.create` and the `zoo` command; a
refused pickle changes nothing for the next checkpoint; weights of other float types still load."""

import os
import pickle

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import zoo  # noqa: E402
from finetune.cli import main  # noqa: E402
from hostile_files import MARKER, command_inputs, resnet18_arrays, run_case  # noqa: E402
from hostile_pickles import (  # noqa: E402
    POISONS, checkpoint, exec_payload, inst_payload, pickle_cases, resnet18_checkpoint, stack_global_payload,
    state_dict_pickle, subprocess_payload, system_payload,
)
from source_weights import FIXTURES  # noqa: E402
from zoo.weights.pytorch import read_pytorch_checkpoint  # noqa: E402

CASES = pickle_cases()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return command_inputs(tmp_path_factory.mktemp("data"))


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_hostile_checkpoint_is_refused_in_one_line_and_runs_nothing(case, data, tmp_path, capsys):
    run_case(case, tmp_path, *data, capsys, main)


@pytest.mark.parametrize("payload", [system_payload, subprocess_payload, exec_payload, stack_global_payload, inst_payload],
                         ids=["os.system", "subprocess.check_call", "builtins.exec", "STACK_GLOBAL posix.system", "INST"])
def test_the_payloads_do_run_under_a_plain_unpickler(payload, tmp_path):
    """The control for the marker checks above: pickle.loads runs each payload, the kit's loader none."""
    pickled = payload(tmp_path)
    pickle.loads(pickled)
    assert (tmp_path / MARKER).exists()
    (tmp_path / MARKER).unlink()
    with pytest.raises(zoo.ZooError, match="Nothing in it was run"):
        read_pytorch_checkpoint(str(checkpoint("zip", tmp_path / "payload.pth", pickled)))
    assert not (tmp_path / MARKER).exists()


def test_a_refused_poisoning_pickle_leaves_the_next_checkpoint_exact(tmp_path):
    """BUILD on an allowed name wrote into the shared storage types and the rebuild function, so
    every later checkpoint in the process loaded as int32 or failed; now each is refused and the
    allowed names are markers that nothing can change."""
    arrays = {"conv.weight": np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 3, 2, 2),
              "conv.bias": np.array([0.5, -0.25], np.float32), "steps": np.array(7, np.int64),
              "view": np.arange(12, dtype=np.float64).reshape(3, 4).T}
    valid = checkpoint("zip", tmp_path / "valid.pth", *state_dict_pickle(arrays))
    with np.load(FIXTURES / "pytorch" / "expected.npz") as expected:
        torch_arrays = {key: expected[key] for key in expected.files}
    for layout in ("zip", "legacy"):
        for label, poison in POISONS.items():
            with pytest.raises(zoo.ZooError, match="its pickle sets the state of"):
                read_pytorch_checkpoint(str(checkpoint(layout, tmp_path / f"poison-{layout}.pth", poison())))
            for path, wanted in ((valid, arrays), (FIXTURES / "pytorch" / "state_dict.pth", torch_arrays)):
                loaded = read_pytorch_checkpoint(str(path))
                assert list(loaded) == list(wanted), label
                for key, array in wanted.items():
                    assert loaded[key].dtype == array.dtype and np.array_equal(loaded[key], array), (label, key)
    model = zoo.create("resnet18", weights=str(resnet18_checkpoint(tmp_path / "resnet18.pth")), input_shape=(32, 32, 3))
    np.testing.assert_array_equal(model.get_layer("conv1_conv").kernel.numpy(),
                                  resnet18_arrays()["conv1.weight"].transpose(2, 3, 1, 0))


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_float16_and_float64_state_dicts_still_load_as_float32(dtype, tmp_path):
    path = resnet18_checkpoint(tmp_path / "resnet18.pth", dtype, layout="legacy")
    model = zoo.create("resnet18", weights=str(path), input_shape=(32, 32, 3))
    expected = resnet18_arrays()["layer1.0.conv1.weight"].astype(dtype).astype(np.float32).transpose(2, 3, 1, 0)
    np.testing.assert_array_equal(model.get_layer("conv2_block1_1_conv").kernel.numpy(), expected)
