"""``hublink privacy erase contacts [ID] [--email E]``: erase one contact's data from HubLink.

The erasure ``POST /api/privacy/erase`` and HubSpot's ``contact.privacyDeletion`` events run
(``hublink.ops.privacy``): it prints what was erased, counted by kind, and writes the audit entry
``privacy.erase`` (naming only the type, as the API's does).
"""

from __future__ import annotations

import json

import click

from hublink.ops.privacy import parse_request
from web.api.privacy import eraser
from web.audit import audit
from web.cli.errors import OperatorGroup
from web.parts import parts


@click.group("privacy", cls=OperatorGroup)
def privacy() -> None:
    """Erase a person's data (HubSpot's privacy deletions do it by themselves)."""


@privacy.command("erase")
@click.argument("object_type", metavar="contacts")
@click.argument("object_id", required=False)
@click.option("--email", default=None, help="the contact's email (with or instead of its id)")
@click.option("--json", "as_json", is_flag=True, help="print the counts as JSON")
def erase(object_type: str, object_id: str | None, email: str | None, as_json: bool) -> None:
    """Erase a contact's history, index entries, pending work, dead letters, set-aside entries and more."""
    body = {"objectType": object_type, "objectId": object_id, "email": email}
    try:
        ids, emails = parse_request({k: v for k, v in body.items() if v is not None})
    except ValueError as exc:
        raise click.UsageError(str(exc).replace("objectId: give objectId, email", "give the id, --email")) from None
    erasure = eraser(parts()).erase(contact_ids=ids, emails=emails)
    audit("privacy.erase", "contacts")
    if as_json:
        click.echo(json.dumps(erasure.as_dict(), indent=2))
        return
    counts = erasure.as_dict()["erased"]
    click.echo("erased: " + ", ".join(f"{kind} {n}" for kind, n in counts.items()))
    if erasure.learned_ids or erasure.learned_emails:
        click.echo(
            f"also found by what the events carried: {erasure.learned_ids} more id(s), "
            f"{erasure.learned_emails} more email(s)"
        )
