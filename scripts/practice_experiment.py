"""The course notes' practice, measured: k-fold cross-validation on a small dataset, balanced
sampling and class weights on imbalanced data, and normalization for small batches.

    python scripts/practice_experiment.py folds       # 5-fold cross-validation of LeNet-5 on 600 built-in shapes
    python scripts/practice_experiment.py imbalance   # the rare class's recall with each remedy
    python scripts/practice_experiment.py norm        # fine-tuning at batch 4 with each normalization

Memory estimates against measured peaks are scripts/bench_memory.py's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import benchmarks  # noqa: E402, F401  (sets sys.path and TF_CPP_MIN_LOG_LEVEL first)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import finetune  # noqa: E402
import zoo  # noqa: E402
from finetune.data import pipeline  # noqa: E402
from finetune.training.config import FinetuneConfig  # noqa: E402

COLOURS = {"blue": (50, 70, 230), "green": (40, 200, 60), "teal": (40, 200, 120)}


def folds(args) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        result = finetune.finetune("lenet5", max_examples=args.examples, epochs=args.epochs, folds=5,
                                   out=Path(scratch) / "cv", verbose=0)
        print(f"LeNet-5, built-in shapes, {args.examples} training examples pooled into 5 stratified folds, "
              f"{args.epochs} epochs each ({time.perf_counter() - started:.0f} s):")
        for metric, values in result.summary.items():
            print(f"  {metric}: {values['mean']:.4f} ± {values['std']:.4f} (min {values['min']:.4f}, "
                  f"max {values['max']:.4f})")
        print("  per fold accuracy: " + ", ".join(f"{fold['accuracy']:.4f}" for fold in result.per_fold))


def make_classes(root: Path, counts: dict, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for name, count in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image = rng.integers(0, 90, (32, 32, 3), dtype=np.uint8)
            image[8:24, 8:24] = COLOURS[name]
            Image.fromarray(image).save(root / name / f"{index}.png")


def recall(model, data: Path, rare: str) -> tuple[float, float]:
    bundle = pipeline.load_data(str(data), image_size=(32, 32, 3), batch_size=64, shuffle_buffer=0,
                                preprocessing=zoo.info("lenet5").preprocessing)
    truth, predicted = [], []
    for images, labels in bundle.validation:
        truth += list(labels.numpy())
        predicted += list(np.argmax(model.predict(images, verbose=0), axis=-1))
    truth, predicted = np.array(truth), np.array(predicted)
    label = bundle.class_names.index(rare)
    return float(np.mean(predicted[truth == label] == label)), float(np.mean(predicted == truth))


def imbalance(args) -> None:
    print(f"LeNet-5, 3 classes: blue 60, green 60, teal {args.rare} training images (teal is green's near "
          f"neighbour); a balanced validation split of 10 each; {args.epochs} epochs; seeds {args.seeds}")
    print("| remedy | teal recall (per seed) | accuracy (per seed) |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch)
        make_classes(data / "train", {"blue": 60, "green": 60, "teal": args.rare}, 0)
        make_classes(data / "val", {"blue": 10, "green": 10, "teal": 10}, 1)
        for label, settings in (("none", {}), ("--class-weights", {"class_weights": True}),
                                ("--balance oversample", {"balance": "oversample"}),
                                ("--balance undersample", {"balance": "undersample"})):
            recalls, accuracies = [], []
            for seed in range(args.seeds):
                keras.backend.clear_session()
                result = finetune.finetune(FinetuneConfig(model="lenet5", data=str(data), epochs=args.epochs,
                                                          batch_size=16, image_size=32, channels=3, seed=seed,
                                                          lr=3e-3, **settings), verbose=0)
                rare_recall, accuracy = recall(result.model, data, "teal")
                recalls.append(rare_recall)
                accuracies.append(accuracy)
            print(f"| {label} | {', '.join(f'{value:.2f}' for value in recalls)} | "
                  f"{', '.join(f'{value:.2f}' for value in accuracies)} |", flush=True)


# the normalization each option is pretrained with: "frozen" fine-tunes the BatchNorm backbone
PRETRAINED_WITH = {"batch": "batch", "frozen": "batch", "group": "group"}


def norm(args) -> None:
    print(f"{args.model} at {args.image_size}x{args.image_size} pretrained from scratch on {args.examples} images of zoo_shapes/source (batch "
          f"{args.pretrain_batch}, {args.pretrain_epochs} epochs), then fine-tuned (all layers) at batch 4 for "
          f"{args.epochs} epochs on {args.target_examples} images of zoo_shapes/target (disjoint classes); seed 0 "
          f"and the same data for each normalization; frozen fine-tunes the batch-normalized backbone")
    print("| norm | validation accuracy | validation loss | fine-tuning time |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        pretrained = {}
        for option in args.norms:
            keras.backend.clear_session()
            pretrained_norm = PRETRAINED_WITH[option]
            if pretrained_norm not in pretrained:
                pretrained[pretrained_norm] = Path(scratch) / f"{pretrained_norm}-pretrained"
                finetune.finetune(args.model, epochs=args.pretrain_epochs, batch_size=args.pretrain_batch,
                                  image_size=args.image_size, model_options={"norm": pretrained_norm},
                                  data="builtin:zoo_shapes/source", max_examples=args.examples,
                                  out=pretrained[pretrained_norm], verbose=0)
                keras.backend.clear_session()
            started = time.perf_counter()
            result = finetune.finetune(args.model, epochs=args.epochs, batch_size=4, image_size=args.image_size,
                                       model_options={"norm": option},
                                       weights=str(pretrained[pretrained_norm] / "best.keras"),
                                       data="builtin:zoo_shapes/target", max_examples=args.target_examples,
                                       verbose=0)
            validation = result.metrics["validation"]
            print(f"| {option} | {validation['accuracy']:.4f} | {validation['loss']:.4f} | "
                  f"{time.perf_counter() - started:.0f} s |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    folds_parser = commands.add_parser("folds")
    folds_parser.add_argument("--examples", type=int, default=600)
    folds_parser.add_argument("--epochs", type=int, default=8)
    imbalance_parser = commands.add_parser("imbalance")
    imbalance_parser.add_argument("--rare", type=int, default=4)
    imbalance_parser.add_argument("--epochs", type=int, default=4)
    imbalance_parser.add_argument("--seeds", type=int, default=3)
    norm_parser = commands.add_parser("norm")
    norm_parser.add_argument("--model", default="resnet18")
    norm_parser.add_argument("--norms", nargs="+", default=["batch", "group", "frozen"])
    norm_parser.add_argument("--image-size", type=int, default=64)
    norm_parser.add_argument("--examples", type=int, default=1200)
    norm_parser.add_argument("--pretrain-epochs", type=int, default=4)
    norm_parser.add_argument("--pretrain-batch", type=int, default=32)
    norm_parser.add_argument("--target-examples", type=int, default=200)
    norm_parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    {"folds": folds, "imbalance": imbalance, "norm": norm}[args.command](args)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
