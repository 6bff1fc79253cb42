"""Transfer learning on the built-in shapes: pretrain on the `source` classes, then fine-tune on the
disjoint `target` classes with a few images per class, from scratch, head only, and in full.

    python scripts/transfer_experiment.py              # resnet18 at 64x64, 20 images per class
    python scripts/transfer_experiment.py --quick      # fewer epochs, for a smoke run

Prints a table of target test accuracy per setting (and writes it to the work folder).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

import finetune.data.datasets  # noqa: F401  (registers the built-in TFDS builders)
from finetune.training.classification import finetune
from finetune.training.config import FinetuneConfig


def write_few_shot_folder(root: Path, per_class: int, data_dir: str, seed: int) -> tuple[Path, Path]:
    """`per_class` training images of each target class as a folder, and the target test split as another."""
    builder = tfds.builder("zoo_shapes/target", data_dir=data_dir)
    builder.download_and_prepare()
    names = builder.info.features["label"].names
    rng = np.random.default_rng(seed)
    train = tfds.as_numpy(builder.as_dataset(split="train"))
    by_class: dict[int, list[np.ndarray]] = {}
    for example in train:
        by_class.setdefault(int(example["label"]), []).append(example["image"])
    for label, images in by_class.items():
        chosen = rng.choice(len(images), size=per_class, replace=False)
        for index in chosen:
            path = root / "train" / names[label] / f"{index}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[index]).save(path)
    for index, example in enumerate(tfds.as_numpy(builder.as_dataset(split="test"))):
        path = root / "test" / names[int(example["label"])] / f"{index}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(example["image"]).save(path)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--pretrain-epochs", type=int, default=8)
    parser.add_argument("--target-epochs", type=int, default=30)
    parser.add_argument("--work", default=None, help="Folder for data and runs (default: a temporary one).")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.quick:
        args.pretrain_epochs, args.target_epochs = 2, 5

    work = Path(args.work or tempfile.mkdtemp(prefix="transfer-"))
    data_dir = str(work / "tfds")
    started = time.perf_counter()
    common = dict(model=args.model, image_size=args.image_size, seed=args.seed, data_dir=data_dir, batch_size=32)

    source_run = work / "source"
    if not (source_run / "best.keras").is_file():
        finetune(FinetuneConfig(data="builtin:zoo_shapes/source", mode="full", epochs=args.pretrain_epochs,
                                lr=2e-3, augment="light", **common), out=source_run, verbose=1)
    source_metrics = json.loads((source_run / "metrics.json").read_text())
    pretrained = str(source_run / "best.keras")

    target = write_few_shot_folder(work / "target", args.per_class, data_dir, args.seed)
    settings = {
        "scratch (full, random init)": dict(mode="full", weights=None, lr=2e-3),
        "pretrained, head only": dict(mode="head", weights=pretrained, lr=1e-2),
        "pretrained, full (backbone lr x0.1)": dict(mode="full", weights=pretrained, lr=3e-3, head_epochs=3),
    }
    rows = []
    for label, setting in settings.items():
        config = FinetuneConfig(data=str(target), epochs=args.target_epochs, validation_fraction=0.2, **common,
                                **setting)
        result = finetune(config, verbose=0)
        rows.append((label, result.metrics["test"]["accuracy"], result.metrics["validation"]["accuracy"]))
        print(f"{label}: test accuracy {rows[-1][1]:.3f}", flush=True)

    lines = [
        f"Transfer on zoo_shapes: {args.model} at {args.image_size}x{args.image_size}, pretrained on the 6 "
        f"source classes ({args.pretrain_epochs} epochs, source validation accuracy "
        f"{source_metrics['validation']['accuracy']:.3f}), fine-tuned on the 4 target classes with "
        f"{args.per_class} images per class for {args.target_epochs} epochs.",
        "",
        "| setting | target test accuracy | target validation accuracy |",
        "|---|---|---|",
        *[f"| {label} | {test:.3f} | {validation:.3f} |" for label, test, validation in rows],
        "",
        f"Total time {time.perf_counter() - started:.0f}s. Rerun: python scripts/transfer_experiment.py",
    ]
    report = "\n".join(lines)
    (work / "transfer.md").write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
