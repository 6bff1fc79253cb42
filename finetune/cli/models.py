"""`zoo list` and `zoo info`: what the zoo has, read from the registry without starting TensorFlow
(`zoo info --memory` builds a shapes-only model: its work is in `finetune.cli.jobs.models`)."""

import json

import click

import zoo
from finetune.cli.app import cli
from zoo import layer_tables

# `zoo.memory.OPTIMIZER_SLOTS`, which a test keeps equal
MEMORY_OPTIMIZERS = ("adam", "adamw", "none", "rmsprop", "sgd")


def _format_table(headers, rows) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(headers, widths)).rstrip()]
    lines.append("  ".join("-" * width for width in widths))
    for row in rows:
        lines.append("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    return "\n".join(lines)


def _shape(shape) -> str:
    return "x".join(str(dim) for dim in shape)


def _gflops(flops) -> str:
    return f"{flops / 1e9:.3g}" if flops is not None else "-"


@cli.command("list")
@click.argument("pattern", required=False)
@click.option("--pretrained", is_flag=True, help="Only the models with pretrained weights.")
def list_command(pattern, pretrained):
    """List the models, optionally those matching PATTERN (e.g. 'resnet*'), and their weight tags."""
    names = [name for name in zoo.list_models(pattern) if not pretrained or zoo.info(name).weights]
    if not names:
        what = "with pretrained weights " if pretrained else ""
        raise zoo.ZooError(f"no model {what}matches {pattern!r}; run `zoo list` to see every model")
    rows = []
    for name in names:
        spec = zoo.info(name)
        rows.append([
            name, spec.family, f"{spec.num_params:,}", _gflops(spec.flops), _shape(spec.default_input_shape),
            f"{spec.min_input_size}x{spec.min_input_size}", ", ".join(spec.weights) or "-",
        ])
    click.echo(_format_table(["name", "family", "parameters", "GFLOPs", "input", "min input", "weights"], rows))


@cli.command("info")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the spec as JSON, without the layer summary.")
@click.option("--no-summary", is_flag=True, help="Leave out the layer-by-layer summary.")
@click.option("--memory", "show_memory", is_flag=True,
              help="Estimate the memory of training: parameters, gradients, optimizer state, activations.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="With --memory.")
@click.option("--image-size", type=click.IntRange(min=1), help="With --memory (default: the model's input).")
@click.option("--optimizer", type=click.Choice(MEMORY_OPTIMIZERS), default="adam", show_default=True,
              help="With --memory: the updater, whose state is per parameter.")
@click.option("--precision", type=click.Choice(["float32", "mixed"]), default="float32", show_default=True,
              help="With --memory: mixed keeps activations in 16 bits.")
@click.option("--budget", help="With --memory: the memory to fit (e.g. 8GiB); prints the largest batch that fits.")
def info_command(name, as_json, no_summary, show_memory, batch_size, image_size, optimizer, precision, budget):
    """Show a model's spec (family, paper, inputs, parameters, preprocessing, weights) and layers."""
    if show_memory:
        from finetune.cli.jobs import models  # the estimate builds the model: Keras loads here

        models.show_memory(name, batch_size, image_size, optimizer, precision, budget, as_json)
        return
    summary = zoo.info(name).summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    width = max(len(key) for key in summary)
    for key, value in summary.items():
        if isinstance(value, list) and key.endswith("shape"):
            value = _shape(value)
        elif key == "flops":
            value = f"{value:,} ({_gflops(value)} GFLOPs, forward, one image)" if value is not None else "-"
        elif isinstance(value, int) and not isinstance(value, bool):
            value = f"{value:,}"
        elif isinstance(value, (list, dict)):
            value = json.dumps(value) if value else "-"
        click.echo(f"{key.ljust(width)}  {value}")
    weights = zoo.info(name).weights
    if weights:
        click.echo()
        spec = zoo.info(name)
        rows = [[f"{spec.name}.{tag}", each.source, _accuracy(each.top1), _accuracy(each.top5),
                 _shape(each.input_shape), each.evaluation.short(*each.input_shape[:2]),
                 _side(each.min_input_size or spec.min_input_size), each.preprocessing.name, _options(each.options)]
                for tag, each in weights.items()]
        click.echo(_format_table(["weights", "source", "top-1", "top-5", "input", "evaluated with", "min input",
                                  "preprocessing", "options"], rows))
    if not no_summary:
        click.echo()
        click.echo(layer_tables.draw(layer_tables.stored(zoo.info(name).name)))


def _side(side: int) -> str:
    return f"{side}x{side}"


def _accuracy(value) -> str:
    return f"{value:g}%" if value is not None else "-"


def _options(options: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in options.items()) or "-"
