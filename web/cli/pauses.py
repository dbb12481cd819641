"""``hublink pause|resume --portal P | --lane L`` and ``hublink pauses``: hold and release deliveries."""

from __future__ import annotations

import json
import time

import click
from flask.cli import with_appcontext

from web.parts import parts


def _target(portal: str | None, lane: str | None) -> tuple[str, str]:
    if (portal is None) == (lane is None):
        raise click.UsageError("give exactly one of --portal or --lane")
    return ("portal", portal) if portal is not None else ("lane", str(lane))


@click.command("pause")
@click.option("--portal", help="a portal id ('_' in single-portal mode): every lane of it")
@click.option("--lane", help="one lane, <portal>|<fromType>|<toType>")
@click.option("--reason", default="paused from the command line", show_default=True, help="why (shown to operators)")
@with_appcontext
def pause(portal: str | None, lane: str | None, reason: str) -> None:
    """Pause deliveries for a portal or a lane; intake goes on and the work waits."""
    scope, name = _target(portal, lane)
    try:
        changed = parts().pauses.pause(scope, name, reason)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    click.echo(f"paused {scope} {name}" if changed else f"{scope} {name} was already paused")


@click.command("resume")
@click.option("--portal", help="a portal id ('_' in single-portal mode)")
@click.option("--lane", help="one lane, <portal>|<fromType>|<toType>")
@with_appcontext
def resume(portal: str | None, lane: str | None) -> None:
    """Resume a paused portal or lane: its waiting work goes out at once."""
    scope, name = _target(portal, lane)
    try:
        changed = parts().pauses.resume(scope, name)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    click.echo(f"resumed {scope} {name}" if changed else f"{scope} {name} was not paused")


@click.command("pauses")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of lines")
@with_appcontext
def list_pauses(as_json: bool) -> None:
    """List what is paused (portals, lanes, and portals whose circuit is open)."""
    items = parts().pauses.list()
    if as_json:
        click.echo(json.dumps([p.as_json() for p in items], indent=2))
        return
    if not items:
        click.echo("nothing is paused")
    for p in items:
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(p.since_ms / 1000))
        click.echo(f"{p.scope:8} {p.name:40} since {since}  {p.reason}")
