"""The app's webhooks from HubLink: ``hublink hubspot subscriptions show [--json]`` and ``apply [--dry-run]``.

``apply`` sets the app's target URL (HUBLINK_PUBLIC_URL + ``/webhooks/hubspot``), its throttling
(HUBLINK_WEBHOOK_MAX_CONCURRENCY) and the subscriptions the rules file needs, with the deletions and merges
(and contacts' privacy deletions) of the object types the rules name, and for journal portals the journal
subscriptions for them and the app's install and uninstall events (see ``hublink.domain.subscriptions``
for the mapping), through the 2026-03 webhooks API. It creates and
activates, never deletes: a subscription no rule needs is reported and left as it is.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import click
from flask.cli import AppGroup

from hublink.config.rules_file import RulesFile
from hublink.config.settings import Settings
from hublink.delivery.webhooks_api import WebhookApp, WebhooksClient, journal_access
from hublink.domain.errors import ConfigError, DeliveryError
from hublink.domain.subscriptions import Needs, Plan, WebhookSettings, needed_subscriptions, with_lifecycle
from web.cli.errors import OperatorGroup
from web.parts import parts


@click.group("hubspot", cls=OperatorGroup)
def hubspot() -> None:
    """HubSpot's side of HubLink: the app's webhook settings and subscriptions."""


@hubspot.group("subscriptions", cls=AppGroup)
def subscriptions() -> None:
    """Show or set the app's webhook target, throttling and the subscriptions the rules need."""


def _app(settings: Settings) -> WebhookApp:
    """The app to read and change; a missing variable is an error naming it."""
    for name, value in (
        ("HUBSPOT_APP_ID", settings.hubspot_app_id),
        ("HUBSPOT_DEVELOPER_TOKEN", settings.hubspot_developer_token),
    ):
        if not value:
            raise click.ClickException(f"{name} is required but not set")
    client = WebhooksClient(
        settings.hubspot_base_url,
        connect_timeout_s=settings.hubspot_connect_timeout_s,
        read_timeout_s=settings.hubspot_read_timeout_s,
    )
    try:  # journal portals' journal subscriptions, made with the app's token (HUBSPOT_CLIENT_ID)
        journal = journal_access(settings, os.environ, client)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    return WebhookApp(client, settings.hubspot_developer_token or "", settings.hubspot_app_id or "", journal)


def _needs(settings: Settings) -> Needs:
    """What the rules need (the rules file's, or with HUBLINK_RULES_SOURCE=redis the published version's), and
    the deletions and merges of the object types they name (HubLink ends or moves work naming a deleted or
    merged record)."""
    if settings.rules_source == "redis":
        rules = parts().rules.rules
        return with_lifecycle(needed_subscriptions(rules), rules)
    try:
        rules = RulesFile.read(settings.rules_file).rules.rules
        return with_lifecycle(needed_subscriptions(rules), rules)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _wanted(settings: Settings) -> WebhookSettings:
    """The settings HubLink wants; without HUBLINK_PUBLIC_URL there is no target to set."""
    if not settings.public_url:
        raise click.ClickException("HUBLINK_PUBLIC_URL is required but not set (the target URL is built from it)")
    try:
        return WebhookSettings.for_public_url(settings.public_url, settings.webhook_max_concurrency)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


def describe(todo: Plan, *, dry_run: bool) -> Iterator[str]:
    """The plan as lines: the settings, each subscription with what happens to it, and the skipped rules."""
    s = todo.settings
    wanted = f"{s.wanted.target_url}, maxConcurrentRequests {s.wanted.max_concurrent_requests}"
    if s.action == "keep":
        yield f"settings: keep    {wanted}"
    elif s.current is None:
        yield f"settings: {'would create' if dry_run else 'create'}  {wanted} (none set)"
    else:
        held = f"{s.current.target_url}, maxConcurrentRequests {s.current.max_concurrent_requests}"
        yield f"settings: {'would change' if dry_run else 'change'}  {held} -> {wanted}"
    yield "subscriptions:"
    if not todo.subscriptions:
        yield "  (none needed, none held)"
    for step in todo.subscriptions:
        verb = f"would {step.action}" if dry_run and step.action in ("create", "activate", "change") else step.action
        held = f" (id {step.id})" if step.id else ""
        why = f"  needed by {', '.join(step.rules)}" if step.rules else "  no rule needs it: left as it is"
        yield f"  {verb:<15} {step.key}{held}{why}"
    for skipped in todo.skipped:
        yield f"skipped: rule '{skipped.rule}' (line {skipped.line}): {skipped.reason}"


@subscriptions.command("apply")
@click.option("--dry-run", is_flag=True, help="print what would be created, changed and left; change nothing")
def apply(dry_run: bool) -> None:
    """Set the target URL, throttling and the subscriptions the rules need (creates and activates, never deletes)."""
    settings = parts().settings
    wanted, needs, app = _wanted(settings), _needs(settings), _app(settings)
    try:
        todo = app.plan(wanted, needs)
        for line in describe(todo, dry_run=dry_run):
            click.echo(line)
        if todo.changes == 0:
            click.echo("nothing to do: HubSpot already holds what the rules need")
            return
        if dry_run:
            click.echo(f"dry run: {todo.changes} change(s) would be made; nothing was changed")
            return
        made = app.apply(todo, on_step=lambda text: click.echo(f"done: {text}"))
    except DeliveryError as exc:
        raise click.ClickException(f"HubSpot refused or did not answer: {exc}") from None
    click.echo(f"applied {made} change(s)")


@subscriptions.command("show")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
def show(as_json: bool) -> None:
    """Print the app's current webhook settings and subscriptions, and which rules need each."""
    settings = parts().settings
    needs, app = _needs(settings), _app(settings)
    try:
        now = app.current()
    except DeliveryError as exc:
        raise click.ClickException(f"HubSpot refused or did not answer: {exc}") from None
    held = {s.key for s in now.subscriptions if s.active}
    missing = [(key, rules) for key, rules in needs.wanted.items() if key not in held]
    if as_json:
        body = {
            "appId": settings.hubspot_app_id,
            "settings": now.settings.to_wire() if now.settings else None,
            "subscriptions": [s.to_wire() | {"neededBy": list(needs.wanted.get(s.key, ()))} for s in now.subscriptions],
            # needed by the rules and not held active: what apply would create or activate
            "missing": [{"subscription": str(key), "neededBy": list(rules)} for key, rules in missing],
        }
        click.echo(json.dumps(body, indent=2))
        return
    click.echo(f"app {settings.hubspot_app_id}")
    if now.settings is None:
        click.echo("settings: none set")
    else:
        click.echo(f"target URL: {now.settings.target_url}")
        click.echo(f"maxConcurrentRequests: {now.settings.max_concurrent_requests}")
    columns = [("ID", 10), ("EVENT TYPE", 28), ("PROPERTY", 20), ("OBJECT TYPE", 11), ("ACTIVE", 6), ("NEEDED BY", 30)]
    click.echo("  ".join(name.ljust(width) for name, width in columns))
    for sub in now.subscriptions:
        row = [
            sub.id,
            sub.key.event_type,
            sub.key.property_name or "-",
            sub.key.object_type_id or "-",
            "yes" if sub.active else "no",
            ", ".join(needs.wanted.get(sub.key, ())) or "-",
        ]
        click.echo("  ".join(value[:width].ljust(width) for value, (_, width) in zip(row, columns, strict=True)))
    click.echo(f"{len(now.subscriptions)} subscription(s)")
    for key, rules in missing:
        click.echo(f"missing or paused: {key}, needed by {', '.join(rules)} (subscriptions apply sets it up)")
