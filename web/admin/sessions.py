"""The dashboard's server-side sessions: the cookie holds a random id, the session lives in Redis.

So a session can be ended for good: logging out deletes it (a copied cookie then opens nothing, on any
web process), and ``hublink admin sessions revoke --all`` deletes them all. A logged-in session lives
``SESSION_TTL_S`` (8 h) from its login, used or not; one that is not logged in (the login page's CSRF
token and its messages) lives ``ANONYMOUS_TTL_S``. Sessions are opened only under the dashboard's
prefix: the APIs never read or set a cookie (and never pay a Redis read for one).

Fails closed: without Redis no session can be read, so no page opens (the dashboard answers 503).

Keys owned here (see ``hublink.store.keys``): ``session:<digest of the id>`` (the id itself is stored
nowhere: reading Redis does not give anyone a cookie).
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

import orjson
from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from redis import Redis
from werkzeug.datastructures import CallbackDict

from hublink.domain.errors import StoreUnavailableError
from hublink.store.connections import store_errors
from hublink.store.keys import SESSION_TTL_S, Keys

log = logging.getLogger("hublink.web")

#: Where ``web.admin.register`` keeps the app's :class:`SessionStore`.
EXTENSION = "hublink.sessions"

#: How long a session that is not logged in is kept (the login form's CSRF token and flashed messages).
ANONYMOUS_TTL_S = 900


def new_session_id() -> str:
    """A fresh session id: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def is_session_id(value: str) -> bool:
    """True for something shaped like an id :func:`new_session_id` makes (anything else is not looked up)."""
    return 40 <= len(value) <= 64 and all(c.isalnum() or c in "-_" for c in value)


class SessionStore:
    """Sessions by id; every method raises StoreUnavailableError when Redis does not answer."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    def load(self, session_id: str) -> dict[str, Any] | None:
        """The session's data, or None when it ended (logged out, revoked, expired) or never existed."""
        with store_errors():
            raw = self._redis.get(self._keys.session(session_id))
        if not raw:
            return None
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        return data if isinstance(data, dict) else None

    def save(self, session_id: str, data: dict[str, Any], ttl_s: int) -> None:
        """Store ``data`` for ``ttl_s`` seconds (at least one)."""
        with store_errors():
            self._redis.set(self._keys.session(session_id), orjson.dumps(data), ex=max(int(ttl_s), 1))

    def delete(self, session_id: str) -> bool:
        """End one session; True when it existed."""
        with store_errors():
            return bool(self._redis.delete(self._keys.session(session_id)))

    def revoke_all(self) -> int:
        """End every session, logged in or not; return how many were ended."""
        ended = 0
        with store_errors():
            batch: list[Any] = []
            for key in self._redis.scan_iter(match=f"{self._keys.session_prefix}*", count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    ended += int(self._redis.delete(*batch))
                    batch = []
            if batch:
                ended += int(self._redis.delete(*batch))
        return ended


class ServerSession(CallbackDict[str, Any], SessionMixin):
    """One session's data, its id, and what happened to it during the request."""

    def __init__(self, data: dict[str, Any], session_id: str, *, is_new: bool, unavailable: bool = False) -> None:
        def on_update(self_: ServerSession) -> None:
            self_.modified = True
            self_.accessed = True

        super().__init__(data, on_update)
        self.sid = session_id
        self.new = is_new
        self.modified = False
        #: Redis did not answer when the session was read: the dashboard answers 503.
        self.unavailable = unavailable
        #: An id this request gave up (login rotates the id: a session fixed before login is worthless).
        self.ended_sid: str | None = None

    def regenerate(self) -> None:
        """Give the session a fresh id; the old one is deleted when the answer is sent."""
        if not self.new:
            self.ended_sid = self.sid
        self.sid = new_session_id()
        self.new = True
        self.modified = True


class DashboardSessions(SessionInterface):
    """Server-side sessions under ``prefix`` (the dashboard); None elsewhere (Flask's null session)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    @staticmethod
    def _store(app: Flask) -> SessionStore:
        store: SessionStore = app.extensions[EXTENSION]
        return store

    def open_session(self, app: Flask, request: Request) -> ServerSession | None:
        """The session the cookie names, or a new empty one; never raises (a Redis failure is flagged)."""
        if not request.path.startswith(self.prefix):
            return None
        sid = request.cookies.get(self.get_cookie_name(app), "")
        if not is_session_id(sid):
            return ServerSession({}, new_session_id(), is_new=True)
        try:
            data = self._store(app).load(sid)
        except StoreUnavailableError:
            # Raising here would bypass the error handlers (Flask opens sessions before dispatching).
            return ServerSession({}, new_session_id(), is_new=True, unavailable=True)
        if data is None:
            return ServerSession({}, new_session_id(), is_new=True)
        return ServerSession(data, sid, is_new=False)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Store a changed session (and set its cookie), or delete an emptied one (and its cookie)."""
        if not isinstance(session, ServerSession) or session.unavailable:
            return
        store = self._store(app)
        name, domain, path = self.get_cookie_name(app), self.get_cookie_domain(app), self.get_cookie_path(app)
        try:
            if session.ended_sid:
                store.delete(session.ended_sid)
            if not session:
                if not session.new:
                    store.delete(session.sid)
                    response.delete_cookie(name, domain=domain, path=path)
                return
            if not session.modified:
                return
            if session.get("admin"):
                ttl_s = SESSION_TTL_S - (time.time() - float(session.get("since", 0)))
                expires: float | None = time.time() + ttl_s
            else:
                ttl_s, expires = ANONYMOUS_TTL_S, None
            store.save(session.sid, dict(session), int(ttl_s))
        except StoreUnavailableError as exc:
            # The answer is decided; without a stored session the next page asks to log in again.
            log.warning("session not saved", extra={"reason": str(exc)})
            return
        response.set_cookie(
            name,
            session.sid,
            expires=expires,
            httponly=self.get_cookie_httponly(app),
            domain=domain,
            path=path,
            secure=self.get_cookie_secure(app),
            samesite=self.get_cookie_samesite(app),
        )
        response.vary.add("Cookie")
