"""The zoo_shape_captions builder: counts, features, determinism, and captions true to the drawn scene."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import tensorflow_datasets as tfds

from finetune.data.datasets import BUILTIN_DATASETS
from finetune.data.datasets import zoo_shape_captions as captions_module
from finetune.data.datasets.zoo_shape_captions import ZooShapeCaptions

SPLITS = ("train", "validation", "test")
SIZE_SYNONYMS = {"small": "small", "little": "small", "tiny": "small", "large": "large", "big": "large"}


def build(data_dir) -> dict[str, list[dict]]:
    builder = ZooShapeCaptions(config="tiny", data_dir=str(data_dir))
    builder.download_and_prepare()
    return {split: list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))) for split in SPLITS}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build(tmp_path_factory.mktemp("first"))


def _names(feature_names, indices):
    return [feature_names[index] for index in indices]


def _described(example):
    """Per caption its words, and the scene's objects as (size, colour, shape) in reading order."""
    objects = example["objects"]
    described = list(zip(_names(captions_module.SIZES, objects["size"]),
                         _names(list(captions_module.COLOURS), objects["colour"]),
                         _names(captions_module.SHAPES, objects["shape"])))
    return [captions_module.caption_words(caption.decode("utf-8")) for caption in example["captions"]], described


def test_registered_with_its_configs():
    assert BUILTIN_DATASETS["zoo_shape_captions"] is ZooShapeCaptions
    assert ZooShapeCaptions.name == "zoo_shape_captions"
    assert ZooShapeCaptions.BUILDER_CONFIGS[0].name == "64"  # the default
    assert {"64", "tiny"} <= {config.name for config in ZooShapeCaptions.BUILDER_CONFIGS}


def test_split_sizes_and_features(built):
    config = next(config for config in ZooShapeCaptions.BUILDER_CONFIGS if config.name == "tiny")
    expected = {"train": config.train_size, "validation": config.validation_size, "test": config.test_size}
    assert {split: len(examples) for split, examples in built.items()} == expected
    for examples in built.values():
        for example in examples:
            assert example["image"].shape == (config.image_size, config.image_size, 3)
            assert example["image"].dtype == np.uint8
            assert np.ptp(example["image"]) > 100  # shapes were drawn on the dark background
            assert len(example["captions"]) >= 5
            assert len(set(example["captions"])) >= 4
            assert 1 <= len(example["objects"]["shape"]) <= 3


def test_every_caption_names_every_drawn_shape(built):
    for example in built["train"] + built["test"]:
        captions, objects = _described(example)
        for words in captions:
            text = " ".join(words)
            for size, colour, shape in objects:
                assert f"{colour} {shape}" in text, (text, objects)
                # A size word before the colour, where the caption has one, is the drawn size's.
                position = next(index for index in range(len(words) - 1) if words[index:index + 2] == [colour, shape])
                said = words[position - 1] if position > 0 else None
                if said in SIZE_SYNONYMS:
                    assert SIZE_SYNONYMS[said] == size, (text, objects)


def test_relations_match_the_boxes(built):
    """"a X to the left of a Y" (and every other relation) holds between the drawn shapes' boxes, with room between."""
    checked = 0
    for example in built["train"]:
        boxes = example["objects"]["bbox"]  # ymin, xmin, ymax, xmax, in reading order
        if len(boxes) < 2:
            continue
        first, second = boxes[0], boxes[1]
        horizontal = second[1] >= first[3]  # the second starts right of where the first ends
        vertical = second[0] >= first[2]
        assert horizontal != vertical, boxes  # apart along exactly one axis
        text = " ".join(" ".join(words) for words in _described(example)[0])
        if horizontal:
            assert "left" in text and "above" not in text and "below" not in text
        else:
            assert "above" in text and "left" not in text and "right" not in text
        checked += 1
    assert checked > 0


def test_deterministic(built, tmp_path):
    again = build(tmp_path)
    for split in SPLITS:
        for first, second in zip(built[split], again[split], strict=True):
            np.testing.assert_array_equal(first["image"], second["image"])
            assert list(first["captions"]) == list(second["captions"])
    assert not np.array_equal(built["train"][0]["image"], built["test"][0]["image"])  # splits differ


def test_small_vocabulary_and_short_captions(built):
    vocabulary = set(captions_module.vocabulary())
    assert 25 <= len(vocabulary) <= 50
    seen = set()
    for examples in built.values():
        for example in examples:
            for words in _described(example)[0]:
                assert 3 <= len(words) <= captions_module.MAX_CAPTION_WORDS
                seen.update(words)
    assert seen <= vocabulary


def test_same_scenes_and_captions_at_every_resolution():
    small = captions_module.generate_example(0, "test", 3, 32, 5)
    large = captions_module.generate_example(0, "test", 3, 64, 5)
    assert small["captions"] == large["captions"]
    assert small["objects"]["shape"] == large["objects"]["shape"]
