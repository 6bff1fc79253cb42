"""Data specs, pipelines and bad files, on small folders and the project's own TFDS builders."""

import numpy as np
import pytest
from PIL import Image

from finetune.data import load_captions, load_data, parse_spec
from zoo.errors import ZooError
from zoo.preprocessing import CAFFE

rng = np.random.default_rng(0)


def save(path, array=None, mode="RGB", size=20, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    if array is None:
        array = rng.integers(0, 255, (size, size, 3 if mode != "L" else 1), dtype=np.uint8)
    image = Image.fromarray(array.squeeze() if mode == "L" else array)
    if mode not in ("RGB", "L"):
        image = image.convert(mode)
    image.save(path, format=fmt)
    return path


def make_classes(root, counts, value_of=None):
    for name, count in counts.items():
        for index in range(count):
            array = None
            if value_of is not None:
                array = np.full((20, 20, 3), value_of(name), dtype=np.uint8)
            save(root / name / f"{index}.png", array)
    return root


@pytest.fixture(scope="module")
def tiny_data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


def test_parse_spec():
    assert parse_spec(None).kind == "builtin" and parse_spec(None).name == "zoo_shapes"
    spec = parse_spec("tfds:zoo_shapes/tiny:train[:50%]")
    assert (spec.kind, spec.name, spec.split) == ("tfds", "zoo_shapes/tiny", "train[:50%]")
    assert parse_spec("/some/folder").kind == "folder"
    for bad in ("tfds:", "builtin:/x", "s3://bucket/images", "  "):
        with pytest.raises(ZooError):
            parse_spec(bad)


def test_builtin_batches_are_sized_for_the_model(tiny_data_dir):
    bundle = load_data("builtin:zoo_shapes/tiny", image_size=(32, 32, 1), batch_size=16, data_dir=tiny_data_dir)
    images, labels = next(iter(bundle.train))
    assert images.shape == (16, 32, 32, 1) and images.dtype == "float32"
    assert 0 <= float(np.min(images)) and float(np.max(images)) <= 255
    assert bundle.num_classes == 10 and set(bundle.sizes) == {"train", "validation", "test"}
    assert bundle.sizes["train"] + bundle.sizes["validation"] == 240 and bundle.sizes["test"] == 80
    assert sum(len(batch[1]) for batch in bundle.validation) == bundle.sizes["validation"]


def test_tfds_spec_reaches_the_same_builder_offline(tiny_data_dir):
    load_data("builtin:zoo_shapes/tiny", image_size=(32, 32, 3), data_dir=tiny_data_dir)  # prepares it
    bundle = load_data("tfds:zoo_shapes/tiny:test", image_size=(64, 64, 3), batch_size=8, download=False,
                       data_dir=tiny_data_dir)
    images, _ = next(iter(bundle.train))
    assert images.shape == (8, 64, 64, 3)
    assert bundle.sizes["train"] + bundle.sizes["validation"] == 80


def test_download_off_with_nothing_prepared_is_a_clear_error(tmp_path):
    with pytest.raises(ZooError, match="not prepared"):
        load_data("tfds:zoo_shapes/tiny", image_size=(32, 32, 3), download=False, data_dir=str(tmp_path))


def test_unknown_names_suggest_close_ones():
    with pytest.raises(ZooError, match="zoo_shapes"):
        load_data("builtin:zoo_shape", image_size=(32, 32, 3))
    with pytest.raises(ZooError, match="Did you mean"):
        load_data("tfds:zoo_shapez", image_size=(32, 32, 3))


def test_folder_with_splits_preprocessing_and_determinism(tmp_path):
    for split in ("train", "val", "test"):
        make_classes(tmp_path / split, {"dark": 6, "light": 6}, value_of=lambda name: 30 if name == "dark" else 220)
    bundle = load_data(str(tmp_path), image_size=(16, 16, 3), batch_size=4, preprocessing=CAFFE, shuffle_buffer=0)
    assert bundle.class_names == ["dark", "light"] and bundle.sizes == {"train": 12, "validation": 12, "test": 12}
    images, labels = next(iter(bundle.test))
    expected = np.array([30.0 if label == 0 else 220.0 for label in labels.numpy()])
    np.testing.assert_allclose(images.numpy()[:, 0, 0, :], expected[:, None] - np.array(CAFFE.mean)[None, :],
                               atol=1e-3)


def test_seeded_split_is_disjoint_and_repeatable(tmp_path):
    make_classes(tmp_path, {"a": 10, "b": 10})
    def split_of(seed):
        bundle = load_data(str(tmp_path), image_size=(8, 8, 3), batch_size=64, seed=seed, shuffle_buffer=0,
                           validation_fraction=0.25)
        train = {tuple(image.ravel()[:12]) for image in next(iter(bundle.train))[0].numpy()}
        validation = {tuple(image.ravel()[:12]) for image in next(iter(bundle.validation))[0].numpy()}
        return train, validation
    train, validation = split_of(1)
    assert len(validation) == 5 and len(train) == 15 and not train & validation
    assert split_of(1) == (train, validation)
    assert split_of(2)[1] != validation


def test_statistics_come_from_the_training_split_only(tmp_path):
    make_classes(tmp_path / "train", {"a": 4, "b": 4}, value_of=lambda name: 100)
    make_classes(tmp_path / "test", {"a": 4, "b": 4}, value_of=lambda name: 250)
    make_classes(tmp_path / "val", {"a": 2, "b": 2}, value_of=lambda name: 0)
    bundle = load_data(str(tmp_path), image_size=(8, 8, 3))
    np.testing.assert_allclose(bundle.statistics["mean"], [100, 100, 100], atol=1e-3)
    assert len(bundle.statistics["pca_eigval"]) == 3


def test_class_weights_balance_an_imbalanced_folder(tmp_path):
    make_classes(tmp_path, {"common": 12, "rare": 4})
    bundle = load_data(str(tmp_path), image_size=(8, 8, 3), validation_fraction=0.25, seed=0)
    labels = np.concatenate([batch_labels.numpy() for _, batch_labels in bundle.train])
    counts = np.bincount(labels, minlength=2)
    weights = bundle.class_weights
    np.testing.assert_allclose([weights[0], weights[1]], len(labels) / (2 * counts))
    assert weights[1] > weights[0]


def test_bad_files_are_skipped_and_reported(tmp_path):
    make_classes(tmp_path, {"a": 5, "b": 5})
    (tmp_path / "a" / "empty.jpg").write_bytes(b"")
    (tmp_path / "a" / "notes.png").write_text("not an image at all")
    good = save(tmp_path / "b" / "whole.jpg", size=64, fmt="JPEG").read_bytes()
    (tmp_path / "b" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    save(tmp_path / "a" / "gray.png", mode="L")
    save(tmp_path / "a" / "rgba.png", mode="RGBA")
    save(tmp_path / "b" / "palette.gif", mode="P", fmt="GIF")
    save(tmp_path / "b" / "bitmap.bmp", fmt="BMP")
    save(tmp_path / "b" / "large.jpg", size=3000, fmt="JPEG")
    save(tmp_path / "a" / "picture.webp", fmt="WEBP").rename(tmp_path / "a" / "picture.jpg")
    (tmp_path / "empty_class").mkdir()
    bundle = load_data(str(tmp_path), image_size=(16, 16, 3), batch_size=4, validation_fraction=0.2)
    skipped = {path.split("/")[-1] for path in bundle.skipped}
    assert skipped == {"empty.jpg", "notes.png", "truncated.jpg", "picture.jpg", "empty_class"}
    assert bundle.sizes["train"] + bundle.sizes["validation"] == 10 + 6  # 5 + 5 plain, 6 odd but readable
    seen = sum(int(labels.shape[0]) for _, labels in bundle.train) + sum(int(l.shape[0]) for _, l in bundle.validation)
    assert seen == 16  # every readable file, nothing crashes mid-epoch


def test_empty_and_one_class_folders_are_errors_before_training(tmp_path):
    with pytest.raises(ZooError, match="no such folder"):
        load_data(str(tmp_path / "missing"), image_size=(8, 8, 3))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ZooError, match="no class subfolders"):
        load_data(str(tmp_path / "empty"), image_size=(8, 8, 3))
    make_classes(tmp_path / "one", {"only": 4})
    (tmp_path / "one" / "other").mkdir()
    (tmp_path / "one" / "other" / "broken.jpg").write_bytes(b"junk")
    with pytest.raises(ZooError, match="at least two"):
        load_data(str(tmp_path / "one"), image_size=(8, 8, 3))


def test_caption_folder_keeps_every_caption(tmp_path):
    save(tmp_path / "images" / "a.jpg", fmt="JPEG")
    save(tmp_path / "images" / "b.jpg", fmt="JPEG")
    (tmp_path / "captions.txt").write_text("a.jpg#0\ta red thing\na.jpg#1\tsomething red\nb.jpg#0\ta blue thing\n"
                                           "missing.jpg#0\tnobody\n")
    bundle = load_captions(str(tmp_path), image_size=24, validation_fraction=0.5, seed=0)
    examples = list(bundle.train) + list(bundle.validation)
    assert sorted(len(captions) for _, captions in examples) == [1, 2]
    assert all(image.shape == (24, 24, 3) for image, _ in examples)
    assert bundle.skipped == ["missing.jpg (missing)"]
