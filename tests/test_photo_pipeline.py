"""Photo folders: crops drawn on the stored image and decoded where they are, start-up from headers
(indexed once, reused), damaged files found as they are read and named, and the training stream on
tf.data service workers."""

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from finetune.data import decoding, file_index, load_data
from finetune.data.decoding import decode_cropped, decode_for_evaluation, random_window
from finetune.training.classification import finetune
from finetune.training.config import FinetuneConfig
from zoo.eval_transform import EvalTransform
from zoo.layers import eval_transform

rng = np.random.default_rng(0)


def photo(path: Path, width: int, height: int, quality: int = 90) -> Path:
    """A smooth JPEG (noise upscaled), which compresses like a photograph."""
    path.parent.mkdir(parents=True, exist_ok=True)
    small = rng.integers(0, 255, (max(height // 16, 2), max(width // 16, 2), 3), dtype=np.uint8)
    Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC).save(path, quality=quality)
    return path


def test_random_windows_follow_random_resized_crop():
    """Areas in the range, aspect ratios in 3/4..4/3, inside the image; the fallback of a thin image
    is its largest centred window of an allowed ratio."""
    windows = np.stack([random_window(tf.constant([seed, 7], tf.int64), 375, 500, (0.08, 1.0)).numpy()
                        for seed in range(200)])
    top, left, height, width = windows.T
    area = height * width / (375 * 500)
    assert (top >= 0).all() and (left >= 0).all() and (top + height <= 375).all() and (left + width <= 500).all()
    assert area.min() >= 0.08 - 0.01 and area.max() <= 1.0 and area.min() < 0.2 and area.max() > 0.8
    ratio = width / height
    assert ratio.min() >= 0.74 and ratio.max() <= 1.35
    fallback = random_window(tf.constant([1, 2], tf.int64), 10, 1000, (0.99, 1.0)).numpy()
    assert fallback.tolist() == [0, 493, 10, 13]  # 10 high, 4/3 of that wide, centred


def test_a_crop_decoded_from_a_jpeg_window_matches_cropping_the_decoded_photo(tmp_path):
    contents = tf.constant(photo(tmp_path / "big.jpg", 2000, 1500).read_bytes())
    whole = tf.io.decode_jpeg(contents, channels=3)
    seed = tf.constant([3, 4], tf.int64)
    window = random_window(seed, 1500, 2000, (0.5, 1.0))
    assert min(window.numpy()[2:]) >= 8 * 64  # so decoded at 1/8 scale, the window on that scale's grid
    top, left, height, width = 8 * decoding.scaled_window(window, 8, 1500, 2000).numpy()
    expected = decoding.resize_to(whole[top:top + height, left:left + width], (64, 64)).numpy().astype(int)
    got = decode_cropped(contents, (64, 64), seed, (0.5, 1.0)).numpy().astype(int)
    assert got.shape == (64, 64, 3)
    assert np.abs(got - expected).mean() < 3.0  # 8x8 DCT averaging vs an antialiased resize
    png = tf.constant(tf.io.encode_png(whole[:300, :400]).numpy())  # other formats: decoded whole, same window
    top, left, height, width = random_window(seed, 300, 400, (0.5, 1.0)).numpy()
    expected = decoding.resize_to(whole[top:top + height, left:left + width], (32, 32)).numpy()
    np.testing.assert_array_equal(decode_cropped(png, (32, 32), seed, (0.5, 1.0)).numpy(), expected)


def test_the_evaluation_window_decodes_exactly_what_the_transform_reads(tmp_path):
    transform = EvalTransform(resize_mode="shorter", resize_size=256, crop_size=224)
    for width, height in ((500, 375), (375, 500), (640, 427)):
        contents = tf.constant(photo(tmp_path / f"{width}.jpg", width, height).read_bytes())
        whole = tf.io.decode_jpeg(contents, channels=3)
        expected = eval_transform.apply(whole, transform, (224, 224)).numpy()
        np.testing.assert_array_equal(decode_for_evaluation(contents, transform, (224, 224)).numpy(), expected)
    contents = tf.constant(photo(tmp_path / "large.jpg", 2400, 1800).read_bytes())  # decoded at 1/2... of it
    expected = eval_transform.apply(tf.io.decode_jpeg(contents, channels=3), transform, (224, 224)).numpy()
    difference = np.abs(decode_for_evaluation(contents, transform, (224, 224)).numpy() - expected)
    assert difference.mean() < 1.0 and np.percentile(difference, 99) <= 4


def test_a_truncated_jpeg_among_5000_files_trains_and_the_run_names_and_counts_it(tmp_path, caplog):
    data = tmp_path / "photos"
    small = [Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)) for _ in range(10)]
    encoded = []
    for image in small:
        buffer = tmp_path / "one.jpg"
        image.save(buffer, quality=90)
        encoded.append(buffer.read_bytes())
    for index in range(5000):
        folder = data / f"class{index % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index:04d}.jpg").write_bytes(encoded[index % len(encoded)])
    damaged = data / "class1" / "0777.jpg"
    damaged.write_bytes(encoded[0][:-200])  # headers whole, the end of the scan and its end marker gone
    config = FinetuneConfig(model="lenet5", data=str(data), epochs=1, batch_size=256, augment="light",
                            cache=False, image_size=32)
    with caplog.at_level("WARNING"):
        result = finetune(config, out=tmp_path / "run", verbose=0)
    assert "0777.jpg (cut short)" in caplog.text and "epoch 1" in caplog.text
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["unreadable_files"] == {"count": 1, "files": [str(damaged)], "found_in_training": 1}
    assert result.metrics["train_examples"] + 1000 == 5000 and len(result.history) == 1


