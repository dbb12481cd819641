"""``hublink rules check|try|pull|push|history|rollback|preview``: the rules document, offline and in Redis.

``check`` and ``try`` need no Redis, HubSpot or token: they read the files they are given (and the
environment for the secrets a rules file names). ``pull``, ``push``, ``history`` and ``rollback`` work on
the versions in Redis (``HUBLINK_RULES_SOURCE=redis``; ``docs/operations/rules-versions.md``): ``push``
of a file is a publish, so the rules can live in git and be published from CI; it is refused, with every
problem and its line, when the file does not check, and publishes nothing when the file is the published
text already. ``push`` and ``rollback`` are audited (``rules.publish``, ``rules.rollback``). ``preview``
runs a file and the published rules side by side over the last events of the history, storing nothing.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import click
from flask.cli import with_appcontext

from hublink.config.rule_versions import RulesRejected, RuleVersion, check, subscriptions_needed
from hublink.domain.errors import ConfigError, InvalidInputError
from hublink.domain.events import parse_form, parse_hubspot_batch, parse_workflow
from hublink.domain.lookups import LookupRequest, describe
from hublink.domain.rules import RulesError
from hublink.domain.times import iso
from hublink.intake.expansion import plan
from hublink.ops.rules_preview import DEFAULT_LIMIT, MAX_LIMIT, preview
from web.audit import actor, audit
from web.cli.errors import OfflineGroup
from web.parts import parts
from web.rules import load_rules


@click.group("rules", cls=OfflineGroup)
def rules() -> None:
    """Check and try rules files (offline); pull, push, list and roll back the versions in Redis."""


def _load(path: str) -> Any:
    """The rules of ``path``; a problem is printed one per line (file, line, rule) and exits 1."""
    try:
        return load_rules(path, os.environ)[0].rules
    except ConfigError as exc:
        # The file was named on the command line, not by the variable: say so by its path alone.
        unreadable = str(exc).removeprefix("HUBLINK_RULES_FILE: ") + "; check the path"
        problems = getattr(exc, "problems", None) or (unreadable,)
        for problem in problems:
            click.echo(f"Error: {problem}", err=True)
        raise SystemExit(1) from None


@rules.command("check")
@click.argument("path", required=False)
def check_file(path: str | None) -> None:
    """Validate a rules file (default: HUBLINK_RULES_FILE): schema and JMESPath, naming rule and line."""
    path = path or os.environ.get("HUBLINK_RULES_FILE")
    if not path:
        raise click.UsageError("give a FILE, or set HUBLINK_RULES_FILE to the rules file to check")
    ruleset = _load(path)
    click.echo(f"{path}: {len(ruleset.rules)} rule(s) OK")


@rules.command("try")
@click.argument("path")
@click.option("--source", required=True, help="hubspot, workflow or forms:<name>")
@click.option(
    "--event",
    "event_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="a JSON file: a HubSpot batch (array), a workflow body or form fields",
)
def try_(path: str, source: str, event_path: str) -> None:
    """Print the associations and lookups an event would produce; enqueue nothing."""
    ruleset = _load(path)
    with open(event_path, "rb") as handle:
        raw = handle.read()
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise click.ClickException(f"{event_path}: not valid JSON ({exc}); give a JSON event file") from None
    try:
        if source == "hubspot":
            events = parse_hubspot_batch(body)
        elif source == "workflow":
            events = [parse_workflow(body, received_at=time.time())]
        elif source.startswith("forms:"):
            events = [parse_form(source.split(":", 1)[1], body, id_field=None, id_value=None, raw_body=raw)]
        else:
            raise click.BadParameter("expected hubspot, workflow or forms:<name>", param_hint="--source")
    except InvalidInputError as exc:
        reasons = "; ".join(p.message for p in exc.problems) or exc.message
        raise click.ClickException(f"{event_path}: not a {source} event: {reasons}") from None
    for event in events:
        work, problems, matched = plan(event, ruleset, time.time())
        click.echo(
            f"event {event.event_id or '-'} ({event.subscription_type or source}):"
            + ("" if matched else " no rule matched")
        )
        for item in work:
            if isinstance(item, LookupRequest):
                click.echo(f"  lookup  [{item.rule}] {describe(item.from_side)} -> {describe(item.to_side)}")
            else:
                click.echo(
                    f"  link    {item.from_object_type}/{item.from_object_id} -> "
                    f"{item.to_object_type}/{item.to_object_id}"
                )
        for problem in problems:
            click.echo(f"  problem {problem}")


def _require_redis_source(action: str) -> None:
    """Refuse (exit 1) unless HUBLINK_RULES_SOURCE is redis: versions in Redis would be read by no process."""
    if parts().live_rules.source != "redis":
        raise click.ClickException(
            f"cannot {action}: HUBLINK_RULES_SOURCE is file (the rules file is read at start); "
            "set HUBLINK_RULES_SOURCE=redis on the web and the workers to publish rules"
        )


def _told(version: RuleVersion) -> str:
    """``v3 by admin at 2026-12-07T04:30:00Z: comment``."""
    comment = f": {version.comment}" if version.comment else ""
    return f"v{version.version} by {version.author or '-'} at {iso(version.published_at)}{comment}"


def _say_published(version: RuleVersion, verb: str) -> None:
    """What a publish or rollback did, and the subscriptions its rules newly need."""
    click.echo(f"{verb} {_told(version)}")
    before = parts().rule_versions.get(version.version - 1)
    needed = subscriptions_needed(version.text, before.text if before else None)
    for item in needed:
        click.echo(f"  needs subscription {item['subscription']} (rules: {', '.join(item['rules'])})")
    if needed:
        click.echo("  check what the app holds: hublink hubspot subscriptions apply --dry-run")


def _refuse(path: str, exc: RulesRejected) -> None:
    """Every problem on its own line (``FILE:LINE: message``), then exit 1."""
    for problem in exc.problems:
        where = f"{path}:{problem.line}" if problem.line is not None else path
        click.echo(f"Error: {where}: {problem.message}", err=True)
    raise SystemExit(1)


@rules.command("pull")
@click.option("--version", "number", type=click.IntRange(min=1), help="this version (default: the published one)")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="write here (default: stdout)")
@with_appcontext
def pull(number: int | None, output: str | None) -> None:
    """Print (or write) the published rules, or one version's; with the file source, the rules file."""
    p = parts()
    if number is None and p.live_rules.source == "file":
        text, told = p.live_rules.current().text, "the rules file (HUBLINK_RULES_SOURCE=file)"
        if not text:
            raise click.ClickException("no rules: HUBLINK_RULES_FILE is not set")
    else:
        p.live_rules.current()  # seeds version 1 from the file on a fresh Redis
        found = p.rule_versions.get(number) if number is not None else p.rule_versions.published()
        if found is None:
            raise click.ClickException(f"no rules version {number}" if number else "no rules published yet")
        text, told = found.text, _told(found)
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}: {told}", err=True)
    else:
        click.echo(text, nl=False)


