"""The input pipeline alone, the pipeline under training, and whether the built-in shapes need a CNN.

    python scripts/bench_input.py            # 2000 JPEGs at 256x256, zoo_shapes/32, linear vs CNN
    python scripts/bench_input.py --quick    # fewer images, epochs and repeats
    python scripts/bench_input.py --write    # also write the section of BENCHMARKS.md

1. Images/s of `finetune.data.load_data` (decode, resize, preprocessing, batching) iterated with no
   model attached, on a folder of JPEGs and on builtin:zoo_shapes; and how long load_data itself
   takes (the folder's file checks, the built-in's generation when not yet prepared).
2. Training throughput fed by the real pipeline vs the same preprocessed batches held in memory,
   in alternating epochs (plain Keras `fit`, SGD): a ratio near 1 means the pipeline keeps the
   model fed.
3. Test accuracy of a linear model (softmax regression on pixels) and of LeNet-5 on zoo_shapes,
   trained the same way: the task should defeat the first and not the second.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import benchmarks  # noqa: F401  (puts the project on sys.path)
import keras
import numpy as np
import tensorflow as tf
from PIL import Image

import zoo
from finetune.data import load_data

BATCH = 32


def write_jpegs(root: Path, count: int, size: int, classes: int = 4) -> Path:
    """`count` smooth random JPEGs (noise upscaled, so they compress like photos) in class folders."""
    rng = np.random.default_rng(0)
    for index in range(count):
        folder = root / f"class{index % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        image = rng.integers(0, 255, (size // 8, size // 8, 3), dtype=np.uint8)
        Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR).save(folder / f"{index}.jpg", quality=90)
    return root


def preprocessing_for(model_name: str, channels: int):
    return zoo.info(model_name).preprocessing.for_channels(channels)


# -- 1. the pipeline alone --------------------------------------------------------------------------

def pipeline_alone(label, spec, image_size, model_name, epochs=2, **options) -> list:
    """[label, load_data seconds, images/s, images seen] for `epochs` passes over the training split."""
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer images, epochs and repeats")
    parser.add_argument("--data-dir", default=None, help="TFDS data_dir for the built-in datasets")
    parser.add_argument("--write", action="store_true", help="write the results into BENCHMARKS.md")
    args = parser.parse_args()
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
