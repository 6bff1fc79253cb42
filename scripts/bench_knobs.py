"""Speed knobs on this machine: XLA, mixed precision, oneDNN and batch size, each on vs off.

    python scripts/bench_knobs.py                       # resnet18 at 64x64 and resnet50 at 128x128
    python scripts/bench_knobs.py --quick               # resnet18 at 32x32, small batches, 2 rounds
    python scripts/bench_knobs.py --cases resnet18:64 --batch 64 --repeats 8 --onednn-pairs 3

Training runs the fine-tuning kit's own step (`finetune.training.trainer.Trainer`, full mode, Adam, a
10-class head, `FinetuneConfig(jit=..., precision=...)`, with `finetune.devices`' choice of
policy: mixed_bfloat16 on CPU); inference a tf.function'd `model(x, training=False)`, with
`jit_compile` for XLA. Settings of one process are timed in alternation and compared per round;
oneDNN (TF_ENABLE_ONEDNN_OPTS, read when TensorFlow starts) needs a process per setting, so
processes with it on and off alternate and are compared per pair.

Each setting is also checked for correctness against float32 without XLA from the same weights:
top-1 agreement and the largest probability difference at inference, and the loss after a few
training steps on one batch. A knob is recommended only when it is correct and faster beyond noise.
Writes its section of BENCHMARKS.md unless --quick or --no-write.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import sys
from pathlib import Path

import benchmarks  # noqa: E402  (sets sys.path and TF_CPP_MIN_LOG_LEVEL first)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.util import _pywrap_util_port  # noqa: E402  (whether oneDNN is on: no public API)

from finetune.training import modeling  # noqa: E402
from finetune.training.classification import classifier_trainer  # noqa: E402
from finetune.training.config import FinetuneConfig  # noqa: E402
from finetune.training.precision import cpu_has_bfloat16, precision_policy, set_precision  # noqa: E402

SECTION = "bench_knobs"
NUM_CLASSES = 10
CHECK_STEPS = 3  # training steps of the correctness check, at CHECK_LR (then timing goes on at it)
CHECK_LR = 1e-4
# (label, precision, jit) of the in-process grid; the first is the baseline
SETTINGS = [("float32", "float32", False), ("float32 + XLA", "float32", True),
            ("mixed bf16", "mixed", False), ("mixed bf16 + XLA", "mixed", True)]
# correct: the same top-1 class for nearly every image, the same first training loss (same weights,
# same batch: only the arithmetic differs), and a loss that falls over CHECK_STEPS steps. Later
# losses are not compared: overfitting one batch from scratch, tiny differences change the path.
MIN_TOP1_AGREEMENT = 0.9
MAX_LOSS_DIFFERENCE = 0.05  # first-step loss, relative to float32's


def parse_cases(text: str) -> list[tuple[str, int]]:
    cases = []
    for item in text.split(","):
        name, _, size = item.partition(":")
        cases.append((name, int(size or 64)))
    return cases


class Setup:
    """One (model, size, batch) workload: a fine-tunable model per precision, with equal weights,
    a Trainer and a forward function per setting, and one batch of data."""

    def __init__(self, name: str, size: int, batch: int, settings, lr: float = CHECK_LR):
        keras.backend.clear_session()
        gc.collect()
        keras.utils.set_random_seed(0)
        self.name, self.size, self.batch = name, size, batch
        strategy = tf.distribute.get_strategy()
        rng = np.random.default_rng(0)
        self.images = tf.constant(rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32"))
        self.labels = tf.constant(np.arange(batch) % NUM_CLASSES)
        self.models, self.trainers, self.forwards, self.configs = {}, {}, {}, {}
        self.initial = None
        for label, precision, jit in settings:
            config = FinetuneConfig(model=name, mode="full", batch_size=batch, image_size=size, jit=jit,
                                    precision=precision, schedule="constant", lr=lr, epochs=1)
            if precision not in self.models:  # inference: one untrained model per precision
                self.models[precision] = self._build(config, strategy)
            model = self.models[precision]
            # Training changes the weights: every setting trains a model of its own (the kit's
            # Trainer; with jit, XLA compiles its per-replica step).
            trainer = self._under_policy(config, strategy, lambda: classifier_trainer(
                self._build(config, strategy), config, strategy, steps_per_epoch=1))
            dataset = tf.data.Dataset.from_tensors((self.images, self.labels)).repeat()
            iterator = iter(strategy.experimental_distribute_dataset(dataset))
            self.trainers[label] = (trainer, iterator)
            self.configs[label] = config
            self.forwards[label] = tf.function(lambda x, m=model: tf.cast(m(x, training=False), tf.float32),
                                               jit_compile=jit)

    def _under_policy(self, config, strategy, make):
        previous = keras.mixed_precision.global_policy().name
        set_precision(precision_policy(config.precision, strategy))
        try:
            return make()
        finally:
            set_precision(previous)

    def _build(self, config, strategy):
        """The fine-tunable model as `finetune.training.classification` builds it, with the first build's weights."""
        model = self._under_policy(config, strategy, lambda: modeling.build(config, NUM_CLASSES, (self.size, self.size, 3)))
        if self.initial is None:
            self.initial = model.get_weights()
        model.set_weights(self.initial)
        return model

    def training_call(self, label):
        trainer, iterator = self.trainers[label]
        return lambda: trainer.train_epoch(iterator).loss

    def inference_call(self, label):
        forward = self.forwards[label]
        return lambda: forward(self.images)

    def check(self, baseline: str) -> dict[str, dict]:
        """Top-1 agreement and largest probability difference against the baseline at inference,
        and the losses of CHECK_STEPS training steps from the same weights (before any timing)."""
        reference = self.forwards[baseline](self.images).numpy()
        results = {}
        for label in self.forwards:
            probabilities = self.forwards[label](self.images).numpy()
            losses = [self.trainers[label][0].train_epoch(self.trainers[label][1]).loss for _ in range(CHECK_STEPS)]
            results[label] = {
                "top1_agreement": float(np.mean(probabilities.argmax(-1) == reference.argmax(-1))),
                "max_probability_difference": float(np.abs(probabilities - reference).max()),
                "first_loss": float(losses[0]),
                "loss": float(losses[-1]),
            }
        for label, result in results.items():
            base_loss = results[baseline]["first_loss"]
            result["loss_difference"] = abs(result["first_loss"] - base_loss) / max(abs(base_loss), 1e-6)
            result["correct"] = bool(np.isfinite(result["loss"]) and result["loss"] < result["first_loss"]
                                     and result["top1_agreement"] >= MIN_TOP1_AGREEMENT
                                     and result["loss_difference"] <= MAX_LOSS_DIFFERENCE)
        return results