@rules.command("push")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--comment", "-m", default="", help="why (kept with the version and shown in the history)")
@with_appcontext
def push(path: str, comment: str) -> None:
    """Publish a rules file as the next version (refused, exit 1, with each problem when it does not check)."""
    _require_redis_source("push")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{path}: not UTF-8 text ({exc.reason})") from None
    p = parts()
    p.live_rules.current()  # seeds version 1 from the file on a fresh Redis
    published = p.rule_versions.published()
    if published is not None and published.text == text:
        click.echo(f"unchanged: {path} is the published text ({_told(published)}); nothing published")
        return
    try:
        version = p.rule_versions.publish(text, author=actor(), comment=comment, environ=p.live_rules.environ)
    except RulesRejected as exc:
        audit("rules.publish", "draft", outcome="refused")
        _refuse(path, exc)
        return
    audit("rules.publish", version.tag)
    _say_published(version, "published")


@rules.command("history")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True, help="versions to list")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@with_appcontext
def history(limit: int, as_json: bool) -> None:
    """The versions of the rules, newest first (the first is the published one)."""
    found = parts().rule_versions.versions(limit)
    if as_json:
        click.echo(json.dumps({"items": [v.to_wire() for v in found]}, indent=2))
        return
    if not found:
        click.echo("no rules versions")
        return
    click.echo(f"{'VERSION':<8}  {'PUBLISHED':<24}  {'AUTHOR':<24}  COMMENT")
    for v in found:
        click.echo(f"{'v' + str(v.version):<8}  {iso(v.published_at):<24}  {v.author[:24]:<24}  {v.comment}")


