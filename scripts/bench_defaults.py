"""The kit's defaults against the previous ones, end to end: whole `zoo finetune` runs in
alternating processes, their time, validation accuracy and the run's own diagnosis.

    python scripts/bench_defaults.py                  # the default job and the oneDNN check
    python scripts/bench_defaults.py --only default-job --pairs 1 --no-write

- The default job, `zoo finetune lenet5` with no options, with today's defaults against the
  previous ones (15 epochs, no augmentation; oneDNN as TensorFlow alone leaves it), and with today's
  augmentation but oneDNN off, which tells the two changes apart.
- The oneDNN kernels the kit turns on where TensorFlow leaves them off: resnet18 on the built-in
  shapes (32x32, 3 epochs, the same seed and data) with them on and off, and on with a second
  seed: the run-to-run noise the difference is judged against.

Each run is a fresh `python -m finetune finetune ...` process (oneDNN is fixed at start-up), in
alternating order; the wall-clock time includes start-up and the first epoch's tracing, as a user
sees it. Writes its section of BENCHMARKS.md, per machine kind, unless --no-write.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from pathlib import Path

import benchmarks

SECTION = "bench_defaults"
ONEDNN_OFF = {"TF_ENABLE_ONEDNN_OPTS": "0"}
# (label, zoo finetune arguments, environment); the first of each group is its baseline
DEFAULT_JOB = [
    ("previous defaults (15 epochs, no augmentation, oneDNN as TensorFlow leaves it)",
     ["lenet5", "--augment", "none", "--epochs", "15"], "tensorflow"),
    ("today's defaults", ["lenet5"], "kit"),
    ("today's defaults, oneDNN off", ["lenet5"], "off"),
]
ONEDNN_CHECK_ARGUMENTS = ["resnet18", "--data", "builtin:zoo_shapes/32", "--image-size", "32", "--channels", "3",
                          "--epochs", "3", "--max-examples", "2000"]
ONEDNN_CHECK = [
    ("oneDNN off, seed 0", [*ONEDNN_CHECK_ARGUMENTS, "--seed", "0"], "off"),
    ("oneDNN on, seed 0", [*ONEDNN_CHECK_ARGUMENTS, "--seed", "0"], "on"),
    ("oneDNN on, seed 1 (run-to-run noise)", [*ONEDNN_CHECK_ARGUMENTS, "--seed", "1"], "on"),
]


def environment(onednn: str, tensorflow_default: str) -> dict[str, str]:
    """TF_ENABLE_ONEDNN_OPTS for a run: "kit" leaves it unset (the kit decides), "on"/"off" force it,
    "tensorflow" sets what TensorFlow alone chooses on this machine."""
    if onednn == "kit":
        return {}
    if onednn == "tensorflow":
        onednn = tensorflow_default
    return {"TF_ENABLE_ONEDNN_OPTS": "1" if onednn == "on" else "0"}


def run_job(arguments: list[str], env: dict[str, str], folder: Path) -> dict:
    """One `zoo finetune` process: wall seconds, validation accuracy and loss, the diagnosis and
    the epochs' seconds."""
    started = time.perf_counter()
    benchmarks.run_worker(["-m", "finetune", "finetune", *arguments, "--out", str(folder)], env)
    seconds = time.perf_counter() - started
    metrics = json.loads((folder / "metrics.json").read_text())
    with open(folder / "history.csv") as history:
        epochs = [float(row["seconds"]) for row in csv.DictReader(history)]
    return {"seconds": seconds, "accuracy": metrics["validation"]["accuracy"], "loss": metrics["validation"]["loss"],
            "diagnosis": metrics.get("diagnosis", {}).get("message", "-"), "epoch_seconds": epochs}


def compare(settings, pairs: int, tensorflow_default: str, root: Path) -> dict[str, list[dict]]:
    """Runs each setting `pairs` times, in forward then backward order."""
    results = {label: [] for label, _, _ in settings}
    for round_index in range(pairs):
        for label, arguments, onednn in settings if round_index % 2 == 0 else settings[::-1]:
            folder = root / f"run-{len(os.listdir(root))}"
            result = run_job(arguments, environment(onednn, tensorflow_default), folder)
            results[label].append(result)
            benchmarks.log(f"  {label}: {result['seconds']:.0f}s, accuracy {result['accuracy']:.4f}, "
                           f"load {os.getloadavg()[0]:.1f}")
    return results


def table(results: dict[str, list[dict]]) -> str:
    baseline = next(iter(results.values()))
    rows = []
    for label, runs in results.items():
        ratios = benchmarks.paired_ratios([run["seconds"] for run in baseline], [run["seconds"] for run in runs])
        steady = [benchmarks.median(run["epoch_seconds"][1:] or run["epoch_seconds"]) for run in runs]
        rows.append([label, len(runs), f"{benchmarks.median([run['seconds'] for run in runs]):.0f}",
                     f"{benchmarks.median(steady):.2f}", f"{benchmarks.median(ratios):.2f}",
                     " ".join(f"{run['accuracy']:.4f}" for run in runs),
                     " ".join(f"{run['loss']:.3f}" for run in runs), runs[-1]["diagnosis"]])
    headers = ["setting", "runs", "s whole run (median)", "s/epoch after the first", "speed vs the first row",
               "validation accuracy per run", "validation loss per run", "diagnosis (last run)"]
    return benchmarks.markdown_table(headers, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("default-job", "onednn"))
    parser.add_argument("--pairs", type=int, default=2, help="runs of each default-job setting")
    parser.add_argument("--no-write", action="store_true")
    arguments = parser.parse_args()
    info = benchmarks.machine()  # this process starts TensorFlow with its own oneDNN default
    tensorflow_default = "on" if info["onednn"].startswith("on") else "off"
    parts = []
    with tempfile.TemporaryDirectory(prefix="bench_defaults-") as root:
        if arguments.only in (None, "default-job"):
            benchmarks.log("the default job")
            results = compare(DEFAULT_JOB, arguments.pairs, tensorflow_default, Path(root))
            parts += ["### The default job: `zoo finetune lenet5`, no options",
                      "Built-in shapes (4800 training and 1200 validation images, 32x32 gray), the default epochs, seed 0; "
                      "the validation figures are the run's reported ones (its best epoch's model). The speed "
                      "column is the first row's whole-run time over each row's, per pair of runs.",
                      table(results)]
        if arguments.only in (None, "onednn"):
            benchmarks.log("oneDNN, the same seed and data")
            results = compare(ONEDNN_CHECK, 1, tensorflow_default, Path(root))
            parts += ["### oneDNN on and off: the same seed and data",
                      f"`zoo finetune {' '.join(ONEDNN_CHECK_ARGUMENTS)}` (1600 training and 400 validation images); "
                      "one run each; the second seed's difference is the noise a difference is judged against.",
                      table(results)]
    body = "\n\n".join([benchmarks.describe_machine(info), *parts])
    print(body)
    if not arguments.no_write:
        benchmarks.write_section(f"{SECTION}_{info['kind']}",
                                 f"The kit's defaults end to end, machine kind {info['kind']} (scripts/bench_defaults.py)",
                                 body, benchmarks.rerun_command())


if __name__ == "__main__":
    main()
