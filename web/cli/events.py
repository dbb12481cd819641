"""``hublink events list|show|replay``: the event history, and past events run through today's rules."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from hublink.intake.history import OUTCOMES, EventFilter, strip_internal
from web.audit import audit, events_target, replay_outcome
from web.cli.errors import OperatorGroup
from web.parts import parts


def _filters(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option("--source", help="hubspot, workflow, forms:<name> or api"),
            click.option("--portal", help="a portal id ('_': single-portal mode)"),
            click.option("--subscription-type", help="e.g. deal.creation"),
            click.option("--object-type", help="deals, contacts, ... or a type id"),
            click.option("--object-id", help="a record id (with --object-type)"),
            click.option("--outcome", type=click.Choice(OUTCOMES)),
            click.option("--since", help="accepted at or after (ISO-8601 or epoch seconds)"),
            click.option("--until", help="accepted at or before (ISO-8601 or epoch seconds)"),
        ]
    ):
        fn = option(fn)
    return fn


def event_filter(values: dict[str, Any]) -> EventFilter:
    """The API's filter from CLI options; a bad value is a usage error naming the option."""
    try:
        return EventFilter.parse(values)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group("events", cls=OperatorGroup)
def events() -> None:
    """The event history: every accepted request and event, with its outcome."""


@events.command("list")
@_filters
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@click.option("--cursor", default=None, help="continue from a previous page")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
def list_(limit: int, cursor: str | None, as_json: bool, **filters: Any) -> None:
    """List events, newest first."""
    items, next_cursor = parts().history.page(event_filter(filters), limit=limit, cursor=cursor)
    strip_internal(items)
    if as_json:
        click.echo(json.dumps({"items": items, "next_cursor": next_cursor}, indent=2))
        return
    header = ("ID", 26), ("RECEIVED (UTC)", 24), ("SOURCE", 12), ("PORTAL", 10), ("OBJECT", 22), ("OUTCOME", 10)
    click.echo("  ".join(name.ljust(width) for name, width in header) + "  PRODUCED")
    for e in items:
        obj = f"{e['object_type']}/{e['object_id']}" if e["object_id"] else "-"
        produced = ", ".join(a["id"][:8] for a in e["associations"]) or ", ".join(e["problems"])[:60] or "-"
        click.echo(
            f"{e['id']:26}  {e['received_at']:24}  {e['source']!s:12}  {e['portal_id'] or '_'!s:10}  "
            f"{obj:22}  {e['outcome']:10}  {produced}"
        )
    if next_cursor:
        click.echo(f"more: --cursor {next_cursor}")


@events.command("show")
@click.argument("event_id")
def show(event_id: str) -> None:
    """One request (ENTRY) with all its events, or one event (ENTRY.INDEX), as JSON."""
    found = parts().history.get(event_id)
    if found is None:
        raise click.ClickException(f"no event {event_id!r} in the history")
    click.echo(json.dumps(found, indent=2))


@events.command("replay")
@click.argument("event_id", required=False)
@_filters
@click.option("--all", "everything", is_flag=True, help="allow replaying every event without a filter")
@click.option("--dry-run", is_flag=True, help="store nothing: show what would be produced beside what was")
def replay(event_id: str | None, everything: bool, dry_run: bool, **filters: Any) -> None:
    """Run past events through today's rules: EVENT_ID (ENTRY or ENTRY.INDEX), or every event the filters match."""
    flt = event_filter(filters)
    if event_id is None and flt == EventFilter() and not everything:
        raise click.UsageError("give an EVENT_ID or a filter, or --all to replay every event in the history")
    rules_file = parts().settings.rules_file
    if not parts().rules.rules:
        where = f"{rules_file} holds no rule" if rules_file else "HUBLINK_RULES_FILE is not set"
        click.echo(
            f"warning: no rules are loaded ({where}), so today's rules produce nothing for any event; "
            "set HUBLINK_RULES_FILE to your rules file",
            err=True,
        )
    selected = list(parts().replayer.select(event_id, None if event_id else flt))
    if not selected:
        if not dry_run:
            audit("replay", events_target(event_id, filters), "refused: no event matches")
        raise click.ClickException("no event in the history matches")
    if len(selected) > 1:
        with click.progressbar(length=len(selected), label="replaying" if not dry_run else "trying") as bar:
            report = parts().replayer.replay(selected, dry_run=dry_run, progress=bar.update)
    else:
        report = parts().replayer.replay(selected, dry_run=dry_run)
    if not dry_run:
        audit("replay", events_target(event_id, filters), replay_outcome(report, event_id))
    if dry_run:
        for item in report.items:
            click.echo(f"{item['id']}")
            click.echo(f"  then: {'; '.join(item['then']) or 'nothing'}")
            problems = f"  ({'; '.join(item['problems_now'])})" if item["problems_now"] else ""
            click.echo(f"  now:  {'; '.join(item['now']) or 'nothing'}{problems}")
    verb = "would produce" if dry_run else "produced"
    click.echo(
        f"{report.matched} event(s) matched, {report.skipped} skipped (API requests, unusable events); "
        f"{report.associations} association(s) and lookup(s) {verb}"
        + ("" if dry_run else f", through the lanes and the rate limit ({report.replayed} event(s) replayed)")
    )