SLOW = 3.0  # a setting this many times slower than the baseline is timed in SLOW_ROUNDS rounds only
SLOW_ROUNDS = 2


def time_settings(setup: Setup, labels: list[str], repeats: int, min_seconds: float) -> dict[str, list[float]]:
    """Seconds per call of "label|mode", interleaved. The baseline (labels[0]) runs in every round;
    settings over SLOW times slower than it after warm-up get SLOW_ROUNDS rounds of their own with
    the baseline (their paired baseline times under "label|mode@baseline"), as one round of them
    costs as much as many of the others and the verdict is not in doubt."""
    times = benchmarks.Timings({}, {})
    for mode in ("inference", "training"):
        calls = {label: setup.inference_call(label) if mode == "inference" else setup.training_call(label)
                 for label in labels}
        numbers, once = {}, {}
        for label, call in calls.items():
            numbers[label] = benchmarks.calibrate(call, min_seconds)
            once[label] = benchmarks.time_once(call)
        slow = [label for label in labels[1:] if once[label] > SLOW * once[labels[0]]]
        fast = {label: call for label, call in calls.items() if label not in slow}
        result = benchmarks.interleaved(fast, repeats, numbers=numbers)
        times.update({f"{label}|{mode}": seconds for label, seconds in result.items()})
        times.cpu.update({f"{label}|{mode}": seconds for label, seconds in result.cpu.items()})
        for label in slow:
            benchmarks.log(f"    {label} {mode}: {once[label] / once[labels[0]]:.0f}x slower, {SLOW_ROUNDS} rounds")
            result = benchmarks.interleaved({labels[0]: calls[labels[0]], label: calls[label]}, SLOW_ROUNDS,
                                            numbers={labels[0]: numbers[labels[0]], label: 1})
            for key, name in ((f"{label}|{mode}", label), (f"{label}|{mode}@baseline", labels[0])):
                times[key], times.cpu[key] = result[name], result.cpu[name]
    return times


