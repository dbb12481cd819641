"""The operators' commands, one group per noun: registered on the app (``flask --app web …``) and on the
``hublink`` command (:mod:`web.cli.main`).
"""

from __future__ import annotations

import click
from flask import Flask

from web.cli import admin, backfill, dead_letters, events, hubspot, inbox, pauses, rules, trace

#: Every operator command, in the order ``--help`` lists them.
COMMANDS: tuple[click.Command, ...] = (
    dead_letters.dead_letters,
    events.events,
    trace.trace,
    pauses.pause,
    pauses.resume,
    pauses.list_pauses,
    backfill.backfill,
    backfill.backfill_cancel,
    backfill.backfill_list,
    inbox.inbox,
    rules.rules,
    hubspot.hubspot,
    admin.admin,
)


def register(app: Flask) -> None:
    """Add every operator command to ``app.cli``."""
    for command in COMMANDS:
        app.cli.add_command(command)
