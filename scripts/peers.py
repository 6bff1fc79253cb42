"""What bench_peers and its two workers (the zoo's in TensorFlow, the peers' in PyTorch) share: the
cases, their batches of data and the training settings. Imports numpy alone, so both sides can."""

from __future__ import annotations

import dataclasses
import time

import numpy as np

MODES = ("inference", "training")
PRECISIONS = ("float32", "bfloat16", "float16")  # float16: mixed precision with loss scaling, for GPUs
NUM_CLASSES = 1000  # an ImageNet head, the peers' default
LEARNING_RATE = 1e-4  # Adam's; small, so timing steps never diverge


@dataclasses.dataclass(frozen=True)
class Case:
    """One model at one input size, batch and precision (timed in both modes)."""

    model: str
    size: int
    batch: int
    precision: str

    def key(self, mode: str) -> str:
        return f"{self.model}:{self.size}:{self.batch}:{self.precision}:{mode}"

    def spec(self) -> str:
        return f"{self.model}:{self.size}:{self.batch}:{self.precision}"


def parse_cases(text: str) -> list[Case]:
    """Cases from "model:size:batch:precision,..." (as `Case.spec` writes them)."""
    cases = []
    for item in filter(None, text.split(",")):
        model, size, batch, precision = item.split(":")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        cases.append(Case(model, int(size), int(batch), precision))
    return cases


def parse_key(key: str) -> tuple[Case, str]:
    model, size, batch, precision, mode = key.split(":")
    return Case(model, int(size), int(batch), precision), mode


def batch(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """The same seeded batch for every framework: images (N, 3, H, W) float32 in [-1, 1] (the
    zoo's side transposes them to channels-last) and integer labels."""
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (case.batch, 3, case.size, case.size)).astype("float32")
    labels = rng.integers(0, NUM_CLASSES, case.batch).astype("int64")
    return images, labels


def timed(call, warmup: int, samples: int) -> tuple[list[float], list[float]]:
    """Wall and process CPU seconds of `samples` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    wall, cpu = [], []
    for _ in range(samples):
        start, cpu_start = time.perf_counter(), time.process_time()
        call()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    return wall, cpu
