"""How long the `zoo` command takes to answer the commands that need no model or data, beside
starting TensorFlow: wall time of whole processes, medians of interleaved repetitions.

    python scripts/bench_startup.py              # 5 rounds, prints the table and writes BENCHMARKS.md
    python scripts/bench_startup.py --rounds 9 --no-write

Each round runs every command once, in turn, as separate processes (`zoo` from this interpreter's
environment), so a drift of the machine's speed reaches them all alike. The machine should be idle.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import benchmarks

COMMANDS = {
    "zoo --help": ["zoo", "--help"],
    "zoo list": ["zoo", "list"],
    "zoo list --pretrained": ["zoo", "list", "--pretrained"],
    "zoo info resnet50": ["zoo", "info", "resnet50"],
    "zoo finetune --help": ["zoo", "finetune", "--help"],
    'python -c "import tensorflow"': [sys.executable, "-c", "import tensorflow"],
}
TARGET_SECONDS = 1.5


def zoo_executable() -> str:
    """The `zoo` script beside this interpreter (the environment the project is installed in)."""
    beside = Path(sys.executable).with_name("zoo")
    found = str(beside) if beside.exists() else shutil.which("zoo")
    if not found:
        raise SystemExit("no `zoo` command beside this Python or on PATH: pip install -e . first")
    return found


def time_command(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="Print the table only.")
    args = parser.parse_args()
    load_at_start = os.getloadavg()[0]
    zoo = zoo_executable()
    commands = {label: [zoo, *argv[1:]] if argv[0] == "zoo" else argv for label, argv in COMMANDS.items()}
    for argv in commands.values():  # warm the file cache, so that the first round is not a cold start
        time_command(argv)
    seconds = {label: [] for label in commands}
    for round_index in range(args.rounds):
        for label, argv in commands.items():
            seconds[label].append(time_command(argv))
        benchmarks.log(f"round {round_index + 1}/{args.rounds} done")
    rows = []
    for label, values in seconds.items():
        low, high = benchmarks.quartiles(values)
        target = "" if label.startswith("python") else ("yes" if benchmarks.median(values) < TARGET_SECONDS else "no")
        rows.append([label, f"{benchmarks.median(values):.2f}", f"{low:.2f}-{high:.2f}", target])
    table = benchmarks.markdown_table(["command", "median s", "IQR s", f"under {TARGET_SECONDS} s"], rows)
    print(table)
    if args.no_write:
        return
    info = dict(benchmarks.machine(), load_average=load_at_start)
    body = (f"{benchmarks.describe_machine(info)}\n\nWall time of each command as a whole process, median of "
            f"{args.rounds} interleaved rounds. The commands that read the registry answer without starting "
            f"TensorFlow; `zoo finetune --help` too (the command's work, and TensorFlow, load when it runs).\n\n"
            f"{table}\n")
    benchmarks.write_section("bench_startup", "Start-up of the zoo command (scripts/bench_startup.py)", body,
                             benchmarks.rerun_command())


if __name__ == "__main__":
    main()
