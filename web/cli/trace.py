"""``hublink trace TYPE ID``: every event that named a record and every association involving it."""

from __future__ import annotations

import json

import click
from flask.cli import with_appcontext

from hublink.ops.trace import trace as trace_of
from web.cli.errors import OperatorCommand
from web.parts import parts


@click.command("trace", cls=OperatorCommand)
@click.argument("object_type")
@click.argument("object_id")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of the timeline")
@with_appcontext
def trace(object_type: str, object_id: str, as_json: bool) -> None:
    """Every event that named a record and every association involving it (e.g. ``trace deals 123``)."""
    p = parts()
    try:
        found = trace_of(p.redis, p.keys, p.history, object_type, object_id)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    click.echo(f"{found['record']}: {len(found['events'])} event(s), {len(found['associations'])} association(s)")
    for a in found["associations"]:
        pair = f"lookup {a['lookup']}" if "lookup" in a else f"{a['from']} -> {a['to']}"
        status = f" status {a['status']}" if a.get("status") else ""
        click.echo(f"  {a['id']}  {pair}  {a['state']}{status}  attempts {a.get('attempt_count', 0)}")
    click.echo("timeline (UTC):")
    for row in found["timeline"]:
        click.echo(f"  {row['at']}  {row['what']:8}  {row['id'][:20]:20}  {row['detail']}")
