"""The built-in datasets as TFDS builders: configs, determinism, features, offline loading."""

import itertools

import numpy as np
import pytest
import tensorflow_datasets as tfds

from finetune.data import load_captions
from finetune.data.datasets import BUILTIN_DATASETS, drawing, zoo_shapes
from finetune.data.datasets.zoo_shapes import ZooShapes

CONFIGS = {config.name: config for config in zoo_shapes.BUILDER_CONFIGS}


def test_builtins_are_registered_tfds_builders():
    for name, builder_class in BUILTIN_DATASETS.items():
        assert issubclass(builder_class, tfds.core.GeneratorBasedBuilder)
        assert tfds.builder_cls(name) is builder_class


def test_zoo_shapes_configs():
    default = ZooShapes.BUILDER_CONFIGS[0]
    assert default.name == "32" and default.image_size == 32 and len(default.classes) >= 10
    assert default.train_per_class * len(default.classes) >= 6000
    assert {CONFIGS[name].image_size for name in ("32", "64", "128", "224")} == {32, 64, 128, 224}
    source, target = set(CONFIGS["source"].classes), set(CONFIGS["target"].classes)
    assert len(source) == 6 and len(target) == 4 and not source & target
    assert CONFIGS["tiny"].train_per_class * len(CONFIGS["tiny"].classes) <= 300


@pytest.mark.parametrize("name", ["224", "target"])
def test_features_are_known_without_generating(name, tmp_path):
    builder = tfds.builder(f"zoo_shapes/{name}", data_dir=str(tmp_path))
    size = CONFIGS[name].image_size
    assert builder.info.features["image"].shape == (size, size, 3)
    assert builder.info.features["label"].names == list(CONFIGS[name].classes)
    assert not builder.is_prepared()


def test_generation_is_deterministic_per_example(tmp_path):
    def first_examples(split):
        builder = tfds.builder("zoo_shapes/tiny", data_dir=str(tmp_path))
        return list(itertools.islice(builder._generate_examples(split, 1), 10))

    train = first_examples("train")
    assert [key for key, _ in train] == list(range(10))
    assert [example["label"] for _, example in train] == list(zoo_shapes.CLASSES)
    assert train == first_examples("train")  # same PNG bytes
    assert [example["image"] for _, example in train] != [example["image"] for _, example in first_examples("test")]


def test_every_shape_has_its_own_outline():
    masks = {}
    for shape in zoo_shapes.CLASSES:
        canvas = drawing.MaskCanvas(64, 2)
        canvas.add(shape, (32, 32), 24)
        masks[shape] = canvas.alpha()[..., 0] > 0.5
    for first, second in itertools.combinations(masks, 2):
        overlap = (masks[first] & masks[second]).sum() / (masks[first] | masks[second]).sum()
        assert overlap < 0.9, (first, second)


def test_shapes_stand_out_in_gray():
    """The subject's colour differs in brightness from what is under it, so 1-channel models see it."""
    for index in range(20):
        rng = zoo_shapes.example_rng(0, "train", index)
        image = zoo_shapes.render_shape_image(rng, 32, zoo_shapes.CLASSES[index % 10]).astype(np.float32)
        gray = image @ np.array([0.299, 0.587, 0.114])
        assert gray.max() - gray.min() > 60


def test_prepared_data_loads_offline_with_tfds(shapes_data_dir):
    train, info = tfds.load("zoo_shapes/tiny", split="train", data_dir=shapes_data_dir, download=False,
                            try_gcs=False, with_info=True, as_supervised=True)
    assert {split: info.splits[split].num_examples for split in info.splits} == {"train": 240, "test": 80}
    images, labels = zip(*tfds.as_numpy(train))
    assert images[0].shape == (32, 32, 3) and images[0].dtype == np.uint8
    assert np.bincount(labels).tolist() == [24] * 10


def test_builtin_captions_load_unbatched_with_all_references(tmp_path):
    bundle = load_captions("builtin:zoo_shape_captions/tiny", image_size=48, data_dir=str(tmp_path))
    assert bundle.sizes == {"train": 40, "validation": 10, "test": 10}
    image, captions = next(iter(bundle.test))
    assert image.shape == (48, 48, 3) and image.dtype == "float32" and float(image.numpy().max()) <= 255
    assert captions.shape[0] >= 5 and captions.dtype == "string"
    words = {word for _, refs in bundle.train for caption in refs.numpy() for word in caption.decode().split()}
    assert 10 < len(words) <= 50
