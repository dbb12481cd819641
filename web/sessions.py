"""The dashboard's server-side sessions as Flask sees them: the cookie holds a random id, nothing else.

The data (logged in since when, with which admin token, the CSRF token, flashed messages) lives in Redis
through :class:`hublink.ops.sessions.SessionStore`. Sessions are opened only under the dashboard's
prefix: the APIs never read or set a cookie (and never pay a Redis read for one).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from hublink.domain.errors import StoreUnavailableError
from hublink.ops.sessions import ANONYMOUS_TTL_S, SESSION_TTL_S, SessionStore, is_session_id, new_session_id

log = logging.getLogger("hublink.web")


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
        store: SessionStore = app.extensions["hublink"].sessions
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
