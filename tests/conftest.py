"""Fixtures shared by test files."""

import urllib.error

import pytest

from finetune.data.datasets import BUILTIN_DATASETS


@pytest.fixture(autouse=True)
def _image_index_cache(monkeypatch, tmp_path_factory):
    """The kit's header index of data folders (`finetune.data.file_index`) in a folder of the test
    session, never in the user's cache."""
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "zoo-cache"))


@pytest.fixture(scope="session")
def shapes_data_dir(tmp_path_factory):
    """A TFDS data_dir holding the built-in zoo_shapes/tiny, generated once per session (no network)."""
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    BUILTIN_DATASETS["zoo_shapes"](config="tiny", data_dir=data_dir).download_and_prepare()
    return data_dir


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty Keras cache in tmp_path, and any download attempt fails as it does without network."""
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr("keras.src.utils.file_utils.urlretrieve", refuse)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return tmp_path / "keras_home" / "models"
