"""The `zoo` command. Each group of subcommands lives in a module of its own and adds its
commands to the group when imported."""

from finetune.cli import captioning, models, practice, serving, training  # noqa: F401  (each adds its commands)
from finetune.cli.app import cli, main

__all__ = ["cli", "main"]
