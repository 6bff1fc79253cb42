"""Fixtures shared by test files."""

import pytest


@pytest.fixture(scope="session")
def shapes_data_dir(tmp_path_factory):
    """A TFDS data_dir holding the built-in zoo_shapes/tiny, generated once per session (no network)."""
    import tensorflow_datasets as tfds

    import finetune.datasets  # noqa: F401  (registers the built-in builders)

    data_dir = str(tmp_path_factory.mktemp("tfds"))
    tfds.builder("zoo_shapes/tiny", data_dir=data_dir).download_and_prepare()
    return data_dir
