"""The dashboard's server-side sessions: the cookie holds a random id, the session lives in Redis.

So a session can be ended for good: logging out deletes it (a copied cookie then opens nothing, on any
web process), and ``hublink admin sessions revoke --all`` deletes them all. A logged-in session lives
``SESSION_TTL_S`` (8 h) from its login, used or not. Sessions are opened only under the dashboard's
prefix: the APIs never read or set a cookie (and never pay a Redis read for one).

Only a logged-in session is kept in Redis. One that is not (the login form's CSRF token, the messages a
page shows once) travels in the cookie itself, signed with the app's secret key (Flask's own signed
cookie format) and good for ``ANONYMOUS_TTL_S``: a client without a session or credential, however many
requests it sends, stores nothing on the server and cannot fill Redis. The cookie holds either kind: a
session id (letters, digits, ``-`` and ``_``) or a signed value (which always has dots).

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
from flask.sessions import SecureCookieSessionInterface, SessionInterface, SessionMixin
from itsdangerous import BadSignature, URLSafeTimedSerializer
from redis import Redis
from werkzeug.datastructures import CallbackDict

from hublink.domain.errors import StoreUnavailableError
from hublink.store.connections import store_errors
from hublink.store.keys import SESSION_TTL_S, Keys

log = logging.getLogger("hublink.web")

#: Where ``web.admin.register`` keeps the app's :class:`SessionStore`.
EXTENSION = "hublink.sessions"

#: How long a session that is not logged in is good for (the login form's CSRF token and flashed messages).
ANONYMOUS_TTL_S = 900
#: A signed anonymous cookie longer than this is not read (a CSRF token and a few messages are far shorter).
MAX_COOKIE_CHARS = 3000


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
        #: The cookie held this session's data (signed), not an id: it is not logged in and not in Redis.
        self.in_cookie = False

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
        """The session the cookie names or holds, or a new empty one; never raises (a Redis failure is flagged)."""
        if not request.path.startswith(self.prefix):
            return None
        value = request.cookies.get(self.get_cookie_name(app), "")
        if not is_session_id(value):
            session = ServerSession(self._unsigned(app, value), new_session_id(), is_new=True)
            session.in_cookie = bool(session)
            return session
        try:
            data = self._store(app).load(value)
        except StoreUnavailableError:
            # Raising here would bypass the error handlers (Flask opens sessions before dispatching).
            return ServerSession({}, new_session_id(), is_new=True, unavailable=True)
        if data is None:
            return ServerSession({}, new_session_id(), is_new=True)
        return ServerSession(data, value, is_new=False)

    @staticmethod
    def _signer(app: Flask) -> URLSafeTimedSerializer | None:
        """Flask's signed-cookie serializer under the app's secret key (None without one)."""
        return SecureCookieSessionInterface().get_signing_serializer(app)

    def _unsigned(self, app: Flask, value: str) -> dict[str, Any]:
        """The data of a signed anonymous cookie, or nothing (absent, forged, or older than ANONYMOUS_TTL_S)."""
        signer = self._signer(app)
        if not value or signer is None or len(value) > MAX_COOKIE_CHARS:
            return {}
        try:
            data = signer.loads(value, max_age=ANONYMOUS_TTL_S)
        except BadSignature:
            return {}
        return dict(data) if isinstance(data, dict) and not data.get("admin") else {}

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Store a changed logged-in session (and set its cookie id); sign an anonymous one into the cookie."""
        if not isinstance(session, ServerSession) or session.unavailable:
            return
        store = self._store(app)
        name, domain, path = self.get_cookie_name(app), self.get_cookie_domain(app), self.get_cookie_path(app)
        try:
            if session.ended_sid:
                store.delete(session.ended_sid)
            if not session.get("admin") and not session.new:
                # Logged in until this request (it expired, or the token changed): nothing stays in Redis.
                store.delete(session.sid)
        except StoreUnavailableError as exc:
            log.warning("session not ended", extra={"reason": str(exc)})
        if not session.get("admin"):
            self._save_in_cookie(app, session, response)
            return
        if not session.modified:
            return
        ttl_s = SESSION_TTL_S - (time.time() - float(session.get("since", 0)))
        try:
            store.save(session.sid, dict(session), int(ttl_s))
        except StoreUnavailableError as exc:
            # The answer is decided; without a stored session the next page asks to log in again.
            log.warning("session not saved", extra={"reason": str(exc)})
            return
        response.set_cookie(
            name,
            session.sid,
            expires=time.time() + ttl_s,
            httponly=self.get_cookie_httponly(app),
            domain=domain,
            path=path,
            secure=self.get_cookie_secure(app),
            samesite=self.get_cookie_samesite(app),
        )
        response.vary.add("Cookie")

    def _save_in_cookie(self, app: Flask, session: ServerSession, response: Response) -> None:
        """An anonymous session's data, signed, as the cookie (or the cookie removed once it is empty)."""
        name, domain, path = self.get_cookie_name(app), self.get_cookie_domain(app), self.get_cookie_path(app)
        signer = self._signer(app)
        if not session or signer is None:
            if session.in_cookie or not session.new:
                response.delete_cookie(name, domain=domain, path=path)
                response.vary.add("Cookie")
            return
        if not session.modified and session.in_cookie:
            return
        response.set_cookie(
            name,
            signer.dumps(dict(session)),
            max_age=ANONYMOUS_TTL_S,
            httponly=self.get_cookie_httponly(app),
            domain=domain,
            path=path,
            secure=self.get_cookie_secure(app),
            samesite=self.get_cookie_samesite(app),
        )
        response.vary.add("Cookie")