# -- XLA and mixed precision (one process) ------------------------------------------------------

def precision_and_xla(name, size, batch, repeats, min_seconds, settings=SETTINGS) -> list[dict]:
    setup = Setup(name, size, batch, settings)
    checks = setup.check(settings[0][0])
    labels = [label for label, _, _ in settings]
    times = time_settings(setup, labels, repeats, min_seconds)
    rows = []
    for mode in ("inference", "training"):
        for label in labels:
            seconds = times[f"{label}|{mode}"]
            baseline_key = f"{label}|{mode}@baseline" if f"{label}|{mode}@baseline" in times else f"{labels[0]}|{mode}"
            ratio, low, high = benchmarks.speedup(times[baseline_key], seconds)
            cpu_ratio, _, _ = benchmarks.speedup(times.cpu[baseline_key], times.cpu[f"{label}|{mode}"])
            rows.append({"case": f"{name} {size}x{size}", "batch": batch, "mode": mode, "setting": label,
                         "images_per_second": batch / benchmarks.median(seconds), "ratio": ratio, "low": low,
                         "high": high, "verdict": benchmarks.verdict(ratio, low, high) if label != labels[0] else "-",
                         "cpu_ratio": cpu_ratio,
                         **checks[label]})
    return rows


def precision_table(rows) -> str:
    headers = ["case", "batch", "mode", "setting", "img/s", "speedup vs float32 (IQR)", "verdict", "CPU-time speedup",
               "top-1 agree", "max |dp|", "first loss", f"loss at step {CHECK_STEPS}", "correct"]
    body = [[row["case"], row["batch"], row["mode"], row["setting"], f"{row['images_per_second']:.1f}",
             benchmarks.format_ratio(row["ratio"], row["low"], row["high"]), row["verdict"], f"{row['cpu_ratio']:.2f}",
             f"{100 * row['top1_agreement']:.0f}%", f"{row['max_probability_difference']:.1e}",
             f"{row['first_loss']:.4f}", f"{row['loss']:.4f}", "yes" if row["correct"] else "NO"] for row in rows]
    return benchmarks.markdown_table(headers, body)


# -- oneDNN (a process per setting) -------------------------------------------------------------

def worker(arguments) -> None:
    """Times the float32 and mixed settings in this process and prints the times as JSON."""
    settings = [setting for setting in SETTINGS if not setting[2]]
    setup = Setup(arguments.model, arguments.size, arguments.batch, settings)
    times = time_settings(setup, [label for label, _, _ in settings], arguments.repeats, arguments.min_seconds)
    print(json.dumps({"times": times, "onednn": _onednn_enabled()}))


def _onednn_enabled() -> bool | None:
    try:
        return bool(_pywrap_util_port.IsMklEnabled())
    except AttributeError:
        return None


def onednn(name, size, batch, repeats, pairs, min_seconds) -> list[dict]:
    """Alternates processes with oneDNN on and off; each pair of processes gives one ratio."""
    per_setting: dict[str, dict[str, list[float]]] = {"1": {}, "0": {}}
    flags = {}
    for pair in range(pairs):
        for value in ("1", "0") if pair % 2 == 0 else ("0", "1"):
            benchmarks.log(f"  oneDNN={value}, process {pair + 1} of {pairs}")
            output = benchmarks.run_worker(
                [str(Path(__file__).resolve()), "worker", "--model", name, "--size", str(size), "--batch", str(batch),
                 "--repeats", str(repeats), "--min-seconds", str(min_seconds)],
                env={"TF_ENABLE_ONEDNN_OPTS": value, "TF_CPP_MIN_LOG_LEVEL": "3"})
            result = json.loads(output.strip().splitlines()[-1])
            flags[value] = result["onednn"]
            for key, seconds in result["times"].items():
                if "@" in key:  # a slow setting's own baseline rounds
                    continue
                # one figure per process: the median of its rounds
                per_setting[value].setdefault(key, []).append(benchmarks.median(seconds))
    rows = []
    for key in per_setting["1"]:
        label, mode = key.split("|")
        on, off = per_setting["1"][key], per_setting["0"][key]
        ratio, low, high = benchmarks.speedup(off, on)
        rows.append({"case": f"{name} {size}x{size}", "batch": batch, "mode": mode, "precision": label,
                     "on": batch / benchmarks.median(on), "off": batch / benchmarks.median(off),
                     "ratio": ratio, "low": low, "high": high, "verdict": benchmarks.verdict(ratio, low, high),
                     "flags": flags})
    return rows


