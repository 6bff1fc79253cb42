"""The input pipeline alone, and whether the built-in shapes need a CNN.

    python scripts/bench_input.py            # 2000 JPEGs at 256x256, zoo_shapes/32, linear vs CNN
    python scripts/bench_input.py --quick

1. Images/s of `finetune.data.load_data` (decode, resize, preprocessing, batching) on a folder of
   JPEGs and on builtin:zoo_shapes, iterated with no model attached.
2. The pipeline-fed vs in-memory training throughput lives in `scripts/bench_finetune.py`.
3. Test accuracy of a linear model (softmax regression on pixels) and of LeNet-5 on zoo_shapes,
   trained the same way: the task should defeat the first and not the second.
Writes its section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import benchmarks  # noqa: F401  (puts the project on sys.path)
import keras
import numpy as np
from PIL import Image

import zoo
from finetune.data import load_data


def write_jpegs(root: Path, count: int, size: int) -> Path:
    rng = np.random.default_rng(0)
    for index in range(count):
        folder = root / f"class{index % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        image = rng.integers(0, 255, (size // 8, size // 8, 3), dtype=np.uint8)
        Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR).save(folder / f"{index}.jpg", quality=90)
    return root


def images_per_second(spec, image_size, batch_size, epochs=2, **options) -> tuple[float, int]:
    bundle = load_data(spec, image_size=image_size, batch_size=batch_size, preprocessing=zoo.info("resnet18").preprocessing
                       if image_size[-1] == 3 else None, **options)
    for _ in bundle.train.take(2):  # warm up: threads, first file reads
        pass
    seen, started = 0, time.perf_counter()
    for _ in range(epochs):
        for images, _ in bundle.train:
            seen += int(images.shape[0])
    return seen / (time.perf_counter() - started), seen


def linear_vs_cnn(epochs: int, data_dir: str | None) -> dict:
    bundle = load_data("builtin:zoo_shapes/32", image_size=(32, 32, 1), batch_size=32,
                       preprocessing=zoo.info("lenet5").preprocessing, data_dir=data_dir)
    results = {}
    models = {
        "linear (softmax on pixels)": keras.Sequential([keras.Input((32, 32, 1)), keras.layers.Flatten(),
                                                        keras.layers.Dense(10, activation="softmax")]),
        "lenet5 (modern)": zoo.create("lenet5", num_classes=10),
    }
    for name, model in models.items():
        model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(bundle.train, validation_data=bundle.validation, epochs=epochs, verbose=0)
        results[name] = model.evaluate(bundle.test, verbose=0, return_dict=True)["accuracy"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    count, epochs = (400, 3) if args.quick else (2000, 15)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        folder = write_jpegs(Path(work) / "jpegs", count, 256)
        for cache in (False, True):
            rate, seen = images_per_second(str(folder), (224, 224, 3), 32, cache=cache)
            rows.append([f"{count} JPEGs 256x256 -> 224x224x3" + (" (cached)" if cache else ""), f"{rate:,.0f}", seen])
    rate, seen = images_per_second("builtin:zoo_shapes/32", (32, 32, 1), 32, data_dir=args.data_dir)
    rows.append(["builtin:zoo_shapes/32 -> 32x32x1", f"{rate:,.0f}", seen])
    accuracy = linear_vs_cnn(epochs, args.data_dir)
    body = "\n".join([
        benchmarks.describe_machine(), "",
        "Input pipeline alone (decode, resize, preprocessing, batch 32, two epochs):", "",
        benchmarks.markdown_table(["source", "images/s", "images"], rows), "",
        f"Test accuracy on zoo_shapes/32 after {epochs} epochs (Adam 3e-3, batch 32):", "",
        benchmarks.markdown_table(["model", "test accuracy"], [[name, f"{value:.3f}"] for name, value in accuracy.items()]),
    ])
    print(body)
    benchmarks.write_section("bench_input", "Input pipeline and the need for a CNN", body,
                             benchmarks.rerun_command())


if __name__ == "__main__":
    main()
