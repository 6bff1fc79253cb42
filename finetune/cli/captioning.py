"""`zoo caption`: describe images with a trained captioner.

The command's work is in `finetune.cli.jobs.captioning`, imported when it runs (see `finetune.cli`).
"""

from __future__ import annotations

from pathlib import Path

import click

from finetune.cli.app import cli


@cli.command("caption")
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--beam", "beam_width", type=click.IntRange(min=1), default=None,
              help="Beam width; 1 is greedy search. Default: 3, or the width an export was made with.")
def caption_command(source, images, beam_width):
    """Caption IMAGES with SOURCE: a captioning run folder, a .keras file or an exported SavedModel."""
    from finetune.cli.jobs import captioning  # the kit, and TensorFlow with it, load when the command runs

    captioning.caption(source, images, beam_width)
