"""`zoo caption`: describe images with a trained captioner."""

from __future__ import annotations

from pathlib import Path

import click

from finetune import api, files
from finetune.cli.app import cli


@cli.command("caption")
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--beam", "beam_width", type=click.IntRange(min=1), default=None,
              help="Beam width; 1 is greedy search. Default: 3, or the width an export was made with.")
def caption_command(source, images, beam_width):
    """Caption IMAGES with SOURCE: a captioning run folder, a .keras file or an exported SavedModel."""
    captions = api.caption(source, images, beam_width=beam_width)
    for path, caption in zip(images, captions):
        click.echo(f"{files.printable(path)}: {caption}")
