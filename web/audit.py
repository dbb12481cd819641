"""Writing the audit log from a request or a command: :func:`audit` finds the actor and the address itself.

The actor is the API client :func:`web.callers.authorize` found, else the logged-in dashboard session
(``session:`` and the first characters of a digest of its id: the id itself is a credential), else
``anonymous`` (a refused login), or, outside a request, the operating-system user of a command
(``cli:<user>``). Recording is best effort: an action that happened is not undone, nor its answer lost,
because Redis refused the audit entry; that is logged instead.

Targets name what was acted on, one noun and its id (``dead-letter <id>``, ``portal 123``), or for a bulk
action the noun and its filters (:func:`matching`: ``dead-letters status=404 source=api``, or
``dead-letters all``). Dry runs change nothing and are not recorded; neither are reads.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import redis
from flask import has_request_context, request, session

from hublink.domain.errors import StoreUnavailableError
from hublink.intake.history import EventFilter
from web.callers import current_caller
from web.parts import parts

if TYPE_CHECKING:
    from hublink.ops.event_replay import ReplayReport

log = logging.getLogger("hublink.web")


def actor() -> str:
    """Who is acting: an API client's name, a dashboard session, ``anonymous``, or ``cli:<user>``."""
    if not has_request_context():
        try:
            return f"cli:{getpass.getuser()}"
        except (KeyError, OSError):  # no name for this uid (containers)
            return "cli"
    caller = current_caller()
    if caller is not None:
        return caller.name
    sid = getattr(session, "sid", None)
    # Only a logged-in session is someone: the login form's anonymous session has an id too.
    if sid and session.get("admin"):
        return "session:" + hashlib.sha256(str(sid).encode()).hexdigest()[:8]
    return "anonymous"


def address() -> str:
    """The client's address for a request, ``local`` for a command."""
    return (request.remote_addr or "unknown") if has_request_context() else "local"


def matching(noun: str, values: Mapping[str, object], fields: Iterable[str]) -> str:
    """A bulk action's target: ``noun`` and the filters given among ``fields``, or ``noun all``."""
    given = [f"{name}={str(values[name]).strip()}" for name in fields if str(values.get(name) or "").strip()]
    return f"{noun} {' '.join(given) if given else 'all'}"


#: How a count reads in an outcome, by action (``ok: 12 replayed``).
DONE = {"replay": "replayed", "purge": "purged"}


def done_count(action: str, count: int) -> str:
    """The outcome of a bulk action that went through: ``ok: 12 replayed``."""
    return f"ok: {count} {DONE.get(action, 'done')}"


def events_target(event_id: str | None, filters: Mapping[str, object]) -> str:
    """An event replay's target: ``event <id>``, or ``events`` and the history's filters."""
    return f"event {event_id}" if event_id else matching("events", filters, EventFilter.FIELDS)


def replay_outcome(report: ReplayReport, event_id: str | None) -> str:
    """An event replay's outcome: how many events went through and the work they made."""
    if event_id and not report.matched:
        return "refused: no event matches"
    return f"{done_count('replay', report.replayed)}, {report.associations} associations"


def audit(action: str, target: str, outcome: str = "ok") -> None:
    """Append one entry for the current request or command (best effort: see the module docstring)."""
    who = actor()
    try:
        parts().audit.record(actor=who, action=action, target=target, outcome=outcome, address=address())
    except (StoreUnavailableError, redis.RedisError) as exc:
        # Any Redis refusal, not only "not now": a key of the wrong type must not turn a done action into a 500.
        log.error(
            "audit entry not written",
            extra={"action": action, "target": target[:80], "actor": who, "error": type(exc).__name__},
        )
