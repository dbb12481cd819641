"""``hublink inbox list|replay``: list the inbox entries set aside, and put them back once fixed."""

from __future__ import annotations

import json

import click

from web.audit import audit
from web.cli.errors import OperatorGroup
from web.parts import parts


@click.group("inbox", cls=OperatorGroup)
def inbox() -> None:
    """Inspect the inbox and put entries that were set aside back into it."""


@inbox.command("list")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10000))
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
def list_(limit: int, as_json: bool) -> None:
    """List entries set aside (could not be expanded), newest first, with the reason."""
    p = parts()
    rows = p.inbox.failed_entries(limit)
    if as_json:
        click.echo(json.dumps({"depth": p.inbox.depth(), "failed": rows}, indent=2))
        return
    for row in rows:
        click.echo(f"{row['id']}  {row['kind']:<12}  entry {row['entry']}  {row['reason']}")
    click.echo(f"{len(rows)} shown; {p.inbox.depth()} entries waiting in the inbox")


# ``inbox failed``: the same listing under the name the inbox's documentation gives it.
inbox.add_command(click.Command("failed", callback=list_.callback, params=list_.params, hidden=True))


@inbox.command("replay")
@click.argument("failed_ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="every entry set aside")
def replay_failed(failed_ids: tuple[str, ...], everything: bool) -> None:
    """Put entries set aside back into the inbox (after fixing what made them fail)."""
    p = parts()
    if everything == bool(failed_ids):
        raise click.UsageError("name the entries to replay, or give --all")
    ids = [row["id"] for row in p.inbox.failed_entries(10000)] if everything else list(failed_ids)
    back = p.inbox.replay_failed(ids)
    audit("replay", "inbox all" if everything else f"inbox {' '.join(ids)}", f"ok: {back} back in the inbox")
    click.echo(f"{back} entries back in the inbox")
