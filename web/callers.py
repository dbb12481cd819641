"""Who is calling: the API's bearer tokens as callers with scopes, checked by :func:`requires` on every route.

Every ``/api`` route is declared with the one scope it needs (``@requires("events:read")`` under its
``@bp.<method>``); the decorator keeps the scope on the view (``required_scope``) so that a test can read
every route's scope from the URL map, and a route without one fails it. The caller found is kept on
``flask.g`` for the audit log (:mod:`web.audit`).

A caller is one of the two built-in clients, ``HUBLINK_API_TOKEN`` (named ``api``, scope
``associations:write``) and ``HUBLINK_ADMIN_TOKEN`` (named ``admin``, scope ``admin``), or an API client
(:mod:`hublink.ops.api_clients`: ``hl_<id>_<secret>`` tokens with their own scopes). ``admin`` holds every
scope, ``associations:write`` included: before API clients the admin token could not post associations,
but nothing relied on that refusal, the admin token can already do more harmful things (purge, replay), and
one rule ("admin opens everything") is easier to reason about than an exception. Keep ingestion on its
own token or client all the same, so that rotating the admin token never touches it.

Refusals: no token or a wrong one, 401; a right token without the scope, 403 ``forbidden`` whose
``details.scope`` names the scope it lacks. Wrong tokens are throttled (:mod:`web.throttle`) on every
route but ``POST /api/associations``, as before: the direct API is the hot path, and its tokens (a
configured secret, or 256 random bits) are not guessable one request at a time.
"""

from __future__ import annotations

import functools
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import current_app, g

from hublink.domain.errors import StoreUnavailableError
from hublink.ops.api_clients import TOKEN_PREFIX, ApiClientStore
from web.errors import ApiError
from web.parts import parts
from web.request_parsing import check_bearer

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
log = logging.getLogger("hublink.web")


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


def api_clients() -> ApiClientStore:
    """The app's API client store, built once per app (its last-use memo is per process)."""
    found = current_app.extensions.get("hublink.api_clients")
    if found is None:
        p = parts()
        found = current_app.extensions["hublink.api_clients"] = ApiClientStore(p.redis, p.keys, scopes=SCOPES)
    store: ApiClientStore = found
    return store


def identify(presented: str) -> Caller | None:
    """The caller a bearer token stands for, or None (constant-time comparisons)."""
    settings = parts().settings
    token = presented.encode()
    found: Caller | None = None
    # Both compared, always: timing tells nothing of which one (if either) it was.
    for expected, caller in ((settings.api_token, API_CALLER), (settings.admin_token, ADMIN_CALLER)):
        if expected and hmac.compare_digest(token, expected.encode()):
            found = caller
    if found is not None or not presented.startswith(TOKEN_PREFIX):
        return found
    store = api_clients()
    match = store.find(presented)
    if match is None:
        return None
    try:
        store.touch(match)
    except StoreUnavailableError:
        # A last use is worth less than the request it would refuse.
        log.debug("last use not written", extra={"client": match.name})
    return Caller(match.name, match.scopes)


def authorize(scope: str) -> Caller:
    """The caller of this request if it holds ``scope``; raises ApiError (401, 403, 429) otherwise."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")
    throttle = None if scope == "associations:write" else parts().api_throttle
    caller = check_bearer(identify, throttle=throttle)
    g.caller = caller
    if not caller.holds(scope):
        raise ApiError(
            403,
            "forbidden",
            f"the caller {caller.name!r} does not hold the scope {scope!r}",
            {"scope": scope, "caller": caller.name},
        )
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
