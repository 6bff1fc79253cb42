"""Does `zoo tune` find a configuration at least as good as the defaults?

Trains LeNet-5 with the default config, then runs the coarse-to-fine random search with the same
epochs per trial, and compares validation accuracy (the search never sees the test split).

    python scripts/tune_experiment.py                 # 8 trials of 10 epochs on the built-in shapes
    python scripts/tune_experiment.py --quick         # 4 trials of 2 epochs, for a smoke run

Prints the trial table and the tuned-over-defaults difference.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from finetune.practice.tune import describe, tune
from finetune.training.classification import finetune
from finetune.training.config import FinetuneConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--model-options", type=json.loads, default={}, help='e.g. \'{"variant": "modern"}\'')
    parser.add_argument("--data", default=None, help="data spec (default: the built-in shapes)")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the default run and of each trial")
    parser.add_argument("--work", type=Path, default=None, help="folder for the runs (default: a temporary one)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.epochs = 4, 2
    work = args.work or Path(tempfile.mkdtemp(prefix="tune-experiment-"))

    base = FinetuneConfig(model=args.model, model_options=args.model_options, data=args.data, epochs=args.epochs)
    started = time.perf_counter()
    defaults = finetune(base, out=work / "defaults", verbose=0).metrics["validation"]
    print(f"defaults ({describe(base.to_dict())}): validation accuracy {defaults['accuracy']:.4f} "
          f"({time.perf_counter() - started:.0f}s)")

    result = tune(base, work / "tune", trials=args.trials, rounds=args.rounds, verbose=0)
    print(f"\n{'trial':>5} {'round':>5} {'lr':>9} {'wd':>9} {'dropout':>7} {'batch':>5} {'augment':>8} "
          f"{'optimizer':>9} {'val acc':>8} {'seconds':>7}")
    for row in result.results:
        accuracy = f"{row['val_accuracy']:.4f}" if row["status"] == "done" else "failed"
        print(f"{row['trial']:>5} {row['round']:>5} {row['lr']:>9.2e} {row['weight_decay']:>9.2e} "
              f"{row['dropout']:>7.2f} {row['batch_size']:>5} {row['augment']:>8} {row['optimizer']:>9} "
              f"{accuracy:>8} {row['seconds']:>7.0f}")
    if result.best is None:
        print("\nevery trial failed")
        return
    gain = result.best["val_accuracy"] - defaults["accuracy"]
    print(f"\nbest trial {result.best['trial']}: validation accuracy {result.best['val_accuracy']:.4f} vs "
          f"defaults {defaults['accuracy']:.4f} ({gain:+.4f}); at least as good: {'yes' if gain >= 0 else 'no'}")
    print(f"best config: {result.out / 'best' / 'config.json'}; total {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
