"""``hublink rules check|try``: check a rules file and try it on a sample event, offline.

Neither needs Redis, HubSpot or any token: they read the files they are given (and the environment for
the secrets a rules file names).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import click

from hublink.domain.errors import ConfigError, InvalidInputError
from hublink.domain.events import parse_form, parse_hubspot_batch, parse_workflow
from hublink.domain.lookups import LookupRequest, describe
from hublink.intake.expansion import plan
from web.cli.errors import OfflineGroup
from web.rules import load_rules


@click.group("rules", cls=OfflineGroup)
def rules() -> None:
    """Check rules files and try them on sample events (offline: no Redis, no token)."""


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
def check(path: str | None) -> None:
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
