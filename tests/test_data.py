"""Data specs, pipelines and bad files, on small folders and the project's own TFDS builders."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from finetune.data import images as image_files
from finetune.data import pipeline
from finetune.data import load_captions, load_data, load_images, parse_spec, read_statistics
from zoo.errors import ZooError
from zoo.preprocessing import CAFFE

rng = np.random.default_rng(0)


def save(path, array=None, mode="RGB", size=20, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    if array is None:
        array = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    image = Image.fromarray(array)
    if mode != "RGB":
        image = image.convert(mode)
    image.save(path, format=fmt)
    return path


def make_classes(root, counts, colour_of=None):
    """Class folders of 20x20 PNGs: random noise, or a flat colour per class."""
    for name, count in counts.items():
        for index in range(count):
            array = None
            if colour_of is not None:
                array = np.broadcast_to(np.array(colour_of(name), np.uint8), (20, 20, 3)).copy()
            save(root / name / f"{index}.png", array)
    return root


def labels_of(dataset):
    return np.concatenate([labels.numpy() for _, labels in dataset])


def test_parse_spec():
    assert (parse_spec(None).kind, parse_spec(None).name) == ("builtin", "zoo_shapes")
    spec = parse_spec("tfds:zoo_shapes/tiny:train[:50%]")
    assert (spec.kind, spec.name, spec.split) == ("tfds", "zoo_shapes/tiny", "train[:50%]")
    assert str(spec) == "tfds:zoo_shapes/tiny:train[:50%]"
    assert parse_spec("builtin:zoo_shapes/64").name == "zoo_shapes/64"
    assert parse_spec("/some/folder").kind == "folder"
    for bad in ("tfds:", "builtin:/x", "tfds:a/b/c", "s3://bucket/images", "  "):
        with pytest.raises(ZooError, match="data spec"):
            parse_spec(bad)


def test_builtin_batches_are_sized_for_the_model(shapes_data_dir):
    bundle = load_data("builtin:zoo_shapes/tiny", image_size=(32, 32, 1), batch_size=16, data_dir=shapes_data_dir)
    images, labels = next(iter(bundle.train))
    assert images.shape == (16, 32, 32, 1) and images.dtype == tf.float32 and labels.dtype == tf.int32
    assert 0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 255
    assert bundle.num_classes == 10 and bundle.class_names[0] == "circle"
    assert list(bundle.sizes) == ["train", "validation", "test"]
    assert bundle.sizes["train"] + bundle.sizes["validation"] == 240 and bundle.sizes["test"] == 80
    assert len(labels_of(bundle.validation)) == bundle.sizes["validation"]
    assert bundle.description == "builtin:zoo_shapes/tiny (10 classes; train 192, validation 48, test 80)"


def test_tfds_spec_reaches_the_same_builder_offline(shapes_data_dir):
    bundle = load_data("tfds:zoo_shapes/tiny:test", image_size=(64, 64, 3), batch_size=8, download=False,
                       data_dir=shapes_data_dir, label_mode="categorical")
    images, labels = next(iter(bundle.train))
    assert images.shape == (8, 64, 64, 3) and labels.shape == (8, 10)
    np.testing.assert_allclose(labels.numpy().sum(axis=1), 1.0)
    assert bundle.sizes["train"] + bundle.sizes["validation"] == 80 and bundle.test is None


def test_data_dir_comes_from_the_environment(shapes_data_dir, monkeypatch):
    monkeypatch.setenv("ZOO_DATA_DIR", shapes_data_dir)
    bundle = load_data("tfds:zoo_shapes/tiny", image_size=(32, 32, 3), download=False, max_examples=10)
    assert bundle.sizes == {"train": 10, "validation": 10, "test": 10}


def test_small_tfds_sources_are_read_from_disk_once(shapes_data_dir, tmp_path):
    data_dir = tmp_path / "copy"
    shutil.copytree(shapes_data_dir, data_dir)
    bundle = load_data("tfds:zoo_shapes/tiny", image_size=(32, 32, 3), data_dir=str(data_dir), download=False)
    first = sorted(labels_of(bundle.train))
    for record in data_dir.rglob("*.tfrecord*"):
        record.unlink()
    assert sorted(labels_of(bundle.train)) == first  # the second epoch came from memory


def test_download_off_with_nothing_prepared_is_a_clear_error(tmp_path):
    with pytest.raises(ZooError, match="not prepared.*tfds build zoo_shapes/tiny"):
        load_data("tfds:zoo_shapes/tiny", image_size=(32, 32, 3), download=False, data_dir=str(tmp_path))


def test_unknown_names_and_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(ZooError, match="Did you mean zoo_shapes"):
        load_data("builtin:zoo_shape", image_size=(32, 32, 3))
    with pytest.raises(ZooError, match="Did you mean zoo_shapes"):
        load_data("tfds:zoo_shapez", image_size=(32, 32, 3))
    with pytest.raises(ZooError, match="tfds:mnist"):
        load_data("mnist", image_size=(32, 32, 3))
    with pytest.raises(ZooError, match="no config 'huge'; its configs: 32, 64"):
        load_data("tfds:zoo_shapes/huge", image_size=(32, 32, 3), data_dir=str(tmp_path))
    with pytest.raises(ZooError, match="no class labels.*load_captions"):  # checked before generating anything
        load_data("builtin:zoo_shape_captions", image_size=(32, 32, 3), data_dir=str(tmp_path))
    with pytest.raises(ZooError, match="has no captions"):
        load_captions("tfds:zoo_shapes", image_size=32, data_dir=str(tmp_path))
    for bad in ({"image_size": (32, 32, 2)}, {"image_size": (32, 32)}, {"image_size": (32, 32, 3), "label_mode": "x"}):
        with pytest.raises(ZooError):
            load_data(str(tmp_path), **bad)


def test_folder_with_splits_gets_preprocessing_in_bgr(tmp_path):
    colours = {"orange": (200, 100, 30), "teal": (20, 150, 160)}
    for split in ("train", "val", "test"):
        make_classes(tmp_path / split, {"orange": 6, "teal": 6}, colour_of=colours.get)
    bundle = load_data(str(tmp_path), image_size=(16, 16, 3), batch_size=4, preprocessing=CAFFE, shuffle_buffer=0)
    assert bundle.class_names == ["orange", "teal"] and bundle.sizes == {"train": 12, "validation": 12, "test": 12}
    images, labels = next(iter(bundle.test))
    rgb = np.array([colours[bundle.class_names[label]] for label in labels.numpy()], np.float32)
    expected = rgb[:, ::-1] - np.array(CAFFE.mean)  # caffe: BGR, minus the BGR ImageNet mean
    np.testing.assert_allclose(images.numpy()[:, 5, 5, :], expected, atol=1e-3)


def test_gray_models_get_one_channel_from_colour_folders(tmp_path):
    make_classes(tmp_path, {"a": 3, "b": 3}, colour_of=lambda name: (255, 255, 255) if name == "a" else (0, 0, 0))
    bundle = load_data(str(tmp_path), image_size=(32, 32, 1), validation_fraction=0.34, shuffle_buffer=0)
    images, labels = next(iter(bundle.train))
    assert images.shape[1:] == (32, 32, 1)
    np.testing.assert_allclose(images.numpy().max(axis=(1, 2, 3)), np.where(labels.numpy() == 0, 255, 0), atol=1)


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


def test_training_order_comes_from_the_seed_and_changes_every_epoch(shapes_data_dir):
    def bundle(seed):
        return load_data("builtin:zoo_shapes/tiny", image_size=(32, 32, 3), batch_size=200, seed=seed,
                         data_dir=shapes_data_dir)

    first = bundle(3)
    epoch_one, epoch_two = labels_of(first.train), labels_of(first.train)
    assert sorted(epoch_one) == sorted(epoch_two) and not np.array_equal(epoch_one, epoch_two)
    np.testing.assert_array_equal(labels_of(bundle(3).train), epoch_one)
    assert not np.array_equal(labels_of(bundle(4).train), epoch_one)


def test_augmentation_touches_training_batches_only_and_cache_keeps_it_random(tmp_path):
    make_classes(tmp_path, {"a": 8, "b": 8})

    def noise(images, labels):
        return images + tf.random.uniform(tf.shape(images), 0, 1000.0), labels

    plain = load_data(str(tmp_path), image_size=(8, 8, 3), batch_size=32, shuffle_buffer=0)
    bundle = load_data(str(tmp_path), image_size=(8, 8, 3), batch_size=32, augment=noise, cache=True,
                       shuffle_buffer=0)
    epochs = iter(bundle.train.repeat())  # as training reads it: one batch per epoch here
    first, second = (next(epochs)[0].numpy() for _ in range(2))
    assert first.max() > 255 and not np.array_equal(first, second)
    np.testing.assert_array_equal(next(iter(bundle.validation))[0], next(iter(plain.validation))[0])


def test_max_examples_caps_every_split_and_keeps_the_classes_mixed(tmp_path):
    make_classes(tmp_path, {"a": 10, "b": 10, "c": 10})
    bundle = load_data(str(tmp_path), image_size=(8, 8, 3), max_examples=6, validation_fraction=0.5)
    assert bundle.sizes == {"train": 6, "validation": 6}
    assert len(labels_of(bundle.train)) == 6 and len(set(labels_of(bundle.train))) > 1


def test_statistics_come_from_the_training_split_only(tmp_path):
    make_classes(tmp_path / "train", {"a": 4, "b": 4}, colour_of=lambda name: (100, 50, 200) if name == "a" else
                 (100, 150, 0))
    make_classes(tmp_path / "test", {"a": 4, "b": 4}, colour_of=lambda name: (250, 250, 250))
    make_classes(tmp_path / "val", {"a": 2, "b": 2}, colour_of=lambda name: (0, 0, 0))
    bundle = load_data(str(tmp_path), image_size=(8, 8, 3))
    statistics = bundle.statistics
    np.testing.assert_allclose(statistics["mean"], [100, 100, 100], atol=1e-3)
    np.testing.assert_allclose(statistics["std"], [0, 50, 100], atol=1e-3)
    # All the variance lies along (0, 1, 2)/sqrt(5) (green and blue move together, red is fixed).
    eigvec = np.asarray(statistics["pca_eigvec"])
    np.testing.assert_allclose(np.abs(eigvec[:, 0]), np.array([0, 1, 2]) / np.sqrt(5), atol=1e-6)
    assert statistics["pca_eigval"][0] > 0.1 and statistics["pca_eigval"][2] < 1e-9
    assert read_statistics(str(tmp_path), image_size=(8, 8, 3))["mean"] == statistics["mean"]


def test_class_weights_balance_an_imbalanced_folder(tmp_path):
    make_classes(tmp_path, {"common": 16, "rare": 4})
    bundle = load_data(str(tmp_path), image_size=(8, 8, 3), validation_fraction=0.25, seed=0)
    counts = np.bincount(labels_of(bundle.train), minlength=2)
    weights = bundle.class_weights
    np.testing.assert_allclose([weights[0], weights[1]], counts.sum() / (2 * counts))
    assert weights[1] > 2 * weights[0] and counts[0] > counts[1]


def test_bad_files_are_skipped_or_converted_and_reported(tmp_path, caplog):
    make_classes(tmp_path, {"a": 5, "b": 5})
    (tmp_path / "a" / "empty.jpg").write_bytes(b"")
    (tmp_path / "a" / "notes.png").write_text("not an image at all")
    whole = save(tmp_path / "b" / "whole.jpg", size=64, fmt="JPEG")
    (tmp_path / "b" / "truncated.jpg").write_bytes(whole.read_bytes()[:-300])
    whole.unlink()
    (tmp_path / "b" / "readme.txt").write_text("not an image extension: ignored")
    save(tmp_path / "a" / "gray.png", mode="L")
    save(tmp_path / "a" / "rgba.png", mode="RGBA")
    save(tmp_path / "b" / "palette.gif", mode="P", fmt="GIF")
    save(tmp_path / "b" / "bitmap.bmp", fmt="BMP")
    save(tmp_path / "b" / "one_bit.bmp", mode="1", fmt="BMP")  # PIL reads it, TensorFlow does not: converted
    save(tmp_path / "a" / "picture.jpg", fmt="WEBP")  # a WebP named .jpg: converted
    (tmp_path / "empty_class").mkdir()
    with caplog.at_level("WARNING"):
        bundle = load_data(str(tmp_path), image_size=(16, 16, 3), batch_size=4, validation_fraction=0.2)
    skipped = {path.split("/")[-1] for path in bundle.skipped}
    assert skipped == {"empty.jpg", "notes.png", "empty_class"}  # what headers tell, before training
    assert "Skipped 3 unreadable file(s)" in caplog.text and "notes.png (not an image)" in caplog.text
    assert bundle.class_names == ["a", "b"]  # the empty class folder is left out
    assert bundle.sizes["train"] + bundle.sizes["validation"] == 10 + 7  # the truncated JPEG is found when read
    seen = len(labels_of(bundle.train)) + len(labels_of(bundle.validation))
    assert seen == 16  # every readable file, and nothing fails mid-epoch
    assert [Path(path).name for path in bundle.unreadable.met()] == ["truncated.jpg"]


def test_a_file_that_breaks_after_the_check_is_dropped_not_fatal(tmp_path):
    make_classes(tmp_path, {"a": 4, "b": 4})
    bundle = load_data(str(tmp_path), image_size=(8, 8, 3), validation_fraction=0.25, shuffle_buffer=0)
    for path in (tmp_path / "a").iterdir():
        path.write_bytes(b"broken since the check")
    labels = labels_of(bundle.train)  # the broken class-a files are dropped, with a warning
    assert len(labels) > 0 and set(labels) == {1}


def test_very_large_images_are_read_from_a_shrunk_copy(tmp_path):
    huge = tmp_path / "huge.png"
    Image.new("RGB", (6000, 6000), (10, 200, 30)).save(huge)
    checked = image_files.check_files([str(huge)])
    assert checked.indices == [0] and checked.paths[0] != str(huge)
    with Image.open(checked.paths[0]) as copy:
        assert max(copy.size) <= image_files.SHRUNK_SIDE
    images, good, skipped = load_images([huge, tmp_path / "missing.jpg"], (32, 32, 3))
    assert images.shape == (1, 32, 32, 3) and good == [str(huge)]
    assert skipped == [(str(tmp_path / "missing.jpg"), "no such file")]
    np.testing.assert_allclose(images[0, 16, 16], [10, 200, 30], atol=1)


def test_load_images_applies_the_preprocessing(tmp_path):
    path = save(tmp_path / "x.png", np.full((40, 30, 3), (200, 100, 30), np.uint8))
    images, good, skipped = load_images([path], (24, 24, 3), preprocessing=CAFFE)
    assert good == [str(path)] and skipped == []
    np.testing.assert_allclose(images[0, 3, 3], np.array([30, 100, 200]) - np.array(CAFFE.mean), atol=1e-3)


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
    (tmp_path / "a_file.png").write_bytes(b"")
    with pytest.raises(ZooError, match="is a file"):
        load_data(str(tmp_path / "a_file.png"), image_size=(8, 8, 3))


def test_caption_folder_keeps_every_caption(tmp_path):
    save(tmp_path / "images" / "a.jpg", fmt="JPEG")
    save(tmp_path / "images" / "b.jpg", fmt="JPEG")
    (tmp_path / "captions.txt").write_text("a.jpg#0\ta red thing\na.jpg#1\tsomething red\nb.jpg#0\ta blue thing\n"
                                           "missing.jpg#0\tnobody\n")
    bundle = load_captions(str(tmp_path), image_size=24, validation_fraction=0.5, seed=0)
    examples = list(bundle.train) + list(bundle.validation)
    assert sorted(len(captions) for _, captions in examples) == [1, 2]
    assert all(image.shape == (24, 24, 3) and image.dtype == tf.float32 for image, _ in examples)
    assert bundle.skipped == ["missing.jpg"] and bundle.test is None


def test_caption_csv_rows_and_too_small_folders(tmp_path):
    save(tmp_path / "a.png")
    save(tmp_path / "b.png")
    (tmp_path / "captions.csv").write_text('image,caption\na.png,a thing\na.png,"a thing, again"\nb.png,another\n')
    bundle = load_captions(str(tmp_path), image_size=(16, 16, 1), validation_fraction=0.5)
    captions = sorted(c.decode() for _, refs in list(bundle.train) + list(bundle.validation) for c in refs.numpy())
    assert captions == ["a thing", "a thing, again", "another"]
    (tmp_path / "b.png").unlink()
    with pytest.raises(ZooError, match="too few"):
        load_captions(str(tmp_path), image_size=16)


class FakeCocoCaptions(tfds.core.GeneratorBasedBuilder):
    """coco_captions' layout in miniature: captions as a sequence of {id, text}, a "val" split."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        # DatasetInfo itself: dataset_info_from_configs reads files from the builder's package.
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3)),
            "captions": tfds.features.Sequence({"id": np.int64, "text": tfds.features.Text()}),
        }))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(6), "val": self._generate_examples(2)}

    def _generate_examples(self, count):
        for index in range(count):
            image = np.full((10 + index, 12, 3), 20 * index, np.uint8)
            yield index, {"image": image, "captions": [{"id": index, "text": f"caption {index}"},
                                                       {"id": 100 + index, "text": "another"}]}


