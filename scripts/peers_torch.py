"""bench_peers' worker for PyTorch: times inference and one training step of each case with a
torchvision or timm model in this process, and prints the seconds as JSON lines.

    /path/to/torch-venv/bin/python scripts/peers_torch.py --library torchvision --cases resnet18:64:16:float32

Each model runs as PyTorch's CPU performance guide advises: channels-last tensors (oneDNN's
layout), `torch.inference_mode()` and `eval()` for inference; `train()`, cross-entropy, backward and
Adam (PyTorch's default implementation) for a training step. bfloat16 and float16 are
`torch.autocast` around the forward pass and the loss, as PyTorch's automatic mixed precision
recipe does, float16 with its gradient scaler. On a machine with a CUDA GPU, everything runs there.
Never imported by the package or the tests.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json

import timm
import torch
import torchvision

import peers

LIBRARIES = ("torchvision", "timm")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
AUTOCAST = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def create(library: str, name: str) -> torch.nn.Module:
    if library == "timm":
        return timm.create_model(name, pretrained=False, num_classes=peers.NUM_CLASSES)
    return getattr(torchvision.models, name)(weights=None, num_classes=peers.NUM_CLASSES)


class Workload:
    """One case's model, optimizer and batch."""

    def __init__(self, library: str, case: peers.Case):
        gc.collect()
        torch.manual_seed(0)
        self.model = create(library, case.model).to(DEVICE, memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=peers.LEARNING_RATE)
        images, labels = peers.batch(case)
        self.images = torch.from_numpy(images).to(DEVICE).contiguous(memory_format=torch.channels_last)
        self.labels = torch.from_numpy(labels).to(DEVICE)
        self.dtype = AUTOCAST.get(case.precision)
        self.scaler = torch.amp.GradScaler(DEVICE, enabled=case.precision == "float16")

    def autocast(self):
        if self.dtype is not None:
            return torch.autocast(DEVICE, dtype=self.dtype)
        return contextlib.nullcontext()

    def infer(self):
        self.model.eval()
        with torch.inference_mode(), self.autocast():
            return self.model(self.images).float().sum().item()  # waits for the device

    def train_step(self):
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            loss = torch.nn.functional.cross_entropy(self.model(self.images), self.labels)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.item()  # waits for the device

    def call(self, mode: str):
        return self.infer if mode == "inference" else self.train_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--library", choices=LIBRARIES, required=True)
    parser.add_argument("--cases", required=True, help="comma-separated model:size:batch:precision")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--samples", type=int, default=1)
    arguments = parser.parse_args()
    print(json.dumps({"torch": torch.__version__, "device": DEVICE, "threads": torch.get_num_threads(),
                      "cpu_capability": torch.backends.cpu.get_cpu_capability()}), flush=True)
    for case in peers.parse_cases(arguments.cases):
        workload = Workload(arguments.library, case)
        for mode in peers.MODES:
            wall, cpu = peers.timed(workload.call(mode), arguments.warmup, arguments.samples)
            print(json.dumps({"case": case.key(mode), "wall": wall, "cpu": cpu}), flush=True)
        del workload


if __name__ == "__main__":
    main()
