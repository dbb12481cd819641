"""``hublink pause|resume --portal P | --lane L`` and ``hublink pauses list``: hold and release deliveries.

A portal's deliveries wait for one of two reasons: an operator paused it (or one of its lanes), or its
circuit is open (HubSpot refused its token or scopes, or kept failing; ``hublink.delivery.circuit``).
``resume`` lifts the first; for the second it says why the circuit opened and what closes it, and
``resume --portal P --circuit`` closes it at once (once the cause is fixed: the next call is the test,
and the circuit opens again if HubSpot still refuses).

A portal the app was uninstalled from (its circuit open as ``app_uninstalled``) is resumed by ``resume
--portal P`` alone: the operator says the app is installed again. Its cached access token is forgotten, so
its next call refreshes first; a refresh HubSpot still refuses makes it uninstalled again (and its hold
starts again).
"""

from __future__ import annotations

import json
import time

import click
from flask.cli import with_appcontext

from hublink.delivery.circuit import Circuit, RedisCircuitStore, read_circuits
from hublink.delivery.installs import resume_uninstalled
from hublink.delivery.pauses import Pause
from web.audit import audit
from web.cli.errors import OperatorCommand, OperatorGroup
from web.parts import parts


def _target(portal: str | None, lane: str | None) -> tuple[str, str]:
    if (portal is None) == (lane is None):
        raise click.UsageError("give exactly one of --portal or --lane")
    return ("portal", portal) if portal is not None else ("lane", str(lane))


def _since(epoch_ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_ms / 1000))


@click.command("pause", cls=OperatorCommand)
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
    audit("pause", f"{scope} {name}", "ok" if changed else "ok: unchanged")
    click.echo(f"paused {scope} {name}" if changed else f"{scope} {name} was already paused")


def _open_circuit(portal: str) -> Circuit | None:
    """The portal's circuit when it is open, else None."""
    p = parts()
    return next((c for c in read_circuits(p.redis, p.keys) if c.portal == portal and c.is_open), None)


def _why_still_waiting(scope: str, name: str) -> list[str]:
    """What else holds the target's work after (or instead of) an operator's pause: its portal, its circuit."""
    portal = name.split("|", 1)[0]
    held = {(pause.scope, pause.name) for pause in parts().pauses.list()}
    lines = []
    if scope == "lane" and ("portal", portal) in held:
        lines.append(f"portal {portal} is paused too: resume it with `hublink resume --portal {portal}`")
    circuit = _open_circuit(portal)
    if circuit is not None and circuit.is_uninstalled:
        lines.append(
            f"the app is uninstalled from portal {portal} since {_since(circuit.opened_ms)} ({circuit.message}), "
            f"so its work still waits. {circuit.advice}"
        )
    elif circuit is not None:
        lines.append(
            f"portal {portal}'s circuit is open since {_since(circuit.opened_ms)} ({circuit.reason}: "
            f"{circuit.message}), so its work still waits. {circuit.advice} To close it now, once the cause is "
            f"fixed: `hublink resume --portal {portal} --circuit`"
        )
    return lines


@click.command("resume", cls=OperatorCommand)
@click.option("--portal", help="a portal id ('_' in single-portal mode)")
@click.option("--lane", help="one lane, <portal>|<fromType>|<toType>")
@click.option("--circuit", "close_circuit", is_flag=True, help="close the portal's open circuit now (with --portal)")
@with_appcontext
def resume(portal: str | None, lane: str | None, close_circuit: bool) -> None:
    """Resume a paused portal or lane: its waiting work goes out at once. Says so when a circuit holds it."""
    scope, name = _target(portal, lane)
    p = parts()
    try:
        Pause.target(scope, name)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if close_circuit and scope != "portal":
        raise click.UsageError("--circuit closes a portal's circuit: give --portal")
    if scope == "portal" and resume_uninstalled(p.redis, p.keys, p.pauses, name):
        click.echo(
            f"portal {name} is no longer marked uninstalled: its work goes out now (if HubSpot still "
            "refuses its refresh token, it is marked uninstalled again)"
        )
    elif close_circuit:
        closed = RedisCircuitStore(p.redis, p.keys, p.pauses).close(name, int(time.time() * 1000))
        audit("resume", f"circuit {name}", "ok" if closed is not None else "ok: unchanged")
        click.echo(
            f"closed portal {name}'s circuit: its work goes out now (it opens again if HubSpot still refuses)"
            if closed is not None
            else f"portal {name}'s circuit is not open"
        )
    changed = p.pauses.resume(scope, name)
    audit("resume", f"{scope} {name}", "ok" if changed else "ok: unchanged")
    if changed:
        click.echo(f"resumed {scope} {name}")
    elif not close_circuit:
        click.echo(f"{scope} {name} was not paused by an operator")
    for line in _why_still_waiting(scope, name):
        click.echo(line)


@click.group("pauses", cls=OperatorGroup, invoke_without_command=True)
@click.pass_context
def pauses(ctx: click.Context) -> None:
    """What is paused: portals and lanes paused by operators, and portals whose circuit is open."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_)


@pauses.command("list")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of lines")
def list_(as_json: bool) -> None:
    """List what is paused (portals, lanes, and portals whose circuit is open)."""
    items = parts().pauses.list()
    if as_json:
        click.echo(json.dumps([p.as_json() for p in items], indent=2))
        return
    if not items:
        click.echo("nothing is paused")
    for p in items:
        click.echo(f"{p.scope:8} {p.name:40} since {_since(p.since_ms)}  {p.reason}")
