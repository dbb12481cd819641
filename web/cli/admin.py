"""``hublink admin sessions revoke --all``: manage the dashboard."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from web.admin.sessions import SessionStore
from web.audit import audit
from web.cli.errors import OperatorGroup
from web.parts import parts


@click.group("admin", cls=OperatorGroup)
def admin() -> None:
    """Manage the dashboard."""


@admin.group("sessions", cls=AppGroup)
def sessions() -> None:
    """Dashboard sessions (kept in Redis)."""


@sessions.command("revoke")
@click.option("--all", "everything", is_flag=True, help="end every dashboard session")
def revoke(everything: bool) -> None:
    """End dashboard sessions: every logged-in operator (and every login form) must start again."""
    if not everything:
        raise click.UsageError("give --all (sessions are revoked all at once)")
    ended = SessionStore(parts().redis, parts().keys).revoke_all()
    audit("session.revoke", "sessions all", f"ok: {ended} ended")
    click.echo(f"revoked {ended} session(s)")