def test_headers_are_indexed_once_and_reread_only_for_changed_files(tmp_path, monkeypatch):
    paths = [str(photo(tmp_path / f"{index}.jpg", 40 + index, 30)) for index in range(6)]
    opened = []
    real = file_index.read_header
    monkeypatch.setattr(file_index, "read_header", lambda path: opened.append(path) or real(path))
    first = file_index.headers(paths, key=str(tmp_path))
    assert len(opened) == 6 and [header.width for header in first] == [40, 41, 42, 43, 44, 45]
    assert {header.format for header in first} == {"JPEG"}
    opened.clear()
    assert file_index.headers(paths, key=str(tmp_path)) == first and opened == []  # the index, no file opened
    photo(Path(paths[2]), 90, 60)
    os.utime(paths[2], ns=(1, 1))  # a new size and modification time
    again = file_index.headers(paths, key=str(tmp_path))
    assert opened == [paths[2]] and (again[2].width, again[2].height) == (90, 60)


@pytest.fixture
def data_service():
    """A tf.data service dispatcher and two workers, in this process, on loopback."""
    service = tf.data.experimental.service
    dispatcher = service.DispatchServer(service.DispatcherConfig(port=0))
    address = dispatcher.target.split("://")[1]
    # Heartbeats every 0.1 s rather than 30: a stopping worker waits for its next one, and a test
    # should not wait seconds for it.
    workers = [service.WorkerServer(service.WorkerConfig(dispatcher_address=address, heartbeat_interval_ms=100))
               for _ in range(2)]
    yield dispatcher.target
    for worker in workers:
        worker.stop()
    dispatcher.stop()


def flat_images(root: Path, count: int) -> Path:
    """Class folders of flat PNGs, each of its own grey level: an example is known by its pixels."""
    for index in range(count):
        folder = root / f"c{index % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((12, 10, 3), index * 4, np.uint8)).save(folder / f"{index}.png")
    return root


def grey_levels(stream) -> list[int]:
    return sorted(int(value) for images, _ in stream for value in images.numpy()[:, 0, 0, 0])


def test_the_training_stream_on_data_service_workers_sees_every_example_once_an_epoch(tmp_path, data_service):
    root = flat_images(tmp_path / "flat", 60)
    options = dict(image_size=(8, 8, 3), batch_size=5, validation_fraction=0.2, seed=3)
    remote = load_data(str(root), data_service=data_service, random_crop=(0.5, 1.0), random_flip=True, **options)
    local = load_data(str(root), **options)
    expected = grey_levels(local.train)
    assert len(expected) == 48 and len(set(expected)) == 48
    assert grey_levels(remote.train) == expected  # the whole training split once, none of validation
    config = FinetuneConfig(model="lenet5", data=str(root), epochs=1, batch_size=16, image_size=32,
                            data_service=data_service, augment="standard")
    result = finetune(config, out=tmp_path / "run", verbose=0)
    assert len(result.history) == 1 and math.isfinite(result.history[0]["loss"])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data_service"] == data_service
