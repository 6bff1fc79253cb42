"""The `zoo` command. Each group of subcommands lives in a module of its own."""

from zoo.cli.app import main

__all__ = ["main"]
