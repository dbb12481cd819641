"""Who is calling: the API's bearer tokens as callers with scopes, checked by :func:`requires` on every route.

Every ``/api`` route is declared with the one scope it needs (``@requires("events:read")`` under its
``@bp.<method>``); the decorator keeps the scope on the view (``required_scope``) so that a test can read
every route's scope from the URL map, and a route without one fails it. The caller found is kept on
``flask.g`` for the audit log (:mod:`web.audit`).

Today's callers are the two built-in clients: ``HUBLINK_API_TOKEN`` (``associations:write``) and
``HUBLINK_ADMIN_TOKEN`` (every scope but ``associations:write``, as before).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import g

from web.parts import parts
from web.request_parsing import require_bearer

#: Every scope a caller can hold, and what it opens; ``admin`` opens everything.
SCOPES: dict[str, str] = {
    "associations:write": "POST /api/associations (the direct API)",
    "events:read": "the event history, a record's trace, the pauses",
    "events:replay": "replaying past events",
    "dead-letters:read": "listing and reading dead letters",
    "dead-letters:write": "replaying and purging dead letters",
    "pause:write": "pausing and resuming portals and lanes",
    "rules:read": "reading the rules and their versions, checking and previewing a draft",
    "rules:write": "publishing and rolling back rules",
    "admin": "everything, and the admin-only routes (API clients, audit log, privacy erase)",
}

View = TypeVar("View", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Caller:
    """One authenticated caller: a name for the audit log and the scopes it holds."""

    name: str
    scopes: frozenset[str]

    def holds(self, scope: str) -> bool:
        """True when this caller may use a route that needs ``scope``."""
        return scope in self.scopes or "admin" in self.scopes


#: The built-in clients the two token variables stand for.
API_CALLER = Caller("api", frozenset({"associations:write"}))
ADMIN_CALLER = Caller("admin", frozenset({"admin"}))


def authorize(scope: str) -> Caller:
    """The caller of this request if it holds ``scope``; raises ApiError (401, 403, 429) otherwise."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")
    p = parts()
    if scope == "associations:write":
        require_bearer(p.settings.api_token, realm="the direct API")
        caller = API_CALLER
    else:
        require_bearer(p.settings.admin_token, realm="the admin API", throttle=p.api_throttle)
        caller = ADMIN_CALLER
    g.caller = caller
    return caller


def current_caller() -> Caller | None:
    """The caller :func:`authorize` found for this request, if any."""
    found: Caller | None = g.get("caller")
    return found


def requires(scope: str) -> Callable[[View], View]:
    """Declare (and enforce, before the view runs) the scope a route needs."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    def wrap(view: View) -> View:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            authorize(scope)
            return view(*args, **kwargs)

        guarded.required_scope = scope  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    return wrap
