"""Writing the audit log from a request or a command: :func:`audit` finds the actor and the address itself.

The actor is the API client :func:`web.callers.authorize` found, else the dashboard session (``session:``
and the first characters of its digest: the id itself is a credential), else the operating-system user of
a command (``cli:<user>``). Recording is best effort: an action that happened is not undone, nor its
answer lost, because Redis refused the audit entry; that is logged instead.
"""

from __future__ import annotations

import getpass
import hashlib
import logging

from flask import has_request_context, request, session

from hublink.domain.errors import StoreUnavailableError
from web.callers import current_caller
from web.parts import parts

log = logging.getLogger("hublink.web")


def actor() -> str:
    """Who is acting: an API client's name, a dashboard session, or ``cli:<user>``."""
    if not has_request_context():
        try:
            return f"cli:{getpass.getuser()}"
        except (KeyError, OSError):  # no name for this uid (containers)
            return "cli"
    caller = current_caller()
    if caller is not None:
        return caller.name
    sid = getattr(session, "sid", None)
    if sid:
        return "session:" + hashlib.sha256(str(sid).encode()).hexdigest()[:8]
    return "anonymous"


def address() -> str:
    """The client's address for a request, ``local`` for a command."""
    return (request.remote_addr or "unknown") if has_request_context() else "local"


def audit(action: str, target: str, outcome: str = "ok") -> None:
    """Append one entry for the current request or command (best effort: see the module docstring)."""
    who = actor()
    try:
        parts().audit.record(actor=who, action=action, target=target, outcome=outcome, address=address())
    except StoreUnavailableError:
        log.error("audit entry not written", extra={"action": action, "target": target[:80], "actor": who})
