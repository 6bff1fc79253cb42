"""The zoo against what a user would use instead: torchvision and timm in PyTorch, on this machine.

    python scripts/bench_peers.py --precisions float32 --sizes 64            # one bounded run
    python scripts/bench_peers.py --models resnet18,resnet50 --sizes 224 --batch 16
    python scripts/bench_peers.py --quick                                   # resnet18 at 32, 2 rounds, no write

Same model, input size, batch and precision on each side; inference (a forward pass in inference
mode) and a full training step (forward, cross-entropy, backward, Adam). The zoo runs as its
fine-tuning kit runs it (scripts/peers_keras.py); torchvision and timm as PyTorch's CPU
performance guide advises (scripts/peers_torch.py, channels-last, autocast for bfloat16).

Each side runs in a process of its own (two frameworks cannot share one fairly: both start their
thread pools), one process per side per round, in alternating order (A B C, C B A, ...), so that a
busy machine slows every side alike; every process builds its models and times each call after a
warm-up. Reported: the median over rounds of images per second, and the median per-round speed
ratio with its interquartile range (the range when under 4 rounds).

Where TensorFlow leaves its oneDNN kernels off by itself (x86 CPUs with AVX2 but no AVX-512 VNNI)
and the kit turns them on (`finetune.runtime`), a further side, "zoo, oneDNN off", times the zoo as
TensorFlow alone would run it: the baseline of that change, in the same rounds.

PyTorch is never a dependency of the package or the tests: give its interpreter with
--torch-python (or ZOO_TORCH_PYTHON), e.g. a virtual environment with torch, torchvision and timm.
Each run replaces its own rows in the section of this machine kind in BENCHMARKS.md, keeping the
rows of earlier runs (runs of the whole grid take hours on 2 cores: split them by size and precision).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time

import benchmarks
import peers

SECTION = "bench_peers"
SIDES = {
    "zoo": "zoo (TensorFlow, the kit's settings)",
    "zoo-tf-default": "zoo, oneDNN off (TensorFlow's own default on this kind)",
    "torchvision": "torchvision (PyTorch)",
    "timm": "timm (PyTorch)",
}
PEERS = ("torchvision", "timm")
DATA_MARK = re.compile(r"<!-- data: (.*?) -->", re.S)


def worker_command(side: str, cases: list[peers.Case], warmup: int, samples: int) -> list[str]:
    specs = ",".join(case.spec() for case in cases)
    common = ["--cases", specs, "--warmup", str(warmup), "--samples", str(samples)]
    if side in PEERS:
        return ["scripts/peers_torch.py", "--library", side, *common]
    return ["scripts/peers_keras.py", *common]


def run_side(side: str, cases: list[peers.Case], arguments) -> tuple[dict, dict]:
    """One worker process of `side`: ({case key: (median wall, median CPU seconds)}, the worker's
    own report)."""
    env = {"TF_ENABLE_ONEDNN_OPTS": "0"} if side == "zoo-tf-default" else {}
    python = arguments.torch_python if side in PEERS else None
    output = benchmarks.run_worker(worker_command(side, cases, arguments.warmup, arguments.samples), env,
                                   timeout=arguments.worker_timeout, python=python)
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    report = lines[0]
    seconds = {line["case"]: (benchmarks.median(line["wall"]), benchmarks.median(line["cpu"])) for line in lines[1:]}
    return seconds, report


def measure(sides: list[str], cases: list[peers.Case], arguments) -> tuple[benchmarks.Timings, dict]:
    """Wall seconds {side: {case key: [per round]}} (process CPU seconds in `.cpu`) and each side's
    worker report, in alternating rounds."""
    times = benchmarks.Timings({side: {} for side in sides}, {side: {} for side in sides})
    reports = {}
    for round_index in range(arguments.rounds):
        order = sides if round_index % 2 == 0 else sides[::-1]
        for side in order:
            started = time.perf_counter()
            seconds, reports[side] = run_side(side, cases, arguments)
            for key, (wall, cpu) in seconds.items():
                times[side].setdefault(key, []).append(wall)
                times.cpu[side].setdefault(key, []).append(cpu)
            benchmarks.log(f"  round {round_index + 1}/{arguments.rounds} {side}: {time.perf_counter() - started:.0f}s, "
                           f"load {os.getloadavg()[0]:.1f}")
    return times, reports


def rows_of(times: benchmarks.Timings, sides: list[str], run: int) -> dict[str, dict]:
    """Table rows by case key: each side's median img/s, and the zoo's speed over each other side's
    (their time over the zoo's, per round: > 1 means the zoo is faster), in wall-clock and in CPU time."""
    rows = {}
    for key, zoo_seconds in times["zoo"].items():
        case, mode = peers.parse_key(key)
        row = {"model": case.model, "size": case.size, "batch": case.batch, "precision": case.precision,
               "mode": mode, "run": run, "rounds": len(zoo_seconds), "images_per_second": {}, "zoo_speed": {},
               "zoo_cpu_speed": {}}
        for side in sides:
            seconds = times[side].get(key)
            if not seconds:
                continue
            row["images_per_second"][side] = case.batch / benchmarks.median(seconds)
            if side != "zoo":
                row["zoo_speed"][side] = benchmarks.speedup(seconds, zoo_seconds)
                row["zoo_cpu_speed"][side] = benchmarks.speedup(times.cpu[side][key], times.cpu["zoo"][key])
        rows[key] = row
    return rows


def previous_data(kind: str) -> dict:
    """The rows and runs an earlier run of this machine kind left in its section."""
    text = benchmarks.read_section(f"{SECTION}_{kind}")
    match = DATA_MARK.search(text or "")
    return json.loads(match.group(1)) if match else {"rows": {}, "runs": []}


def ordered(rows: dict) -> list[dict]:
    precision_order = {precision: index for index, precision in enumerate(peers.PRECISIONS)}
    return sorted(rows.values(), key=lambda row: (precision_order.get(row["precision"], 9), row["size"],
                                                  row["model"], row["mode"]))


def speed_cell(row: dict, side: str) -> str:
    if side not in row["zoo_speed"]:
        return "-"
    ratio, low, high = row["zoo_speed"][side]
    return f"{benchmarks.format_ratio(ratio, low, high)} {benchmarks.verdict(ratio, low, high)}"


def table(rows: dict) -> str:
    present = [side for side in SIDES if any(side in row["images_per_second"] for row in rows.values())]
    headers = ["model", "input", "batch", "precision", "mode",
               *(f"{side} img/s" for side in present),
               *(f"zoo vs {side} (IQR)" for side in present if side != "zoo"),
               *(f"CPU time, zoo vs {side}" for side in present if side in PEERS), "run"]
    body = []
    for row in ordered(rows):
        body.append([row["model"], f"{row['size']}x{row['size']}", row["batch"], row["precision"], row["mode"],
                     *(f"{row['images_per_second'][side]:.2f}" if side in row["images_per_second"] else "-"
                       for side in present),
                     *(speed_cell(row, side) for side in present if side != "zoo"),
                     *(f"{row['zoo_cpu_speed'][side][0]:.2f}" if side in row["zoo_cpu_speed"] else "-"
                       for side in present if side in PEERS), row["run"]])
    return benchmarks.markdown_table(headers, body)


def section_body(data: dict, info: dict) -> str:
    runs = "\n".join(
        f"{index + 1}. {run['date']}, load average {run['load_start']:.1f} at the start and {run['load_end']:.1f} "
        f"at the end, {run['rounds']} rounds, {run['minutes']:.0f} min; zoo oneDNN {run['zoo_onednn']}; "
        f"{run['torch']}: `{run['command']}`"
        for index, run in enumerate(data["runs"]))
    return "\n".join([
        benchmarks.describe_machine(info),
        "",
        "Each side in its own processes, one per round, in alternating order; images per second are medians "
        "over rounds of wall-clock time, and \"zoo vs X\" is the median per-round ratio of X's time to the "
        "zoo's (> 1: the zoo is faster) with its interquartile range (with fewer than 4 rounds, the range), "
        "and the verdict (faster, slower, or a tie within 3%). The machine is shared with other work: the "
        "load average of each run is listed, and absolute rates move with it while the per-round ratios "
        "hold better. The CPU-time columns give the same ratio in process CPU seconds (the work done, "
        "without the waits for a core; PyTorch's OpenMP threads also spin while they wait, so theirs "
        "counts some waiting too): on a busy machine, PyTorch's OpenMP threads meet at a barrier after "
        "every operation and each waits for the slowest, where TensorFlow's thread pool lets idle threads "
        "take other work, so wall-clock times favour the zoo more than on an idle machine. The zoo's resnet50 is keras.applications' v1 (stride on the 1x1 convolution, 3.9 "
        "GMACs at 224) and torchvision's and timm's are v1.5 (stride on the 3x3, 4.1 GMACs): theirs does "
        "about 5% more work; resnet18 and vgg16 are the same networks on both sides. Training is Adam with "
        "a 1000-class head; bfloat16 is Keras' mixed_bfloat16 policy and torch.autocast.",
        "",
        "Runs (the last column of the table):",
        "",
        runs,
        "",
        table(data["rows"]),
        "",
        f"<!-- data: {json.dumps(data, separators=(',', ':'))} -->",
    ])


def torch_version(python: str) -> str:
    output = benchmarks.run_worker(["-c", "import torch, torchvision, timm; print(f'torch {torch.__version__}, "
                                         "torchvision {torchvision.__version__}, timm {timm.__version__}')"],
                                   {}, timeout=300, python=python)
    return output.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="resnet18,resnet50,vgg16")
    parser.add_argument("--sizes", default="64,224", help="input heights and widths")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--precisions", default="float32,bfloat16")
    parser.add_argument("--sides", default=None, help=f"of {', '.join(SIDES)} (default: all that apply here)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls per mode in each process")
    parser.add_argument("--samples", type=int, default=1, help="timed calls per mode in each process")
    parser.add_argument("--torch-python", default=os.environ.get("ZOO_TORCH_PYTHON", "python"),
                        help="an interpreter with torch, torchvision and timm (default: $ZOO_TORCH_PYTHON)")
    parser.add_argument("--worker-timeout", type=float, default=3600)
    parser.add_argument("--quick", action="store_true", help="resnet18 at 32x32, batch 4, 2 rounds; no write")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--rows-json", help="also write this run's rows (the table's data) to this JSON file")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.models, arguments.sizes, arguments.batch, arguments.rounds = "resnet18", "32", 4, 2
        arguments.no_write = True

    info = benchmarks.machine()  # in this process TensorFlow starts with its own oneDNN default
    load_start = os.getloadavg()[0]
    sides = arguments.sides.split(",") if arguments.sides else [
        side for side in SIDES if side != "zoo-tf-default" or info["onednn"].startswith("off (TensorFlow")]
    cases = [peers.Case(model, int(size), arguments.batch, precision)
             for precision in arguments.precisions.split(",") for size in arguments.sizes.split(",")
             for model in arguments.models.split(",")]
    torch = torch_version(arguments.torch_python) if set(sides) & set(PEERS) else "no PyTorch side"
    benchmarks.log(f"{len(cases)} cases x 2 modes, sides {', '.join(sides)}, {arguments.rounds} rounds; {torch}")
    started = time.perf_counter()
    times, reports = measure(sides, cases, arguments)

    data = previous_data(info["kind"])
    run = {"date": info["date"], "load_start": load_start, "load_end": os.getloadavg()[0],
           "rounds": arguments.rounds, "minutes": (time.perf_counter() - started) / 60,
           "zoo_onednn": "on" if reports.get("zoo", {}).get("onednn") else "off", "torch": torch,
           "command": benchmarks.rerun_command()}
    data["runs"].append(run)
    rows = rows_of(times, sides, len(data["runs"]))
    data["rows"].update(rows)
    print(table(rows))
    if arguments.rows_json:
        with open(arguments.rows_json, "w") as file:
            json.dump({"kind": info["kind"], "torch": torch, "rows": rows}, file, indent=1)
    if not arguments.no_write:
        benchmarks.write_section(f"{SECTION}_{info['kind']}",
                                 f"The zoo vs torchvision and timm, machine kind {info['kind']} (scripts/bench_peers.py)",
                                 section_body(data, info))


if __name__ == "__main__":
    main()
