"""The ``hublink`` command (``pip install .`` puts it on the PATH): the processes and every operator command.

``hublink web`` runs gunicorn with ``gunicorn.conf.py`` (the Procfile's ``web:``), ``hublink worker`` runs
``python -m worker`` (the Procfile's ``worker:``), ``hublink run`` starts the development stack
(``scripts/dev.py``). Each of the three replaces this process with its program: ``web`` never imports
``worker``, so the worker is started as its own module, and signals reach the program directly.

The operator commands are the groups of :mod:`web.cli` (the same ones ``flask --app web …`` lists). A
command that needs Redis builds the app (``web.create_app()``) when it runs, not before: ``hublink --help``
and the offline commands (``rules check``, ``rules try``) need no token and no Redis.

Every error is one line on stderr naming the variable or file and what to do (exit status 1), never a
traceback: a missing or bad setting, a Redis that does not answer, a file that cannot be read, a
HubSpot call that fails.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click
from flask.cli import ScriptInfo

import hublink
from web import create_app
from web.cli import COMMANDS
from web.cli.errors import told_in_one_line

#: Passed through untouched to the program a process command runs (gunicorn's or the worker's options).
PASS_THROUGH = {"ignore_unknown_options": True, "help_option_names": ["-h", "--help"]}


def project_root() -> Path:
    """The checkout holding ``gunicorn.conf.py`` and ``scripts/``: this package's parent when it is one
    (an editable install, or running from the clone), else the current directory."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "gunicorn.conf.py").is_file() else Path.cwd()


class HubLinkGroup(click.Group):
    """The root group: lists its commands in the order they were added, tells errors in one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The processes first, then the operator commands, in the order they were added (not sorted)."""
        return list(self.commands)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a known error becomes one line (:func:`web.cli.errors.told_in_one_line`)."""
        with told_in_one_line():
            return super().invoke(ctx)


def _replace_with(argv: list[str]) -> None:
    """Run ``argv`` in place of this process (its signals, its exit status)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)  # noqa: S606 - our own interpreter with a fixed program


@click.group("hublink", cls=HubLinkGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(hublink.__version__, "-V", "--version", prog_name="hublink", message="%(prog)s %(version)s")
def cli() -> None:
    """HubLink: links HubSpot records from webhooks and API calls. `hublink COMMAND --help` says more."""


@cli.command("web", context_settings=PASS_THROUGH)
@click.argument("gunicorn_args", nargs=-1, type=click.UNPROCESSED)
def web(gunicorn_args: tuple[str, ...]) -> None:
    """Serve the web process: gunicorn with gunicorn.conf.py (extra options go to gunicorn)."""
    config = project_root() / "gunicorn.conf.py"
    if not config.is_file():
        raise click.ClickException(f"{config}: not found; run `hublink web` from HubLink's directory")
    _replace_with([sys.executable, "-m", "gunicorn", "-c", str(config), *gunicorn_args, "web:create_app()"])


@cli.command("worker", context_settings=PASS_THROUGH)
@click.argument("worker_args", nargs=-1, type=click.UNPROCESSED)
def worker(worker_args: tuple[str, ...]) -> None:
    """Run one worker: python -m worker (extra options go to it: --burst, --name, --check)."""
    _replace_with([sys.executable, "-m", "worker", *worker_args])


@cli.command("run", context_settings=PASS_THROUGH)
@click.argument("dev_args", nargs=-1, type=click.UNPROCESSED)
def run(dev_args: tuple[str, ...]) -> None:
    """Start the development stack (Redis, the simulator, the web, a worker): scripts/dev.py."""
    script = project_root() / "scripts" / "dev.py"
    if not script.is_file():
        raise click.ClickException(f"{script}: not found; run `hublink run` from HubLink's directory")
    _replace_with([sys.executable, str(script), *dev_args])


for _command in COMMANDS:
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """The console script: the commands that need the app build it with ``create_app()`` when they run."""
    cli.main(args=argv, prog_name="hublink", obj=ScriptInfo(create_app=create_app, set_debug_flag=False))