class FakeDigits(tfds.core.GeneratorBasedBuilder):
    """mnist's layout in miniature: 1-channel images, features without supervised keys, no validation."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        # DatasetInfo itself: dataset_info_from_configs reads files from the builder's package.
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(28, 28, 1)),
            "label": tfds.features.ClassLabel(names=["zero", "one", "two"]),
        }))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(30), "test": self._generate_examples(9)}

    def _generate_examples(self, count):
        for index in range(count):
            yield index, {"image": np.full((28, 28, 1), 100 * (index % 3), np.uint8), "label": index % 3}


@pytest.fixture(scope="module")
def fake_tfds_dir(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("fake_tfds"))
    for builder in (FakeCocoCaptions, FakeDigits):
        builder(data_dir=data_dir).download_and_prepare()
    return data_dir


def test_tfds_captions_in_coco_layout_offline(fake_tfds_dir):
    bundle = load_captions("tfds:fake_coco_captions", image_size=16, data_dir=fake_tfds_dir, download=False)
    assert bundle.sizes == {"train": 6, "validation": 2} and bundle.test is None
    image, captions = next(iter(bundle.validation))
    assert image.shape == (16, 16, 3) and [c.decode() for c in captions.numpy()] == ["caption 0", "another"]


def test_tfds_gray_images_become_rgb_and_labels_follow(fake_tfds_dir):
    bundle = load_data("tfds:fake_digits", image_size=(32, 32, 3), data_dir=fake_tfds_dir, download=False,
                       batch_size=64, shuffle_buffer=0)
    assert bundle.class_names == ["zero", "one", "two"] and bundle.sizes == {"train": 24, "validation": 6, "test": 9}
    images, labels = next(iter(bundle.test))
    np.testing.assert_allclose(images.numpy()[:, 3, 3, :], np.repeat(100.0 * labels.numpy()[:, None], 3, axis=1))
    assert set(bundle.class_weights) == {0, 1, 2}
    assert abs(sum(bundle.class_weights[label] * count for label, count in
                   enumerate(np.bincount(labels_of(bundle.train), minlength=3))) - 24) < 1e-6


def test_small_datasets_are_cached_decoded_unless_told_otherwise(tmp_path, monkeypatch):
    """cache=None keeps decoded images in memory when they fit the budget: a second epoch then reads
    no file, so deleting the files after the first epoch changes nothing. Over the budget, or with
    cache=False, the second epoch reads the (now missing) files again."""
    def epoch_labels(bundle):
        try:
            return sorted(int(label) for _, labels in bundle.train for label in labels.numpy())
        except tf.errors.OpError:
            return None

    assert pipeline.decoded_bytes({"train": 6, "validation": 2}, (8, 8, 3)) == 8 * 8 * 8 * 3
    for name, cache, budget, expect_cached in (("auto", None, pipeline.AUTO_CACHE_BYTES, True),
                                               ("over-budget", None, 8 * 8 * 8 * 3 - 1, False),
                                               ("off", False, pipeline.AUTO_CACHE_BYTES, False)):
        monkeypatch.setattr(pipeline, "AUTO_CACHE_BYTES", budget)
        root = tmp_path / name
        for label in ("a", "b"):
            (root / label).mkdir(parents=True)
            for index in range(4):
                Image.fromarray(np.full((8, 8, 3), 40 * index, np.uint8)).save(root / label / f"{index}.png")
        bundle = pipeline.load_data(str(root), image_size=(8, 8, 3), batch_size=4, validation_fraction=0.25, cache=cache)
        first = epoch_labels(bundle)
        assert first is not None and len(first) == 6
        for path in root.rglob("*.png"):
            path.unlink()
        assert (epoch_labels(bundle) == first) == expect_cached, name