def onednn_table(rows) -> str:
    headers = ["case", "batch", "mode", "precision", "img/s oneDNN on", "img/s oneDNN off",
               "on vs off speedup (range over pairs)", "verdict"]
    body = [[row["case"], row["batch"], row["mode"], row["precision"], f"{row['on']:.1f}", f"{row['off']:.1f}",
             benchmarks.format_ratio(row["ratio"], row["low"], row["high"]), row["verdict"]] for row in rows]
    return benchmarks.markdown_table(headers, body)


# -- batch size ---------------------------------------------------------------------------------

def batch_sizes(name, size, batches, repeats, min_seconds) -> list[dict]:
    """Throughput per batch size (float32, no XLA), in alternation; relative to the largest batch."""
    calls = {}
    setups = []
    for batch in batches:
        setup = Setup(name, size, batch, SETTINGS[:1]) if not setups else _same_graph_setup(setups[0], batch)
        setups.append(setup)
        calls[f"{batch}|inference"] = setup.inference_call(SETTINGS[0][0])
        calls[f"{batch}|training"] = setup.training_call(SETTINGS[0][0])
    times = benchmarks.interleaved(calls, repeats, min_seconds=min_seconds)
    rows = []
    reference_batch = max(batches)
    for mode in ("inference", "training"):
        reference = [seconds / reference_batch for seconds in times[f"{reference_batch}|{mode}"]]
        for batch in batches:
            per_image = [seconds / batch for seconds in times[f"{batch}|{mode}"]]
            ratio, low, high = benchmarks.speedup(reference, per_image)  # this batch's rate over the reference's
            rows.append({"case": f"{name} {size}x{size}", "mode": mode, "batch": batch,
                         "images_per_second": 1 / benchmarks.median(per_image), "ratio": ratio,
                         "low": low, "high": high})
    return rows


def _same_graph_setup(first: Setup, batch: int) -> Setup:
    """Another batch size for the same model: new data and trainer, no second model build."""
    setup = object.__new__(Setup)
    setup.name, setup.size, setup.batch = first.name, first.size, batch
    rng = np.random.default_rng(batch)
    setup.images = tf.constant(rng.uniform(-1, 1, (batch, first.size, first.size, 3)).astype("float32"))
    setup.labels = tf.constant(np.arange(batch) % NUM_CLASSES)
    label = SETTINGS[0][0]
    trainer, _ = first.trainers[label]
    strategy = tf.distribute.get_strategy()
    dataset = tf.data.Dataset.from_tensors((setup.images, setup.labels)).repeat()
    config = dataclasses.replace(first.configs[label], batch_size=batch)
    setup.models = first.models
    setup.configs = {label: config}
    setup.trainers = {label: (classifier_trainer(trainer.model, config, strategy, steps_per_epoch=1),
                              iter(strategy.experimental_distribute_dataset(dataset)))}
    setup.forwards = first.forwards
    return setup


def batch_table(rows) -> str:
    largest = max(row["batch"] for row in rows)
    headers = ["case", "mode", "batch", "img/s", f"throughput vs batch {largest} (IQR)"]
    body = [[row["case"], row["mode"], row["batch"], f"{row['images_per_second']:.1f}",
             benchmarks.format_ratio(row["ratio"], row["low"], row["high"])] for row in rows]
    return benchmarks.markdown_table(headers, body)


# -- the recommendation -------------------------------------------------------------------------

