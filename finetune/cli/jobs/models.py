"""The work of `zoo info NAME --memory` (declared in `finetune.cli.models`)."""

import json

import click

import zoo
from zoo import memory


def show_memory(name, batch_size, image_size, optimizer, precision, budget, as_json):
    """`zoo info NAME --memory`: the estimate by part, and the largest batch for a budget."""
    estimate = memory.estimate_model(name, batch_size, image_size=image_size, optimizer=optimizer,
                                     precision=precision)
    budget_bytes = memory.parse_bytes(budget) if budget else None
    values = estimate.to_dict()
    if budget_bytes is not None:
        values.update(budget=budget_bytes, largest_batch=estimate.largest_batch(budget_bytes))
    if as_json:
        click.echo(json.dumps(values, indent=2))
        return
    size = image_size or zoo.info(name).default_input_shape[0]
    click.echo(f"Training memory of {name} at {size}x{size}, batch {batch_size}, {optimizer}, {precision} "
               f"(an estimate):")
    for part in ("parameters", "gradients", "optimizer", "activations", "inputs", "runtime", "total"):
        click.echo(f"  {part:<12} {memory.human(values[part]):>12}")
    if budget_bytes is not None:
        largest = values["largest_batch"]
        click.echo(f"Largest batch within {memory.human(budget_bytes)}: {largest}" if largest else
                   f"Not even the weights and optimizer state fit in {memory.human(budget_bytes)}")