@rules.command("rollback")
@click.argument("number", metavar="VERSION", type=click.IntRange(min=1))
@click.option("--comment", "-m", default="", help="why (default: rollback to vN)")
@with_appcontext
def rollback(number: int, comment: str) -> None:
    """Publish an old version's text again, as a new version."""
    _require_redis_source("roll back")
    p = parts()
    try:
        version = p.rule_versions.rollback(number, author=actor(), comment=comment, environ=p.live_rules.environ)
    except KeyError:
        raise click.ClickException(f"no rules version {number}; `hublink rules history` lists them") from None
    except RulesRejected as exc:
        audit("rules.rollback", f"v{number}", outcome="refused")
        _refuse(f"v{number}", exc)
        return
    audit("rules.rollback", version.tag)
    _say_published(version, "rolled back: published")


@rules.command("preview")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--limit", type=click.IntRange(1, MAX_LIMIT), default=DEFAULT_LIMIT, show_default=True)
@click.option("--source", help="only events of this source: hubspot, workflow or forms:<name>")
@click.option("--type", "subscription_type", help="only events of this subscriptionType (deal.creation, ...)")
@click.option("--json", "as_json", is_flag=True, help="print the preview as JSON (POST /api/rules/preview's answer)")
@with_appcontext
def preview_file(path: str, limit: int, source: str | None, subscription_type: str | None, as_json: bool) -> None:
    """Run a rules file and the published rules over the last events of the history; store nothing."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{path}: not UTF-8 text ({exc.reason})") from None
    p = parts()
    problems = check(text, environ=p.live_rules.environ)
    if problems:
        _refuse(path, RulesRejected(problems))
    if p.live_rules.source == "redis":
        p.live_rules.current()  # seeds version 1 from the file on a fresh Redis
        found = p.rule_versions.published()
        published_text, against = (found.text, f"v{found.version}") if found else (None, "nothing published")
    else:
        published_text, against = p.live_rules.current().text or None, "the rules file"
    try:
        result = preview(
            text,
            published_text,
            p.history,
            limit=limit,
            source=source,
            subscription_type=subscription_type,
            own_app_id=p.settings.hubspot_app_id,
        )
    except RulesError as exc:
        raise click.ClickException(f"the published rules do not check: {exc.problems[0]}") from None
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    for event in result["events"]:
        if not (event["changed"] or event["draft"]["rules"]):
            continue  # matched by neither: not worth a line
        mark = "changed" if event["changed"] else "same"
        head = f"{event['id']} {event['subscriptionType'] or event['source']} {event['objectId'] or '-'}"
        click.echo(f"{head}: {mark}; draft rules {', '.join(event['draft']['rules']) or '(none)'}")
        for association in event["draft"]["associations"]:
            lookup = " (lookup)" if association.get("needsLookup") else ""
            click.echo(f"  {association['action']:<7} {association['from']} -> {association['to']}{lookup}")
    summary = result["summary"]
    click.echo(
        f"{summary['events']} event(s) against {against}: would link {summary['wouldLink']}, "
        f"newly unmatched {summary['newlyUnmatched']}, changed {summary['changed']}"
    )
