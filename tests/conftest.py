"""Fixtures shared by test files."""

import pytest


@pytest.fixture(scope="session")
def shapes_data_dir(tmp_path_factory):
    """A TFDS data_dir holding the built-in zoo_shapes/tiny, generated once per session (no network)."""
    from finetune.datasets import BUILTIN_DATASETS

    data_dir = str(tmp_path_factory.mktemp("tfds"))
    BUILTIN_DATASETS["zoo_shapes"](config="tiny", data_dir=data_dir).download_and_prepare()
    return data_dir
