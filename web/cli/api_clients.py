"""``hublink api-clients create|list|rotate|revoke``: the API's callers, each with its own scopes and tokens.

``create`` and ``rotate`` print the token once, alone on the last line (``TOKEN=$(hublink api-clients
create ci --scopes events:read | tail -n 1)``): only its hash is kept. Every change is audited.
"""

from __future__ import annotations

import json
import re
import time

import click
from flask.cli import with_appcontext

from hublink.ops.api_clients import ApiClient, ApiClientError
from web.audit import audit
from web.callers import SCOPES, api_clients
from web.cli.errors import OperatorGroup

_DURATION = re.compile(r"\A(\d+(?:\.\d+)?)([smhd]?)\Z")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


def duration_s(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``24h`` or ``7d`` in seconds; click.BadParameter otherwise."""
    found = _DURATION.match(text.strip().lower())
    if found is None:
        raise click.BadParameter(f"expected a duration such as 24h, 30m or 3600, got {text!r}")
    return float(found.group(1)) * _UNIT_S[found.group(2)]


def _when(epoch_ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_ms / 1000)) if epoch_ms else "never"


def _describe(client: ApiClient) -> str:
    line = f"{client.name}  scopes={','.join(client.scopes)}  created={_when(client.created_ms)}"
    line += f"  last_used={_when(client.last_used_ms)}"
    ends = [t.expires_ms for t in client.tokens if t.expires_ms]
    if ends:
        line += f"  rotating: old token ends {_when(min(ends))}"
    return line


def _failed(exc: ApiClientError) -> click.ClickException:
    return click.ClickException(exc.message)


@click.group("api-clients", cls=OperatorGroup)
def api_clients_group() -> None:
    """The API's callers: each has its own scopes and tokens (stored hashed)."""


@api_clients_group.command("create")
@click.argument("name")
@click.option(
    "--scopes",
    required=True,
    help=f"comma-separated, some of: {', '.join(SCOPES)}",
)
@with_appcontext
def create(name: str, scopes: str) -> None:
    """Create an API client; its token is printed once, alone on the last line."""
    wanted = [s.strip() for s in scopes.split(",") if s.strip()]
    try:
        client, token = api_clients().create(name, wanted)
    except ApiClientError as exc:
        raise _failed(exc) from None
    audit("api_client.create", name)
    click.echo(f"created {_describe(client)}")
    click.echo("the token follows; it is shown once (only its hash is kept):")
    click.echo(token)


@api_clients_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="one JSON document")
@with_appcontext
def list_clients(as_json: bool) -> None:
    """Every API client: name, scopes, creation, last use (to the minute), rotation. Never a token."""
    clients = api_clients().every()
    if as_json:
        click.echo(json.dumps({"items": [c.as_json() for c in clients]}, indent=2))
        return
    if not clients:
        click.echo("no API clients (the built-in ones are HUBLINK_API_TOKEN and HUBLINK_ADMIN_TOKEN)")
    for client in clients:
        click.echo(_describe(client))


@api_clients_group.command("rotate")
@click.argument("name")
@click.option("--window", default="24h", show_default=True, help="how long the current token keeps working")
@with_appcontext
def rotate(name: str, window: str) -> None:
    """Issue a second token; the current one keeps working for --window, then expires."""
    window_s = duration_s(window)
    try:
        client, token = api_clients().rotate(name, window_s)
    except ApiClientError as exc:
        raise _failed(exc) from None
    audit("api_client.rotate", name)
    ends = min(t.expires_ms for t in client.tokens if t.expires_ms)
    click.echo(f"rotating {name}: the old token works until {_when(ends)}; end it sooner with")
    click.echo(f"`hublink api-clients revoke {name} --token old`. The new token follows, shown once:")
    click.echo(token)


@api_clients_group.command("revoke")
@click.argument("name")
@click.option(
    "--token",
    "which",
    type=click.Choice(["all", "old"]),
    default="all",
    show_default=True,
    help="old: only the old token of a rotation",
)
@with_appcontext
def revoke(name: str, which: str) -> None:
    """Revoke a client (its tokens stop working at once), or only its old token (--token old)."""
    try:
        if which == "old":
            ended = api_clients().revoke_old(name)
            audit("api_client.revoke", f"{name} (old token)")
            click.echo(f"revoked {len(ended)} old token(s) of {name}")
            return
        api_clients().revoke(name)
    except ApiClientError as exc:
        raise _failed(exc) from None
    audit("api_client.revoke", name)
    click.echo(f"revoked {name}")
