"""``hublink dead-letters list|show|replay|purge``: inspect, replay and purge dead letters."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from hublink.ops.dead_letters import DeadLetterFilter
from web.audit import audit, done_count, matching
from web.cli.errors import OperatorGroup
from web.parts import parts


def _filters(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option("--source", help="only this source (api, hubspot, workflow, forms:<name>)"),
            click.option("--status", type=int, help="only this final HTTP status"),
            click.option("--category", help="only this HubSpot category"),
            click.option("--since", help="died at or after (ISO-8601 or epoch seconds)"),
            click.option("--until", help="died at or before (ISO-8601 or epoch seconds)"),
        ]
    ):
        fn = option(fn)
    return fn


def _flt(
    source: str | None, status: int | None, category: str | None, since: str | None, until: str | None
) -> DeadLetterFilter:
    values = {"source": source, "status": status, "category": category, "since": since, "until": until}
    try:
        return DeadLetterFilter.parse(values)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group("dead-letters", cls=OperatorGroup)
def dead_letters() -> None:
    """Inspect, replay and purge dead letters."""


@dead_letters.command("list")
@_filters
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@click.option("--cursor", default=None, help="continue from a previous page")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
def list_(
    source: str | None,
    status: int | None,
    category: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """List dead letters, newest first."""
    letters, next_cursor = parts().dead_letters.page(
        _flt(source, status, category, since, until), limit=limit, cursor=cursor
    )
    items = [letter.to_wire() for letter in letters]
    if as_json:
        click.echo(json.dumps({"items": items, "next_cursor": next_cursor}, indent=2))
        return
    columns = [
        ("ID", 32),
        ("DIED (UTC)", 24),
        ("SOURCE", 10),
        ("STATUS", 6),
        ("CATEGORY", 20),
        ("TRIES", 5),
        ("ASSOCIATION", 40),
    ]
    click.echo("  ".join(name.ljust(width) for name, width in columns))
    for letter in items:
        a = letter["association"]
        row = [
            letter["id"],
            letter["deadAt"],
            str(letter.get("source")),
            str(letter.get("status") or "-"),
            str(letter.get("category") or "-"),
            str(letter.get("attemptCount")),
            f"{a['fromObjectType']}/{a['fromObjectId']} -> {a['toObjectType']}/{a['toObjectId']}",
        ]
        click.echo("  ".join(value[:width].ljust(width) for value, (_, width) in zip(row, columns, strict=True)))
    click.echo(f"{len(items)} shown" + (f"; next page: --cursor {next_cursor}" if next_cursor else ""))


@dead_letters.command("show")
@click.argument("letter_id")
def show(letter_id: str) -> None:
    """Print one dead letter with every attempt."""
    letter = parts().dead_letters.get(letter_id)
    if letter is None:
        raise click.ClickException(f"no dead letter {letter_id!r}")
    click.echo(json.dumps(letter.to_wire(), indent=2))


def _bulk(action: str, letter_id: str | None, flt: DeadLetterFilter, dry_run: bool, everything: bool) -> None:
    store = parts().dead_letters
    if letter_id:
        if dry_run:
            found = store.get(letter_id) is not None
            click.echo(f"would {action} {int(found)} dead letter(s)")
            return
        try:
            ok = store.replay(letter_id) if action == "replay" else store.delete(letter_id)
        except ValueError as exc:  # a letter whose work could not be read has nothing to replay
            audit(action, f"dead-letter {letter_id}", f"refused: {exc}")
            raise click.ClickException(str(exc)) from None
        audit(action, f"dead-letter {letter_id}", "ok" if ok else "refused: not found")
        if not ok:
            raise click.ClickException(f"no dead letter {letter_id!r}")
        click.echo(f"{action}ed 1 dead letter" if action == "replay" else "purged 1 dead letter")
        return
    if action == "purge" and flt == DeadLetterFilter() and not everything:
        raise click.UsageError("give a filter, or --all to purge every dead letter")
    total = sum(1 for _ in store.iter_matching(flt))
    if dry_run:
        click.echo(f"would {action} {total} dead letter(s)")
        return
    run = store.replay_matching if action == "replay" else store.purge_matching
    with click.progressbar(length=total, label=f"{action}ing", show_pos=True) as bar:
        done = run(flt, progress=bar.update)
    audit(
        action,
        matching("dead-letters", click.get_current_context().params, DeadLetterFilter.FIELDS),
        done_count(action, done),
    )
    click.echo(f"{action}ed {done} dead letter(s)" if action == "replay" else f"purged {done} dead letter(s)")


@dead_letters.command("replay")
@click.argument("letter_id", required=False)
@_filters
@click.option("--dry-run", is_flag=True, help="count, change nothing")
def replay(
    letter_id: str | None,
    source: str | None,
    status: int | None,
    category: str | None,
    since: str | None,
    until: str | None,
    dry_run: bool,
) -> None:
    """Replay one dead letter, or every one matching the filters, with a fresh attempt budget."""
    _bulk("replay", letter_id, _flt(source, status, category, since, until), dry_run, everything=True)


@dead_letters.command("purge")
@click.argument("letter_id", required=False)
@_filters
@click.option("--all", "everything", is_flag=True, help="allow purging without a filter")
@click.option("--dry-run", is_flag=True, help="count, change nothing")
def purge(
    letter_id: str | None,
    source: str | None,
    status: int | None,
    category: str | None,
    since: str | None,
    until: str | None,
    everything: bool,
    dry_run: bool,
) -> None:
    """Delete one dead letter, or every one matching the filters."""
    _bulk("purge", letter_id, _flt(source, status, category, since, until), dry_run, everything)
