"""``hublink audit list``: who did what to HubLink, newest first, with the API's filters."""

from __future__ import annotations

import json

import click

from hublink.ops.audit import DEFAULT_PAGE, MAX_PAGE, AuditFilter
from web.cli.errors import OperatorGroup
from web.parts import parts


@click.group("audit", cls=OperatorGroup)
def audit() -> None:
    """The audit log: every admin action, who did it, from where, and how it ended."""


@audit.command("list")
@click.option("--actor", help="exactly this actor (session:…, a client's name, cli:<user>); a trailing * for a prefix")
@click.option("--action", help="replay, purge, pause, rules.publish, …; a trailing * for a prefix (rules.*)")
@click.option("--target", help="targets containing this text (case ignored)")
@click.option("--outcome", help="the outcome's first word: ok, refused, …")
@click.option("--since", help="at or after (ISO-8601 or epoch seconds)")
@click.option("--until", help="at or before (ISO-8601 or epoch seconds)")
@click.option("--limit", default=DEFAULT_PAGE, show_default=True, type=click.IntRange(1, MAX_PAGE))
@click.option("--cursor", default=None, help="continue from a previous page")
@click.option("--json", "as_json", is_flag=True, help="print JSON (the API's answer) instead of a table")
def list_(limit: int, cursor: str | None, as_json: bool, **filters: str | None) -> None:
    """List admin actions, newest first."""
    try:
        flt = AuditFilter.parse(filters)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    try:
        entries, next_cursor = parts().audit.page(flt, limit=limit, cursor=cursor)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--cursor") from None
    items = [entry.to_wire() for entry in entries]
    if as_json:
        click.echo(json.dumps({"items": items, "next_cursor": next_cursor}, indent=2))
        return
    columns = [("AT (UTC)", 24), ("ACTOR", 18), ("ACTION", 16), ("ADDRESS", 15), ("OUTCOME", 22)]
    click.echo("  ".join(name.ljust(width) for name, width in columns) + "  TARGET")
    for item in items:
        row = [item["at"], item["actor"], item["action"], item["address"], item["outcome"]]
        cells = "  ".join(value[:width].ljust(width) for value, (_, width) in zip(row, columns, strict=True))
        click.echo(f"{cells}  {item['target']}")
    click.echo(f"{len(items)} shown" + (f"; next page: --cursor {next_cursor}" if next_cursor else ""))
