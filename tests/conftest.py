"""Fixtures shared by test files."""

import pytest

from finetune.data.datasets import BUILTIN_DATASETS


@pytest.fixture(scope="session")
def shapes_data_dir(tmp_path_factory):
    """A TFDS data_dir holding the built-in zoo_shapes/tiny, generated once per session (no network)."""
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    BUILTIN_DATASETS["zoo_shapes"](config="tiny", data_dir=data_dir).download_and_prepare()
    return data_dir
