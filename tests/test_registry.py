"""The registry and its public API."""

import subprocess
import sys

import pytest

import zoo
from zoo.registry import ModelSpec, register


def test_list_models_is_sorted_and_filters_with_fnmatch():
    names = zoo.list_models()
    assert names == sorted(names)
    assert zoo.list_models("resnet*v2") == ["resnet101v2", "resnet152v2", "resnet50v2"]
    assert set(zoo.list_models("vgg*")) == {f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")}
    assert {"lenet5", "alexnet", "googlenet", "resnet18", "resnet152"} <= set(names)


def test_unknown_name_suggests_the_closest():
    with pytest.raises(zoo.ZooError, match="Did you mean resnet50"):
        zoo.create("resnet5")


def test_duplicate_registration_is_refused():
    spec = zoo.info("lenet5")
    with pytest.raises(zoo.ZooError, match="already registered"):
        register(spec)


def test_every_spec_is_complete():
    for name in zoo.list_models():
        spec = zoo.info(name)
        assert isinstance(spec, ModelSpec) and spec.name == name
        assert spec.paper and spec.family and spec.num_params > 0
        assert spec.min_input_size <= min(spec.default_input_shape[:2])
        summary = spec.summary()
        assert summary["preprocessing"] and summary["default_input_shape"]


def test_unknown_option_and_bad_pooling_are_clear_errors():
    with pytest.raises(zoo.ZooError, match="no option"):
        zoo.create("lenet5", widht=2)
    with pytest.raises(zoo.ZooError, match="pooling"):
        zoo.create("lenet5", include_top=False, pooling="mean")


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "finetune", *args], capture_output=True, text=True, timeout=120)


def test_cli_list_shows_every_model():
    result = run_cli("list")
    assert result.returncode == 0, result.stderr
    for name in zoo.list_models():
        assert name in result.stdout
    assert "138,357,544" in result.stdout


def test_cli_info_unknown_model_fails_with_a_suggestion_and_no_traceback():
    result = run_cli("info", "resnet5")
    assert result.returncode != 0
    assert "Did you mean resnet50" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_info_prints_the_spec():
    result = run_cli("info", "lenet5")
    assert result.returncode == 0, result.stderr
    assert "61,706" in result.stdout and "LeCun" in result.stdout and "c5" in result.stdout
