"""The work of `zoo caption` (declared in `finetune.cli.captioning`)."""

from __future__ import annotations

import click

from finetune import api, files


def caption(source, images, beam_width):
    """`zoo caption SOURCE IMAGES`: one caption per image."""
    captions = api.caption(source, images, beam_width=beam_width)
    for path, caption in zip(images, captions):
        click.echo(f"{files.printable(path)}: {caption}")
