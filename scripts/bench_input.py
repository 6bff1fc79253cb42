"""The input pipeline alone, the pipeline under training, and whether the built-in shapes need a CNN.

    python scripts/bench_input.py            # 2000 JPEGs at 256x256, zoo_shapes/32, linear vs CNN
    python scripts/bench_input.py --quick    # fewer images, epochs and repeats
    python scripts/bench_input.py --write    # also write the section of BENCHMARKS.md
    python scripts/bench_input.py photos --torch-python /path/to/torch-venv/bin/python --write
    python scripts/bench_input.py photos --quick   # 1,000 photos and 10,000 links, one round: a smoke run

1. Images/s of `finetune.data.load_data` (decode, resize, preprocessing, batching) iterated with no
   model attached, on a folder of JPEGs and on builtin:zoo_shapes; and how long load_data itself
   takes (the folder's file checks, the built-in's generation when not yet prepared).
2. Training throughput fed by the real pipeline vs the same preprocessed batches held in memory,
   in alternating epochs (plain Keras `fit`, SGD): a ratio near 1 means the pipeline keeps the
   model fed.
3. Test accuracy of a linear model (softmax regression on pixels) and of LeNet-5 on zoo_shapes,
   trained the same way: the task should defeat the first and not the second.
4. `photos`: on 5,000 photo-size JPEGs (mostly 500x375 and 375x500, 1 in 50 at 4000x3000; made
   once under --work and reused), the images/s of the training stream (224x224, batch 64,
   random-resized-crop + flip, preprocessing) and of the validation stream (resize 256, centre
   crop 224), the time to the first batch and the peak memory of: the kit's load_data;
   image_dataset_from_directory with Keras layers; the usual tf.data reference; torchvision's
   ImageFolder + DataLoader (one worker per CPU; needs --torch-python). Each runs in a fresh
   process (`photos --worker NAME`, printing JSON), in alternating order over --rounds, medians.
   Then the kit's start-up (load_data to first batch) on 100,000 files (hard links to the photos),
   with its header index cold and reused (ZOO_CACHE_DIR under --work). The section is
   bench_input_photos_<machine kind>.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import benchmarks  # noqa: F401  (puts the project on sys.path)

# Nothing heavy at the top: the photos workers run in fresh processes, torchvision's in another
# interpreter that has no TensorFlow; each function imports what it uses.

BATCH = 32


def write_jpegs(root: Path, count: int, size: int, classes: int = 4) -> Path:
    """`count` smooth random JPEGs (noise upscaled, so they compress like photos) in class folders."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for index in range(count):
        folder = root / f"class{index % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        image = rng.integers(0, 255, (size // 8, size // 8, 3), dtype=np.uint8)
        Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR).save(folder / f"{index}.jpg", quality=90)
    return root


def preprocessing_for(model_name: str, channels: int):
    import zoo

    return zoo.info(model_name).preprocessing.for_channels(channels)


# -- 1. the pipeline alone --------------------------------------------------------------------------

def pipeline_alone(label, spec, image_size, model_name, epochs=2, **options) -> list:
    """[label, load_data seconds, images/s, images seen] for `epochs` passes over the training split."""
    from finetune.data import load_data

    started = time.perf_counter()
    bundle = load_data(spec, image_size=image_size, batch_size=BATCH,
                       preprocessing=preprocessing_for(model_name, image_size[-1]), **options)
    setup = time.perf_counter() - started
    for _ in bundle.train.take(2):  # warm up: threads, first file reads
        pass
    seen, started = 0, time.perf_counter()
    for _ in range(epochs):
        for images, _ in bundle.train:
            seen += int(images.shape[0])
    rate = seen / (time.perf_counter() - started)
    size = "x".join(str(value) for value in image_size)
    return [f"{label} -> {size}" + (" (cached)" if options.get("cache") else ""), f"{setup:.1f}", f"{rate:,.0f}", seen]


# -- 2. the pipeline under training -----------------------------------------------------------------

