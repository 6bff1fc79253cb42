"""Training memory of a model, estimated from its layers before anything is allocated.

What a training step holds (the course notes' list: parameters, the updater, the mini-batch, the
size of one sample, the activations):
- the parameters, float32 whatever the precision policy (Keras keeps variables in float32);
- one gradient per trainable parameter, float32;
- the optimizer's state: slots per trainable parameter (SGD with momentum 1, Adam/AdamW 2, RMSprop
  with momentum 2), one more copy with an exponential moving average of the weights;
- the activations the backward pass needs: about every layer's output for the whole batch, in
  the compute dtype (float32, or 16 bits under mixed precision);
- the batch of input images, float32;
- the runtime: a base for the traced training step, a share per layer (its kernels and their
  buffers), and temporaries of the optimizer's update in proportion to the weights.

The factors of the last three are fitted to the measured peak of training steps of several zoo
models, batch sizes and optimizers (`scripts/bench_memory.py`, which refits them and checks each
case with the others' fit), with TensorFlow 2.21 on CPU; the estimate is a model, not a bound.
"""

from __future__ import annotations

import dataclasses
import math
import re

import keras

from zoo.errors import ZooError
from zoo.flops import graph_nodes, shapes_only
from zoo.registry import get_spec

FLOAT32_BYTES = 4
# optimizer state per trainable parameter, in float32 copies (the kit's SGD and RMSprop use momentum)
OPTIMIZER_SLOTS = {"sgd": 1, "adam": 2, "adamw": 2, "rmsprop": 2, "none": 0}
# fitted by scripts/bench_memory.py (least squares over its cases, AMD EPYC CPU, TensorFlow 2.21)
ACTIVATION_FACTOR = 0.89  # bytes held per byte of layer outputs
UPDATE_FACTOR = 0.12  # optimizer-update temporaries, per byte of parameters, gradients and state
RUNTIME_BASE = 85 * 2**20  # the traced training step and its runtime
RUNTIME_PER_LAYER = int(1.8 * 2**20)
PRECISION_BYTES = {"float32": 4, "mixed": 2, "mixed_bfloat16": 2, "mixed_float16": 2}
UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "kib": 2**10, "m": 2**20, "mb": 2**20, "mib": 2**20,
         "g": 2**30, "gb": 2**30, "gib": 2**30, "t": 2**40, "tb": 2**40, "tib": 2**40}


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a training step needs, by what needs them."""

    batch_size: int
    parameters: int
    gradients: int
    optimizer: int
    activations: int  # for the whole batch
    inputs: int  # the batch of images
    runtime: int  # the traced step, per-layer buffers and update temporaries

    @property
    def fixed(self) -> int:
        """What does not grow with the batch."""
        return self.parameters + self.gradients + self.optimizer + self.runtime

    @property
    def per_example(self) -> float:
        return (self.activations + self.inputs) / self.batch_size

    @property
    def total(self) -> int:
        return self.fixed + self.activations + self.inputs

    def largest_batch(self, budget: int) -> int:
        """The largest batch whose estimate fits `budget` bytes (0 when not even the weights fit)."""
        return max(0, math.floor((budget - self.fixed) / self.per_example))

    def to_dict(self) -> dict:
        return {"batch_size": self.batch_size, "parameters": self.parameters, "gradients": self.gradients,
                "optimizer": self.optimizer, "activations": self.activations, "inputs": self.inputs,
                "runtime": self.runtime, "total": self.total}


def parse_bytes(text: str) -> int:
    """'8GiB', '512 MB', '3e9' -> bytes (binary units: a GB here is 2**30, as memory is sold)."""
    match = re.fullmatch(r"\s*([0-9.]+(?:e[0-9]+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not match or match.group(2).lower() not in UNITS:
        raise ZooError(f"cannot read {text!r} as an amount of memory: write it like 8GiB, 512MB or 3e9")
    return int(float(match.group(1)) * UNITS[match.group(2).lower()])


def layer_outputs(model) -> tuple[int, int]:
    """(elements of every layer call's output for one example, number of layer calls), nested
    models looked into."""
    total = calls = 0
    for layer, _, outputs in graph_nodes(model):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        calls += 1
        for tensor in outputs:
            dims = tuple(tensor.shape)[1:]
            if any(dim is None for dim in dims):
                raise ZooError("cannot estimate the activations of an input of unknown size; give the image size")
            total += math.prod(dims)
    return total, calls


def estimate(model, batch_size: int, *, optimizer: str = "adam", precision: str = "float32",
             ema: bool = False) -> MemoryEstimate:
    """The training memory of a built `model` (a shapes-only build will do) at `batch_size`."""
    if batch_size < 1:
        raise ZooError(f"the batch size must be at least 1, got {batch_size}")
    if optimizer not in OPTIMIZER_SLOTS:
        raise ZooError(f"unknown optimizer {optimizer!r}; known: {', '.join(OPTIMIZER_SLOTS)}")
    if precision not in PRECISION_BYTES:
        raise ZooError(f"unknown precision {precision!r}; known: {', '.join(PRECISION_BYTES)}")
    parameters = model.count_params() * FLOAT32_BYTES
    trainable = sum(math.prod(weight.shape) for weight in model.trainable_weights) * FLOAT32_BYTES
    slots = OPTIMIZER_SLOTS[optimizer] + (1 if ema else 0)
    elements, calls = layer_outputs(model)
    weights = parameters + trainable + slots * trainable
    return MemoryEstimate(
        batch_size=batch_size, parameters=parameters, gradients=trainable, optimizer=slots * trainable,
        activations=int(elements * PRECISION_BYTES[precision] * ACTIVATION_FACTOR * batch_size),
        inputs=math.prod(model.input_shape[1:]) * FLOAT32_BYTES * batch_size,
        runtime=int(RUNTIME_BASE + RUNTIME_PER_LAYER * calls + UPDATE_FACTOR * weights))


def estimate_model(name: str, batch_size: int, *, image_size: int | None = None, channels: int | None = None,
                   optimizer: str = "adam", precision: str = "float32", **create_options) -> MemoryEstimate:
    """The training memory of registered model `name`, from a shapes-only build (nothing allocated);
    `image_size` and `channels` default to the model's input."""
    if image_size is not None or channels is not None:
        height, width, default_channels = get_spec(name).default_input_shape
        create_options["input_shape"] = (image_size or height, image_size or width, channels or default_channels)
    return estimate(shapes_only(name, **create_options), batch_size, optimizer=optimizer, precision=precision)


def human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} TiB"
