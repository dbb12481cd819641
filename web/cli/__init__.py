"""The operators' commands: registered on the app (``flask --app web …``) and on the ``hublink`` command
(:mod:`web.cli.main`).

One naming scheme: ``hublink NOUN VERB [ARGS]``, the noun plural where it names a collection
(``dead-letters list|show|replay|purge``, ``events list|show|replay``, ``pauses list``, ``backfill
start|cancel|list``, ``inbox list|replay``, ``rules check|try``, ``hubspot subscriptions show|apply``,
``admin sessions revoke``, ``privacy erase``, ``api-clients create|list|rotate|revoke``, ``audit list``).
The three actions on one named target are verbs on their own: ``trace TYPE ID``, ``pause`` and ``resume``
(``--portal P`` or ``--lane L``). Listing commands take ``--json``; bulk ones take ``--dry-run``.
"""

from __future__ import annotations

import click
from flask import Flask

from web.cli import (
    admin,
    api_clients,
    audit,
    backfill,
    dead_letters,
    events,
    hubspot,
    inbox,
    pauses,
    privacy,
    rules,
    trace,
)

#: Every operator command, in the order ``--help`` lists them.
COMMANDS: tuple[click.Command, ...] = (
    dead_letters.dead_letters,
    events.events,
    trace.trace,
    pauses.pause,
    pauses.resume,
    pauses.pauses,
    backfill.backfill,
    inbox.inbox,
    rules.rules,
    hubspot.hubspot,
    admin.admin,
    audit.audit,
    privacy.privacy,
    api_clients.api_clients_group,
)


def register(app: Flask) -> None:
    """Add every operator command to ``app.cli``."""
    for command in COMMANDS:
        app.cli.add_command(command)