def pipeline_vs_memory(spec, model_name, image_size, repeats, max_examples=None, data_dir=None, cache=False) -> dict:
    """Seconds per training epoch fed by the pipeline and by the same batches in memory, alternating."""
    import keras
    import numpy as np
    import tensorflow as tf

    import zoo
    from finetune.data import load_data

    bundle = load_data(spec, image_size=image_size, batch_size=BATCH, data_dir=data_dir, max_examples=max_examples,
                       preprocessing=preprocessing_for(model_name, image_size[-1]), cache=cache)
    images, labels = [], []
    for batch_images, batch_labels in bundle.train:  # the same preprocessed examples, now in memory
        images.append(batch_images.numpy())
        labels.append(batch_labels.numpy())
    images, labels = np.concatenate(images), np.concatenate(labels)
    in_memory = tf.data.Dataset.from_tensor_slices((images, labels)).batch(BATCH).prefetch(tf.data.AUTOTUNE)
    keras.utils.set_random_seed(0)
    model = zoo.create(model_name, num_classes=bundle.num_classes, input_shape=image_size)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy")
    feeds = {"pipeline": bundle.train, "memory": in_memory}
    for feed in feeds.values():  # trace the train step and warm both feeds up
        model.fit(feed, epochs=1, verbose=0)
    times = {name: [] for name in feeds}
    for _ in range(repeats):
        for name, feed in feeds.items():
            started = time.perf_counter()
            model.fit(feed, epochs=1, verbose=0)
            times[name].append(time.perf_counter() - started)
    pipeline, memory = benchmarks.median(times["pipeline"]), benchmarks.median(times["memory"])
    source = spec if ":" in spec else "JPEG folder"
    return {"case": f"{model_name} {'x'.join(map(str, image_size))} on {source}" + (", cache=True" if cache else ""),
            "examples": len(images), "pipeline": pipeline, "memory": memory,
            "images_per_second": len(images) / pipeline, "ratio": memory / pipeline}


# -- 3. linear vs CNN -------------------------------------------------------------------------------

def linear_vs_cnn(epochs: int, data_dir: str | None) -> dict:
    """Test accuracy on zoo_shapes/32 of softmax regression on pixels and of LeNet-5, same training."""
    import keras

    import zoo
    from finetune.data import load_data

    bundle = load_data("builtin:zoo_shapes/32", image_size=(32, 32, 1), batch_size=BATCH,
                       preprocessing=zoo.info("lenet5").preprocessing, data_dir=data_dir)
    keras.utils.set_random_seed(0)
    models = {
        "linear (softmax on pixels)": keras.Sequential([keras.Input((32, 32, 1)), keras.layers.Flatten(),
                                                        keras.layers.Dense(bundle.num_classes, activation="softmax")]),
        "lenet5 (modern, 61k parameters)": zoo.create("lenet5", num_classes=bundle.num_classes, variant="modern"),
    }
    results = {}
    for name, model in models.items():
        model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(bundle.train, validation_data=bundle.validation, epochs=epochs, verbose=0)
        results[name] = model.evaluate(bundle.test, verbose=0, return_dict=True)["accuracy"]
    return results


# -- photos: the training and validation streams on photo-size JPEGs, against other libraries -----