def recommend(precision_rows, onednn_rows, batch_rows) -> str:
    """Which settings should be the CPU defaults, from this run's training rows."""
    lines = []
    training = [row for row in precision_rows if row["mode"] == "training"]

    def decide(setting):
        rows = [row for row in training if row["setting"] == setting]
        correct = all(row["correct"] for row in rows)
        faster = all(row["verdict"] == "faster" for row in rows)
        slower = [row for row in rows if row["verdict"] == "slower"]
        summary = ", ".join(f"{row['case']}: x{row['ratio']:.2f}" for row in rows)
        return correct and faster, correct, slower, summary

    xla_on, xla_correct, xla_slower, xla_summary = decide("float32 + XLA")
    lines.append(f"- `FinetuneConfig.jit` on CPU: **{'True' if xla_on else 'False'}**. XLA's training speedup "
                 f"over float32 ({xla_summary}); "
                 + ("correct and faster in every case." if xla_on else
                    ("slower beyond noise in " + ", ".join(row["case"] for row in xla_slower) + ". " if xla_slower else
                     "not faster beyond noise in every case. ")
                    + ("" if xla_correct else "It also failed the correctness check.")))
    mixed_on, mixed_correct, mixed_slower, mixed_summary = decide("mixed bf16")
    fastest = "mixed_bfloat16" if mixed_on else "float32"
    auto = precision_policy("auto", tf.distribute.get_strategy())
    native = "with" if cpu_has_bfloat16() else "without"
    lines.append(f"- precision on this CPU ({native} native bfloat16): **{fastest}**. "
                 f"mixed_bfloat16's training speedup ({mixed_summary}); "
                 + ("correct and faster in every case. " if mixed_on else
                    ("slower beyond noise in " + ", ".join(row["case"] for row in mixed_slower) + ". " if mixed_slower else
                     "not faster beyond noise in every case. ")
                    + ("" if mixed_correct else "It also failed the correctness check (loss or top-1 drift). "))
                 + f"`FinetuneConfig(precision=\"auto\")`, the default, picks {auto} here"
                 + (", the same." if auto == fastest else ": not the fastest correct choice; revisit "
                    "`finetune.training.precision.precision_policy`."))
    if onednn_rows:
        train_float = [row for row in onednn_rows if row["mode"] == "training" and row["precision"] == "float32"]
        summary = ", ".join(f"{row['case']}: x{row['ratio']:.2f}" for row in train_float)
        keep = all(row["verdict"] != "slower" for row in train_float)
        train_mixed = [row for row in onednn_rows if row["mode"] == "training" and row["precision"] != "float32"]
        mixed_summary = ", ".join(f"{row['case']}: x{row['ratio']:.2f}" for row in train_mixed)
        lines.append(f"- oneDNN (TF_ENABLE_ONEDNN_OPTS, TensorFlow's default on x86 Linux): "
                     f"**{'leave it on' if keep else 'turn it off'}** (float32 training, on vs off: {summary}"
                     + (f"; mixed_bfloat16 training: {mixed_summary}, its bfloat16 kernels are oneDNN's" if train_mixed else "")
                     + ").")
    if batch_rows:
        for case in sorted({row["case"] for row in batch_rows}):
            rows = [row for row in batch_rows if row["case"] == case and row["mode"] == "training"]
            best = max(rows, key=lambda row: row["images_per_second"])
            smallest_near_best = min((row for row in rows if row["images_per_second"] >= 0.95 * best["images_per_second"]),
                                     key=lambda row: row["batch"])
            lines.append(f"- batch size, {case}: training throughput peaks at batch {best['batch']} "
                         f"({best['images_per_second']:.1f} img/s); batch {smallest_near_best['batch']} is within 5% of it. "
                         "Batch size also changes the optimization (steps per epoch, noise), so the default "
                         "should follow the data and the learning rate, not speed alone.")
    lines.append("- GPU/TPU: not measured here (no accelerator on this machine). With `precision=\"auto\"`, "
                 "`finetune.devices` picks mixed_float16 with loss scaling on GPUs with tensor cores (compute "
                 "capability 7.0+) and mixed_bfloat16 on TPU, per TensorFlow's mixed precision guide; XLA stays "
                 "off unless `jit=True`. Rerun this script on such a machine to check those choices.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command")
    work = commands.add_parser("worker", help="(internal) time float32 and mixed in this process")
    work.add_argument("--model", required=True)
    work.add_argument("--size", type=int, required=True)
    work.add_argument("--batch", type=int, required=True)
    work.add_argument("--repeats", type=int, required=True)
    work.add_argument("--min-seconds", type=float, default=0.3)
    parser.add_argument("--cases", default="resnet18:64,resnet50:128", help="model:size, comma-separated")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", default="8,16,32,64,128", help="for the batch-size sweep (first case)")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--onednn-pairs", type=int, default=3)
    parser.add_argument("--onednn-repeats", type=int, default=2, help="rounds in each oneDNN process")
    parser.add_argument("--min-seconds", type=float, default=0.3)
    parser.add_argument("--quick", action="store_true", help="resnet18 at 32x32, batch 16, 2 rounds, 1 oneDNN pair")
    parser.add_argument("--no-write", action="store_true")
    arguments = parser.parse_args()
    if arguments.command == "worker":
        worker(arguments)
        return
    if arguments.quick:
        arguments.cases, arguments.batch, arguments.batches = "resnet18:32", 16, "8,16"
        arguments.repeats, arguments.onednn_pairs, arguments.onednn_repeats, arguments.min_seconds = 2, 1, 2, 0.1
    cases = parse_cases(arguments.cases)
    batches = [int(batch) for batch in arguments.batches.split(",")]

    info = benchmarks.machine()
    peak = benchmarks.matmul_peak(repeats=5)
    precision_rows, onednn_rows, skipped_xla = [], [], []
    settings = SETTINGS
    for name, size in cases:
        benchmarks.log(f"{name} at {size}x{size}, batch {arguments.batch}: {', '.join(label for label, _, _ in settings)}")
        precision_rows += precision_and_xla(name, size, arguments.batch, arguments.repeats, arguments.min_seconds,
                                            settings)
        xla_rows = [row for row in precision_rows if row["setting"] == "float32 + XLA"]
        if xla_rows and all(row["high"] < 1 / 2 for row in xla_rows) and settings is SETTINGS:
            # XLA at least twice as slow in both modes: later (larger) cases would spend most of
            # their time confirming it.
            settings = [setting for setting in SETTINGS if not setting[2]]
            skipped_xla.append(f"{name} {size}x{size}")
        print(precision_table([row for row in precision_rows if row["case"] == f"{name} {size}x{size}"]), flush=True)
    for name, size in cases:
        benchmarks.log(f"{name} at {size}x{size}: oneDNN on/off in {2 * arguments.onednn_pairs} processes")
        onednn_rows += onednn(name, size, arguments.batch, arguments.onednn_repeats, arguments.onednn_pairs,
                              arguments.min_seconds)
    print(onednn_table(onednn_rows), flush=True)
    name, size = cases[0]
    benchmarks.log(f"{name} at {size}x{size}: batch sizes {batches}")
    batch_rows = batch_sizes(name, size, batches, arguments.repeats, arguments.min_seconds)
    print(batch_table(batch_rows), flush=True)

    flags = onednn_rows[0]["flags"] if onednn_rows else {}
    report = "\n\n".join([
        f"Full-mode fine-tuning steps (finetune.training.trainer.Trainer, Adam, {NUM_CLASSES}-class head) and "
        f"inference (`model(x, training=False)` in a tf.function), median of {arguments.repeats} interleaved rounds "
        "of wall-clock time (the CPU-time column shows the work done, which XLA and threading change too); "
        f"correctness against float32 without XLA from the same weights (top-1 agreement on the batch, "
        f"first training loss on it within {MAX_LOSS_DIFFERENCE:.0%}, and a loss that falls over {CHECK_STEPS} steps).",
        "### XLA and mixed precision\n\nXLA training is `FinetuneConfig(jit=True)`: XLA compiles the Trainer's "
        "per-replica step (forward, gradients, optimizer updates). "
        f"Settings over {SLOW:.0f}x slower than float32 after warm-up are timed in {SLOW_ROUNDS} rounds"
        + (f"; XLA was left out after {', '.join(skipped_xla)}, where it was over 2x slower in both modes."
           if skipped_xla else "."),
        precision_table(precision_rows),
        f"### oneDNN\n\nTF_ENABLE_ONEDNN_OPTS=1 and =0 in alternating processes ({arguments.onednn_pairs} pairs of "
        f"{arguments.onednn_repeats} rounds each; TensorFlow reported oneDNN {flags}).",
        onednn_table(onednn_rows),
        "### Batch size", batch_table(batch_rows),
        "### Recommended defaults", recommend(precision_rows, onednn_rows, batch_rows),
    ])
    print()
    print(report)
    if not (arguments.quick or arguments.no_write):
        benchmarks.write_section(SECTION, "Speed knobs: XLA, mixed precision, oneDNN, batch size (scripts/bench_knobs.py)",
                                 benchmarks.describe_machine(info, peak) + "\n\n" + report,
                                 benchmarks.rerun_command())


if __name__ == "__main__":
    sys.exit(main())
