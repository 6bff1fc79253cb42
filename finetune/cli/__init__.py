"""The `zoo` command.

Each group of subcommands is declared in a module of its own (`models`, `training`, `serving`,
`captioning`, `practice`), which adds its commands to the group when imported. Those modules
import only click and the zoo's registry, so that `zoo --help`, `zoo COMMAND --help`, `zoo list`
and `zoo info` answer in a fraction of a second; a command's work is in `finetune.cli.jobs`,
whose module the command imports when it runs: the kit, and TensorFlow with it, load then.
"""

from finetune.cli import captioning, models, practice, serving, training  # noqa: F401  (each adds its commands)
from finetune.cli.app import cli, main

__all__ = ["cli", "main"]