PHOTO_CLASSES = 10
PHOTO_BATCH = 64
PHOTO_SIZE = 224
LARGE_EVERY = 50  # 1 in 50 photos is a 12-megapixel one
CONTENDERS = ("kit", "kit-squash", "keras", "tfdata", "torchvision")
CONTENDER_LABELS = {
    "kit": "kit: load_data, random_crop=(0.08, 1), random_flip; val resize 256 + crop 224 (torchvision's, exact)",
    "kit-squash": "kit, the same training; val squashed to 224 (a run without a tag's transform)",
    "keras": "image_dataset_from_directory + RandomZoom + RandomFlip; val crop_to_aspect_ratio",
    "tfdata": "tf.data reference: sample_distorted_bounding_box + decode_and_crop_jpeg; val resize 256 + crop 224",
    "torchvision": "torchvision: ImageFolder + DataLoader, RandomResizedCrop + flip; val Resize(256) + CenterCrop(224)",
}
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # resnet50's preprocessing (keras.applications' caffe mode)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def photo(seed: int, width: int, height: int):
    """A PIL image that compresses like a photo: a gradient, smooth noise at several scales, a few
    flat shapes, slightly blurred, then sensor-like grain (~100 KB at 500x375, JPEG quality 90)."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    h, w = height, width
    ramp = (np.linspace(0, 1, w)[None, :, None] * rng.uniform(-1, 1)
            + np.linspace(0, 1, h)[:, None, None] * rng.uniform(-1, 1))
    ramp = (ramp - ramp.min()) / (np.ptp(ramp) + 1e-6)
    image = rng.uniform(0, 255, 3) * (1 - ramp) + rng.uniform(0, 255, 3) * ramp
    for cells, amplitude in ((3, 60), (12, 35), (48, 25), (160, 20), (400, 40)):
        grid = rng.integers(0, 256, (max(2, cells * h // max(h, w)), max(2, cells * w // max(h, w)), 3), dtype=np.uint8)
        smooth = np.asarray(Image.fromarray(grid).resize((w, h), Image.Resampling.BICUBIC), np.float32)
        image += (smooth - 128) * (amplitude / 128)
    picture = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(w // 10, w // 2)), y0 + int(rng.integers(h // 10, h // 2))
        color = tuple(int(value) for value in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=color)
    picture = picture.filter(ImageFilter.GaussianBlur(0.4))
    grain = rng.normal(0, 14, (h, w, 3))
    return Image.fromarray(np.clip(np.asarray(picture, np.float32) + grain, 0, 255).astype(np.uint8))


def _write_photo(task) -> int:
    """One JPEG of the set; a large one is a small one upscaled 8x, with grain of its own."""
    import numpy as np
    from PIL import Image

    path, seed, width, height, large = task
    image = photo(seed, width // 8 if large else width, height // 8 if large else height)
    if large:
        image = image.resize((width, height), Image.Resampling.BICUBIC)
        grain = np.random.default_rng(seed).integers(-4, 5, (height, width, 1), dtype=np.int16)
        image = Image.fromarray(np.clip(np.asarray(image, np.int16) + grain, 0, 255).astype(np.uint8))
    image.save(path, quality=90)
    return os.path.getsize(path)


def make_photos(root: Path, count: int) -> dict:
    """`count` JPEGs in train/classK (90%) and val/classK (10%), made once and reused: mostly
    500x375 and 375x500, 1 in LARGE_EVERY at 4000x3000 or 3000x4000. Returns the set's summary."""
    from multiprocessing import Pool

    marker = root / "photos.json"
    if marker.exists():
        summary = json.loads(marker.read_text())
        if summary.get("count") == count:
            return summary
    shutil.rmtree(root, ignore_errors=True)
    tasks, val_count = [], count // 10
    for index in range(count):
        split, number = ("val", index) if index < val_count else ("train", index - val_count)
        folder = root / split / f"class{number % PHOTO_CLASSES}"
        folder.mkdir(parents=True, exist_ok=True)
        large = index % LARGE_EVERY == LARGE_EVERY // 2
        portrait = index % 3 == 2
        width, height = (4000, 3000) if large else (500, 375)
        if portrait:
            width, height = height, width
        tasks.append((str(folder / f"{number:05d}.jpg"), index, width, height, large))
    started = time.perf_counter()
    with Pool(2) as pool:
        sizes = pool.map(_write_photo, tasks, chunksize=16)
    small = [size for size, task in zip(sizes, tasks) if not task[4]]
    large = [size for size, task in zip(sizes, tasks) if task[4]]
    summary = {"count": count, "train": count - val_count, "val": val_count, "large": len(large),
               "small_kb": sum(small) / len(small) / 1e3, "large_mb": sum(large) / max(len(large), 1) / 1e6,
               "seconds": time.perf_counter() - started}
    marker.write_text(json.dumps(summary))
    return summary


def make_index_set(root: Path, photos: Path, count: int) -> Path:
    """`count` files in classK folders, hard links to the photos (no new JPEGs): start-up timing only."""
    marker = root / "links.json"
    if marker.exists() and json.loads(marker.read_text()).get("count") == count:
        return root
    shutil.rmtree(root, ignore_errors=True)
    sources = sorted(str(path) for path in photos.rglob("*.jpg"))
    for index in range(count):
        folder = root / f"class{index % PHOTO_CLASSES}"
        if index < PHOTO_CLASSES:
            folder.mkdir(parents=True, exist_ok=True)
        os.link(sources[index % len(sources)], folder / f"{index:06d}.jpg")
    marker.write_text(json.dumps({"count": count}))
    return root


def count_images(folder: Path) -> int:
    return sum(1 for path in folder.rglob("*.jpg"))


class PeakMemory:
    """Peak resident memory of this process and its children (torch's DataLoader workers), sampled
    every 50 ms, and never below getrusage's peak of this process alone."""

    def __init__(self):
        import psutil

        self._process, self._psutil, self.peak = psutil.Process(), psutil, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> int:
        total = 0
        for process in [self._process, *self._process.children(recursive=True)]:
            try:
                total += process.memory_info().rss
            except self._psutil.Error:
                pass
        return total

    def _run(self):
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._sample())

    def mib(self) -> float:
        import resource

        self._stop.set()
        self._thread.join()
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return max(self.peak, own) / 2**20


