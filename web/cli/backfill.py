"""``hublink backfill start RULE`` (or ``backfill RULE``), ``backfill cancel ID`` and ``backfill list``.

``start`` walks the records of the rule's object type (``hublink.ops.backfill``) and shows a progress
line on stderr (records read, associations queued, rate, time left). Ctrl-C stops it after saving its
cursor; ``--resume ID`` continues from there.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import replace

import click

from hublink.config.portals import load_portals
from hublink.config.rules_file import RulesFile
from hublink.config.settings import Settings
from hublink.delivery.credentials import CredentialProvider, PortalCredentials, StaticCredentials
from hublink.delivery.hubspot import HubSpotClient
from hublink.delivery.rate_limit import RedisRateLimiter
from hublink.domain.backfill import BackfillPlan, parse_date
from hublink.domain.errors import ConfigError, DeliveryError
from hublink.domain.events import CrmEvent
from hublink.domain.rules import RuleSet
from hublink.domain.times import iso
from hublink.intake.expansion import accept, plan
from hublink.ops.backfill import Backfill, BackfillRunner, RedisBackfills, new_backfill_id, progress_line
from web.audit import audit
from web.cli.errors import OperatorGroup
from web.parts import Parts, parts


def hubspot_access(p: Parts) -> tuple[HubSpotClient, CredentialProvider | None]:
    """A HubSpot client and the credentials a worker would use (None without a token or portals file).

    The backfill reads records itself (CRM search), so this command, unlike the web, calls HubSpot.
    """
    settings: Settings = p.settings
    client = HubSpotClient(
        settings.hubspot_base_url,
        connect_timeout_s=settings.hubspot_connect_timeout_s,
        read_timeout_s=settings.hubspot_read_timeout_s,
    )
    static = StaticCredentials(settings.hubspot_access_token) if settings.hubspot_access_token else None
    credentials: CredentialProvider | None = static
    if settings.portals_file:
        try:
            with open(settings.portals_file, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise ConfigError(f"HUBLINK_PORTALS_FILE: cannot read {settings.portals_file}: {exc.strerror}") from None
        portals = load_portals(text, os.environ, settings.portals_file)
        credentials = PortalCredentials(portals, p.redis, p.keys, client, fallback=static)
    return client, credentials


def _date(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_date(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=name) from None


def _mapping(pairs: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs:
        field, sep, prop = pair.partition("=")
        if not sep or not field or not prop:
            raise click.BadParameter(f"expected FIELD=PROPERTY, got {pair!r}", param_hint="--map")
        found[field] = prop
    return found


class BackfillGroup(OperatorGroup):
    """The backfill group, where ``backfill RULE …`` means ``backfill start RULE …``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Insert ``start`` before a first word that names no subcommand (and is not an option)."""
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["start", *args]
        return super().parse_args(ctx, args)


@click.group("backfill", cls=BackfillGroup)
def backfill() -> None:
    """Apply a rule to the records that already exist: start (the default), cancel, list."""


@backfill.command("start")
@click.argument("rule_name", metavar="RULE")
@click.option("--since", help="only records created at or after (2026-01-31, ISO-8601 or epoch seconds)")
@click.option("--until", help="only records created at or before")
@click.option("--limit", type=click.IntRange(1), help="read at most this many records")
@click.option("--dry-run", is_flag=True, help="read and report what would be queued, queue nothing")
@click.option("--resume", "resume_id", help="continue the backfill with this id from its checkpoint")
@click.option("--portal", help="the portal whose records to walk (many-portal mode)")
@click.option("--object-type", help="the records' type, when the rule's sides do not say")
@click.option("--map", "maps", multiple=True, help="FIELD=PROPERTY: the event field a record property fills")
@click.option("--date-property", help="the property --since/--until compare (default: the creation date)")
def start(
    rule_name: str,
    since: str | None,
    until: str | None,
    limit: int | None,
    dry_run: bool,
    resume_id: str | None,
    portal: str | None,
    object_type: str | None,
    maps: tuple[str, ...],
    date_property: str | None,
) -> None:
    """Apply RULE to the records that already exist, through the same path as live events."""
    p = parts()
    settings = p.settings
    try:
        # With HUBLINK_RULES_SOURCE=redis, the published version (the file only seeds it).
        rules = p.rules if settings.rules_source == "redis" else RulesFile.read(settings.rules_file).rules
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    rule = next((r for r in rules.rules if r.name == rule_name), None)
    if rule is None:
        known = ", ".join(r.name for r in rules.rules) or "none"
        raise click.ClickException(
            f"no rule {rule_name!r} in {settings.rules_file or '(no rules file)'}; rules: {known}"
        )
    store = RedisBackfills(p.redis, p.keys)
    if resume_id is not None:
        found = store.get(resume_id)
        if found is None:
            raise click.ClickException(f"no backfill {resume_id!r} (kept 30 days after its last change)")
        if found.rule != rule_name:
            raise click.ClickException(f"backfill {resume_id} is of rule {found.rule!r}, not {rule_name!r}")
        if found.state == "done":
            raise click.ClickException(f"backfill {resume_id} is done ({found.read:,} records read)")
        record = replace(found, cancel_requested=False)
    else:
        record = Backfill(
            id=new_backfill_id(),
            rule=rule_name,
            object_type=object_type or "",
            portal_id=portal,
            since_ms=_date(since, "--since"),
            until_ms=_date(until, "--until"),
            limit=limit,
            dry_run=dry_run,
            mapping=_mapping(maps),
            date_property=date_property,
        )
    try:
        walk = BackfillPlan.make(
            rule,
            portal_id=record.portal_id,
            since_ms=record.since_ms,
            until_ms=record.until_ms,
            mapping=record.mapping,
            object_type=record.object_type or None,
            date_property=record.date_property,
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    record = replace(record, object_type=walk.object_type)
    client, credentials = hubspot_access(p)
    if credentials is None:
        raise click.ClickException("a backfill needs HUBSPOT_ACCESS_TOKEN or HUBLINK_PORTALS_FILE")
    try:
        credential = credentials.for_portal(record.portal_id)
    except DeliveryError as exc:
        raise click.ClickException(str(exc)) from None
    lanes = p.lanes

    def enqueue(events: Sequence[CrmEvent], ruleset: RuleSet, now: float) -> int:
        report = accept(events, ruleset, lanes, p.metrics, now)
        return report.associations + report.lookups

    def count(events: Sequence[CrmEvent], ruleset: RuleSet, now: float) -> int:
        return sum(len(plan(event, ruleset, now)[0]) for event in events)

    # Ctrl-C asks the walk to stop after the page in hand (and ends a wait at once) rather than raising
    # inside whatever Redis or HubSpot exchange is under way.
    stopping = threading.Event()
    runner = BackfillRunner(
        store=store,
        search=client,
        limiter=RedisRateLimiter(p.redis, p.keys, margin=settings.rate_limit_margin, scripts=p.scripts),
        search_limit=settings.hubspot_search_rate_limit,
        enqueue=enqueue,
        count=count,
        sleep=stopping.wait,  # a wait that a stop ends at once
        stop=stopping.is_set,
    )
    if resume_id is None:
        record = runner.start(record)
    if not record.dry_run:
        audit("backfill.start", f"backfill {record.id} rule {rule_name}", "ok: resumed" if resume_id else "ok")
    click.echo(
        f"backfill {record.id}: rule {rule_name!r}, {walk.object_type}"
        + (f" in portal {record.portal_id}" if record.portal_id else "")
        + (f", from record {record.cursor}" if record.cursor != "0" else "")
        + (" (dry run)" if record.dry_run else ""),
        err=True,
    )
    interactive = sys.stderr.isatty()

    def show(current: Backfill) -> None:
        line = progress_line(current, int(time.time() * 1000))
        click.echo(("\r" + line) if interactive else line, nl=not interactive, err=True)

    previous = signal.signal(signal.SIGINT, lambda signum, frame: stopping.set())
    try:
        ended = runner.run(record, walk, credential, on_page=show)
    finally:
        signal.signal(signal.SIGINT, previous)
    if ended.state == "interrupted":
        click.echo(f"\ninterrupted; resume with: hublink backfill start {rule_name} --resume {record.id}", err=True)
        raise SystemExit(130)
    if interactive:
        click.echo("", err=True)
    click.echo(
        f"backfill {ended.id} {ended.state}: {ended.read:,} records read, {ended.queued:,} associations "
        + ("would be queued" if ended.dry_run else "queued")
    )
    if ended.state == "failed":
        raise click.ClickException(f"{ended.error}; resume with --resume {ended.id}")


@backfill.command("cancel")
@click.argument("backfill_id")
def cancel(backfill_id: str) -> None:
    """Ask a running backfill to stop before its next page (it can be resumed later)."""
    found = RedisBackfills(parts().redis, parts().keys).request_cancel(backfill_id)
    audit("backfill.cancel", f"backfill {backfill_id}", "ok" if found else "refused: not found")
    if not found:
        raise click.ClickException(f"no backfill {backfill_id!r}")
    click.echo(f"backfill {backfill_id}: cancel requested")


@backfill.command("list")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 100))
def list_(limit: int) -> None:
    """The newest backfills with their progress."""
    now = int(time.time() * 1000)
    for b in RedisBackfills(parts().redis, parts().keys).recent(limit):
        click.echo(f"{b.id}  {b.state:<11} {b.rule:<24} started {iso(b.started_ms)}  {progress_line(b, now)}")
