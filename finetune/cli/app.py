"""The `zoo` click group, and the error handling every subcommand shares."""

from __future__ import annotations

import signal
import sys

import click

from zoo.errors import ZooError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="keras-zoo")
def cli():
    """A zoo of classic CNNs and a kit to fine-tune, diagnose and serve them."""


def _stop(signum, frame):
    raise Terminated(signum)


class Terminated(BaseException):
    """SIGTERM (a job scheduler, `kill`): raised in the main thread, so that every clean-up runs
    (temporary files, a partial export, the run folder's lock), as it does for Ctrl-C."""


def main(argv: list[str] | None = None) -> int:
    """Runs the CLI; errors the user can fix print one line and exit non-zero, without a traceback."""
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        return _run(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(argv: list[str] | None) -> int:
    try:
        cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="zoo", standalone_mode=False)
    except Terminated:
        click.echo("Stopped (SIGTERM).", err=True)
        return 143
    except click.exceptions.Abort:
        click.echo("Interrupted.", err=True)
        return 130
    except click.UsageError as error:  # one line, like every other error, and where to read more
        command = error.ctx.command_path if error.ctx is not None else "zoo"
        click.echo(f"Error: {error.format_message()} (see `{command} --help`)", err=True)
        return error.exit_code
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except ZooError as error:
        click.echo(f"Error: {error}", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return 130
    except click.exceptions.Exit as done:
        return done.exit_code
    return 0
