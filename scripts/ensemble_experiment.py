"""Does an ensemble of three runs beat the mean single run?

Trains LeNet-5 three times with different seeds (different initializations, data order and
validation split), averages their probabilities, and compares accuracies on the test split (the
one split all three runs held out; each run's validation split held some of the others' training
examples).

    python scripts/ensemble_experiment.py             # 3 runs of 10 epochs on the built-in shapes
    python scripts/ensemble_experiment.py --quick     # 3 runs of 2 epochs, for a smoke run
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from finetune.practice.ensemble import ensemble
from finetune.training.classification import finetune
from finetune.training.config import FinetuneConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--model-options", type=json.loads, default={}, help='e.g. \'{"variant": "modern"}\'')
    parser.add_argument("--data", default=None, help="data spec with a test split (default: the built-in shapes)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--work", type=Path, default=None, help="folder for the runs (default: a temporary one)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.epochs = 2
    work = args.work or Path(tempfile.mkdtemp(prefix="ensemble-experiment-"))

    started = time.perf_counter()
    folders = []
    for seed in range(args.runs):
        folder = work / f"seed{seed}"
        config = FinetuneConfig(model=args.model, model_options=args.model_options, data=args.data,
                                epochs=args.epochs, seed=seed)
        finetune(config, out=folder, verbose=0)
        folders.append(folder)
    result = ensemble(folders, work / "ensemble", split="test")

    print(f"{'run':>10} {'test accuracy':>14} {'test loss':>10}")
    for folder, member in zip(folders, result.members):
        print(f"{folder.name:>10} {member['accuracy']:>14.4f} {member['loss']:>10.4f}")
    mean = sum(member["accuracy"] for member in result.members) / len(result.members)
    best = max(member["accuracy"] for member in result.members)
    print(f"{'mean':>10} {mean:>14.4f}")
    print(f"{'ensemble':>10} {result.ensemble['accuracy']:>14.4f} {result.ensemble['loss']:>10.4f}")
    print(f"\nensemble gain over the mean single run: {result.gain:+.4f} "
          f"(over the best single run: {result.ensemble['accuracy'] - best:+.4f}); "
          f"beats the mean: {'yes' if result.gain > 0 else 'no'}; {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