def time_streams(build, size_of, train_count: int, warmup: int, tail: int, val_passes: int) -> dict:
    """Times what `build()` returns, (training stream, validation stream), both iterables of batches.

    First batch: from the call of `build` to the first training batch. Training images/s: one
    epoch, timed from batch `warmup` to `tail` batches before its end, so that the batches a
    stream prepares ahead are as many when the clock starts as when it stops. Validation images/s:
    `val_passes` whole passes after an untimed one (each pass a fresh iterator, as an evaluation is)."""
    import psutil

    memory = PeakMemory()
    process_start = psutil.Process().create_time()
    started = time.perf_counter()
    train, validation = build()
    batches = iter(train)
    first = next(batches)
    first_batch = time.perf_counter() - started
    from_process_start = time.time() - process_start
    last = -(-train_count // PHOTO_BATCH) - 1 - tail  # the index of the batch that stops the clock
    if last <= warmup:
        raise SystemExit(f"{train_count} training images are too few to time past {warmup} batches")
    timed = clock = stopped = None
    for index, batch in enumerate(batches, start=1):
        if index == warmup:
            timed, clock = 0, time.perf_counter()
        elif warmup < index <= last:
            timed += size_of(batch)
            if index == last:
                stopped = time.perf_counter()
    train_rate = timed / (stopped - clock)
    for batch in validation:  # untimed pass
        pass
    seen, started = 0, time.perf_counter()
    for _ in range(val_passes):
        for batch in validation:
            seen += size_of(batch)
    val_rate = seen / (time.perf_counter() - started)
    return {"train_images_per_s": train_rate, "train_timed_images": timed, "val_images_per_s": val_rate,
            "batch_shape": [int(side) for side in first[0].shape], "dtype": str(first[0].dtype),
            "first_batch_s": first_batch, "from_process_start_s": from_process_start, "peak_rss_mib": memory.mib()}


def kit_load_data(root: Path, evaluation="tv_in1k"):
    """load_data as the benchmark asks. `evaluation`: "tv_in1k" (torchvision's resize 256 + crop 224,
    antialiased as PIL) or None (the squash of a run that starts from no tag)."""
    import zoo
    from finetune.data import load_data
    from zoo.eval_transform import TORCHVISION_V1

    return load_data(str(root), image_size=(PHOTO_SIZE, PHOTO_SIZE, 3), batch_size=PHOTO_BATCH,
                     preprocessing=zoo.info("resnet50").preprocessing, cache=False, random_crop=(0.08, 1.0),
                     random_flip=True, evaluation=TORCHVISION_V1 if evaluation else None)


def kit_streams(root: Path, extra: dict, evaluation="tv_in1k"):
    bundle = kit_load_data(root, evaluation)
    return bundle.train, bundle.validation


def kit_squash_streams(root: Path, extra: dict):
    return kit_streams(root, extra, evaluation=None)


def keras_streams(root: Path, extra: dict):
    """Keras' own: image_dataset_from_directory squashes each image to 224x224; Keras has no
    RandomResizedCrop, so the closest is a random zoom-in to as little as sqrt(0.08) of each side
    (aspect kept) and a flip, as layers in the tf.data map."""
    import keras
    import tensorflow as tf

    preprocess = keras.applications.resnet50.preprocess_input
    augment = keras.Sequential([keras.layers.RandomZoom(height_factor=(-(1 - 0.08 ** 0.5), 0.0)),
                                keras.layers.RandomFlip("horizontal")])
    train = keras.utils.image_dataset_from_directory(
        root / "train", image_size=(PHOTO_SIZE, PHOTO_SIZE), batch_size=PHOTO_BATCH, shuffle=True, seed=0,
        verbose=False)
    train = train.map(lambda images, labels: (preprocess(augment(images, training=True)), labels),
                      num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    validation = keras.utils.image_dataset_from_directory(
        root / "val", image_size=(PHOTO_SIZE, PHOTO_SIZE), batch_size=PHOTO_BATCH, shuffle=False,
        crop_to_aspect_ratio=True, verbose=False)
    validation = validation.map(lambda images, labels: (preprocess(images), labels),
                                num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    return train, validation


def listed(folder: Path) -> tuple[list[str], list[int]]:
    classes = sorted(path.name for path in folder.iterdir() if path.is_dir())
    paths, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((folder / name).glob("*.jpg")):
            paths.append(str(path))
            labels.append(label)
    return paths, labels


def tfdata_streams(root: Path, extra: dict):
    """The usual tf.data ImageNet input (the ResNet/Inception reference's): Inception-style crop
    sampled from the JPEG header, only the crop decoded, bilinear resize, flip; validation: the
    whole image decoded, shorter side to 256, central 224 crop. Caffe-style mean subtraction."""
    import tensorflow as tf

    autotune = tf.data.AUTOTUNE
    mean = tf.constant(CAFFE_MEAN_BGR, tf.float32)

    def caffe(image):
        return image[..., ::-1] - mean

    def train_example(path, label):
        data = tf.io.read_file(path)
        whole = tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, [1, 1, 4])
        begin, size, _ = tf.image.sample_distorted_bounding_box(
            tf.image.extract_jpeg_shape(data), bounding_boxes=whole, min_object_covered=0.1,
            aspect_ratio_range=(3 / 4, 4 / 3), area_range=(0.08, 1.0), max_attempts=10,
            use_image_if_no_bounding_boxes=True)
        offset_y, offset_x, _ = tf.unstack(begin)
        height, width, _ = tf.unstack(size)
        image = tf.image.decode_and_crop_jpeg(data, tf.stack([offset_y, offset_x, height, width]), channels=3)
        image = tf.image.resize(image, [PHOTO_SIZE, PHOTO_SIZE])
        return caffe(tf.image.random_flip_left_right(image)), label

    def val_example(path, label):
        image = tf.image.decode_jpeg(tf.io.read_file(path), channels=3)
        shape = tf.cast(tf.shape(image)[:2], tf.float32)
        scale = 256.0 / tf.reduce_min(shape)
        height, width = tf.unstack(tf.cast(tf.round(shape * scale), tf.int32))
        image = tf.image.resize(image, [height, width])
        top, left = (height - PHOTO_SIZE) // 2, (width - PHOTO_SIZE) // 2
        return caffe(image[top:top + PHOTO_SIZE, left:left + PHOTO_SIZE]), label

    def stream(split, example, shuffle):
        paths, labels = listed(root / split)
        dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
        if shuffle:
            dataset = dataset.shuffle(len(paths), seed=0, reshuffle_each_iteration=True)
        return dataset.map(example, num_parallel_calls=autotune).batch(PHOTO_BATCH).prefetch(autotune)

    return stream("train", train_example, True), stream("val", val_example, False)


def torchvision_streams(root: Path, extra: dict):
    """torchvision's ImageNet recipe: PIL decode, RandomResizedCrop(224) + flip; Resize(256) +
    CenterCrop(224); one DataLoader worker process per CPU."""
    import torch
    from torchvision import datasets, transforms

    normalize = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    workers = os.cpu_count()
    extra.update(torch=torch.__version__, num_workers=workers, threads=torch.get_num_threads())
    train = datasets.ImageFolder(str(root / "train"), transforms.Compose([
        transforms.RandomResizedCrop(PHOTO_SIZE), transforms.RandomHorizontalFlip(), transforms.ToTensor(), normalize]))
    validation = datasets.ImageFolder(str(root / "val"), transforms.Compose([
        transforms.Resize(256), transforms.CenterCrop(PHOTO_SIZE), transforms.ToTensor(), normalize]))
    loader = torch.utils.data.DataLoader
    return (loader(train, batch_size=PHOTO_BATCH, shuffle=True, num_workers=workers),
            loader(validation, batch_size=PHOTO_BATCH, shuffle=False, num_workers=workers))


KIT_MODULES = ("tensorflow", "keras", "zoo", "zoo.eval_transform", "finetune.data")
LIBRARY_MODULES = {"kit": KIT_MODULES, "kit-squash": KIT_MODULES, "kit-start": KIT_MODULES, "keras": ("tensorflow", "keras"),
                   "tfdata": ("tensorflow",), "torchvision": ("torch", "torchvision", "torchvision.datasets")}
STREAMS = {"kit": kit_streams, "kit-squash": kit_squash_streams, "keras": keras_streams, "tfdata": tfdata_streams,
           "torchvision": torchvision_streams}


def kit_start_up(root: Path) -> dict:
    """Seconds from load_data's call to its return and to the first training batch, on `root`."""
    import psutil

    memory = PeakMemory()
    process_start = psutil.Process().create_time()
    started = time.perf_counter()
    bundle = kit_load_data(root)
    loaded = time.perf_counter() - started
    next(iter(bundle.train))
    return {"load_data_s": loaded, "first_batch_s": time.perf_counter() - started,
            "from_process_start_s": time.time() - process_start, "images": bundle.sizes.get("train"),
            "peak_rss_mib": memory.mib()}


def photos_worker(args) -> None:
    """One contender in this fresh process; its figures as one JSON line on stdout."""
    import importlib

    root, extra = Path(args.root), {}
    for module in LIBRARY_MODULES[args.worker]:  # imports are not the pipeline's construction
        importlib.import_module(module)
    if args.worker == "kit-start":
        result = kit_start_up(root)
    else:
        def size_of(batch):
            return int(batch[0].shape[0])

        result = time_streams(lambda: STREAMS[args.worker](root, extra), size_of, count_images(root / "train"),
                              args.warmup, args.tail, args.val_passes)
    if args.worker.startswith("kit"):
        import finetune

        extra["finetune"] = str(Path(finetune.__file__).parent)
    print(json.dumps({**result, **extra}), flush=True)


def run_photos_worker(name: str, root: Path, args, env: dict, timeout: float) -> dict:
    python = args.torch_python if name == "torchvision" else None
    argv = [str(Path(__file__).resolve()), "photos", "--worker", name, "--root", str(root),
            "--warmup", str(args.warmup), "--tail", str(args.tail), "--val-passes", str(args.val_passes)]
    try:
        output = benchmarks.run_worker(argv, env, timeout=timeout, python=python)
    except RuntimeError as error:
        benchmarks.log(str(error))
        return {"error": str(error).strip().splitlines()[-1][:200]}
    except Exception as error:  # noqa: BLE001  (a timeout: the figure is "more than")
        benchmarks.log(f"{name}: {error}")
        return {"error": f"{type(error).__name__}: {str(error)[-200:]}"}
    result = json.loads(output.strip().splitlines()[-1])
    benchmarks.log(f"{name}: {result}")
    return result


def paired(results: dict, numerator: tuple[str, str], denominator: tuple[str, str]) -> tuple[float, float, float] | None:
    """Median and range of per-round ratios numerator / denominator ((contender, key) each)."""
    ratios = [a[numerator[1]] / b[denominator[1]] for a, b in zip(results[numerator[0]], results[denominator[0]])
              if numerator[1] in a and denominator[1] in b]
    if not ratios:
        return None
    low, high = benchmarks.quartiles(ratios)
    return benchmarks.median(ratios), low, high


def photos(args) -> None:
    count, index_count = (1000, 10_000) if args.quick else (5000, 100_000)
    rounds = 1 if args.quick else args.rounds
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    benchmarks.log(f"photos: {count} JPEGs under {work}")
    summary = make_photos(work / f"photos{count}", count)
    root = work / f"photos{count}"
    benchmarks.log(f"photos: {summary}; index set of {index_count:,} links")
    index_root = make_index_set(work / f"index{index_count}", root, index_count)
    info = benchmarks.machine()
    contenders = [name for name in CONTENDERS if name != "torchvision" or args.torch_python]
    env = {"ZOO_CACHE_DIR": str(work / "zoo-cache")}
    shutil.rmtree(env["ZOO_CACHE_DIR"], ignore_errors=True)  # the kit's first round builds its index
    results = {name: [] for name in contenders}
    for round_index in range(rounds):
        for name in contenders if round_index % 2 == 0 else contenders[::-1]:
            benchmarks.log(f"round {round_index + 1}/{rounds}: {name}")
            results[name].append(run_photos_worker(name, root, args, env, timeout=600))
    start_cache = work / "zoo-cache-start"
    start_up = {}
    for run in ("cold index", "reused index"):
        if run == "cold index":
            shutil.rmtree(start_cache, ignore_errors=True)
        benchmarks.log(f"kit start-up on {index_count:,} files, {run}")
        start_up[run] = run_photos_worker("kit-start", index_root, args, {"ZOO_CACHE_DIR": str(start_cache)},
                                          timeout=args.start_timeout)

    def figure(name, key, text="{:,.0f}"):
        values = [result[key] for result in results[name] if key in result]
        return text.format(benchmarks.median(values)) if values else "failed"

    rows = [[CONTENDER_LABELS[name], figure(name, "train_images_per_s"), figure(name, "val_images_per_s"),
             figure(name, "first_batch_s", "{:.1f}"), figure(name, "from_process_start_s", "{:.1f}"),
             figure(name, "peak_rss_mib")] for name in contenders]
    targets = [("kit train / torchvision train", ("kit", "train_images_per_s"), ("torchvision", "train_images_per_s"), 1.5),
               ("kit train / tf.data reference train", ("kit", "train_images_per_s"), ("tfdata", "train_images_per_s"), 0.9),
               ("kit val / image_dataset_from_directory val", ("kit", "val_images_per_s"), ("keras", "val_images_per_s"), 0.9),
               ("kit val squashed / image_dataset_from_directory val", ("kit-squash", "val_images_per_s"),
                ("keras", "val_images_per_s"), 0.9)]
    ratio_rows = []
    for label, numerator, denominator, target in targets:
        if denominator[0] not in results:
            ratio_rows.append([label, "not run", f">= {target}", "-"])
            continue
        ratio = paired(results, numerator, denominator)
        ratio_rows.append([label, benchmarks.format_ratio(*ratio) if ratio else "failed", f">= {target}",
                           ("met" if ratio[0] >= target else "not met") if ratio else "-"])
    start_rows = []
    for run, result in start_up.items():
        if "error" in result:
            start_rows.append([run, result["error"], "-", "-", "-"])
        else:
            start_rows.append([run, f"{result['load_data_s']:.1f}", f"{result['first_batch_s']:.1f}",
                               f"{result['from_process_start_s']:.1f}", f"{result['peak_rss_mib']:,.0f}"])
    notes = sorted({result["note"] for runs in [*results.values(), list(start_up.values())] for result in runs
                    if "note" in result})
    errors = [f"- {name}: {result['error']}" for name, runs in results.items() for result in runs if "error" in result]
    torch = next((result for result in results.get("torchvision", []) if "torch" in result), None)
    body = "\n".join([
        benchmarks.describe_machine(info), "",
        f"{summary['count']:,} JPEGs (quality 90, {PHOTO_CLASSES} classes; {summary['train']:,} in train/, "
        f"{summary['val']:,} in val/): 500x375 and 375x500 (~{summary['small_kb']:.0f} KB), 1 in {LARGE_EVERY} "
        f"at 4000x3000 or 3000x4000 (~{summary['large_mb']:.1f} MB). Each contender runs in a fresh process, "
        f"the order alternating over {rounds} round(s); medians. Training stream: {PHOTO_SIZE}x{PHOTO_SIZE}, "
        f"batch {PHOTO_BATCH}, random-resized-crop (scale 0.08-1, ratio 3/4-4/3) + horizontal flip, then the "
        f"model's preprocessing (resnet50's caffe-style for the TensorFlow ones, ImageNet mean/std for "
        f"torchvision), one epoch timed from batch {args.warmup} to {args.tail} batches before its end. "
        f"Validation stream: {args.val_passes} passes over val/ after an untimed one. First batch: from the "
        f"pipeline's construction (load_data, image_dataset_from_directory, ImageFolder...) to the first "
        f"training batch (the kit's header index of the photos built in its first round, reused after); "
        f"from process start adds the interpreter's and the library's import. Peak RSS: the "
        f"process and its children (DataLoader workers, whose shared pages count once per process).",
        "",
        "Keras has no RandomResizedCrop: its row zooms in (RandomZoom, down to sqrt(0.08) of each side, "
        "aspect kept) on the image already squashed to 224x224 by image_dataset_from_directory, then flips; "
        "its validation is image_dataset_from_directory's crop_to_aspect_ratio (the largest centred "
        "square, resized to 224), the closest it has to resize + centre crop."
        + (f" torchvision {torch.get('torch')} (torch), num_workers={torch.get('num_workers')}, "
           f"{torch.get('threads')} torch threads." if torch else
           " torchvision not run (no --torch-python)."),
        "",
        benchmarks.markdown_table(["contender", "train images/s", "val images/s", "first batch s",
                                   "from process start s", "peak RSS MiB"], rows), "",
        "Ratios (median of per-round ratios, range), against the targets:", "",
        benchmarks.markdown_table(["ratio", "measured", "target", ""], ratio_rows), "",
        f"The kit's start-up on {index_count:,} files (hard links to the photos; load_data carves the "
        f"validation split), ZOO_CACHE_DIR emptied before the cold run (target: first batch under 30 s on "
        f"2 cores):", "",
        benchmarks.markdown_table(["run", "load_data s", "first batch s", "from process start s", "peak RSS MiB"],
                                  start_rows),
        *([""] + [f"Note: {note}." for note in notes] if notes else []),
        *(["", "Failures:", *errors] if errors else []),
    ])
    print(body)
    if args.write:
        kind, _ = benchmarks.machine_kind()
        benchmarks.write_section(f"bench_input_photos_{kind}",
                                 f"Photo-size JPEGs: the kit's streams vs tf.data, Keras and torchvision ({kind})",
                                 body, benchmarks.rerun_command())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", choices=("pipeline", "photos"), default="pipeline",
                        help="pipeline (the default): sections 1-3 above; photos: section 4")
    parser.add_argument("--quick", action="store_true", help="fewer images, epochs and repeats")
    parser.add_argument("--data-dir", default=None, help="TFDS data_dir for the built-in datasets")
    parser.add_argument("--write", action="store_true", help="write the results into BENCHMARKS.md")
    photos_options = parser.add_argument_group("photos")
    photos_options.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "zoo-bench-photos"),
                                help="where the photos are made, and kept for the next run")
    photos_options.add_argument("--rounds", type=int, default=3, help="rounds of all contenders (median)")
    photos_options.add_argument("--torch-python", default=None,
                                help="an interpreter with torch and torchvision; without it, no torchvision row")
    photos_options.add_argument("--start-timeout", type=float, default=600,
                                help="seconds a start-up run may take before it counts as failed")
    photos_options.add_argument("--warmup", type=int, default=5, help=argparse.SUPPRESS)
    photos_options.add_argument("--tail", type=int, default=4, help=argparse.SUPPRESS)
    photos_options.add_argument("--val-passes", type=int, default=3, help=argparse.SUPPRESS)
    photos_options.add_argument("--worker", choices=(*CONTENDERS, "kit-start"), help=argparse.SUPPRESS)
    photos_options.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode == "photos":
        if args.worker:
            photos_worker(args)
        else:
            photos(args)
        return
    count, epochs, repeats = (400, 3, 2) if args.quick else (2000, 15, 3)
    alone, training = [], []
    with tempfile.TemporaryDirectory() as work:
        folder = str(write_jpegs(Path(work) / "jpegs", count, 256))
        benchmarks.log(f"pipeline alone: {count} JPEGs")
        for cache in (False, True):
            alone.append(pipeline_alone(f"{count} JPEGs 256x256", folder, (224, 224, 3), "resnet18", cache=cache))
        benchmarks.log("pipeline alone: zoo_shapes")
        for spec, size in (("builtin:zoo_shapes/32", (32, 32, 1)), ("builtin:zoo_shapes/64", (64, 64, 3))):
            alone.append(pipeline_alone(spec, spec, size, "lenet5" if size[-1] == 1 else "resnet18",
                                        data_dir=args.data_dir, cache=False))
        benchmarks.log("training: pipeline vs memory")
        for cache in (False, True):  # LeNet-5 is so cheap that decoding 32x32 PNGs shows next to it
            training.append(pipeline_vs_memory("builtin:zoo_shapes/32", "lenet5", (32, 32, 1), repeats,
                                               data_dir=args.data_dir, cache=cache))
        training.append(pipeline_vs_memory(folder, "resnet18", (64, 64, 3), repeats,
                                           max_examples=count if args.quick else 1000, cache=False))
    benchmarks.log(f"linear vs CNN, {epochs} epochs")
    accuracy = linear_vs_cnn(epochs, args.data_dir)
    body = "\n".join([
        benchmarks.describe_machine(), "",
        f"Input pipeline alone (decode, resize, preprocessing, batch {BATCH}, two epochs; load_data s includes "
        f"file checks, or generation when not yet prepared):", "",
        benchmarks.markdown_table(["source", "load_data s", "images/s", "images"], alone), "",
        f"Training epochs (Keras fit, SGD, batch {BATCH}) fed by the pipeline vs the same batches in memory "
        f"(median of {repeats}, alternating):", "",
        benchmarks.markdown_table(
            ["case", "train images", "s/epoch, pipeline", "s/epoch, in memory", "images/s, pipeline",
             "pipeline / memory throughput"],
            [[row["case"], row["examples"], f"{row['pipeline']:.2f}", f"{row['memory']:.2f}",
              f"{row['images_per_second']:,.0f}", f"{row['ratio']:.2f}"] for row in training]), "",
        f"Test accuracy on zoo_shapes/32 (gray) after {epochs} epochs (Adam 3e-3, batch {BATCH}):", "",
        benchmarks.markdown_table(["model", "test accuracy"],
                                  [[name, f"{value:.3f}"] for name, value in accuracy.items()]),
    ])
    print(body)
    if args.write:
        benchmarks.write_section("bench_input", "Input pipeline and the need for a CNN", body,
                                 benchmarks.rerun_command())


if __name__ == "__main__":
    main()
