"""Dashboard sessions, kept server-side: the cookie carries only a random id, the session lives in Redis.

So a session can be ended for good: logging out deletes it (a copied cookie then opens nothing, on any
web process), and ``flask --app web admin sessions revoke --all`` deletes them all. A logged-in session
lives ``SESSION_TTL_S`` (8 h) from its login, used or not; one that is not logged in (the login page's
CSRF token and its messages) lives ``ANONYMOUS_TTL_S``.

Fails closed: without Redis no session can be read, so no page opens (the dashboard answers 503).

Keys owned here (see ``hublink.store.keys``): ``session:<digest of the id>`` (the id itself is stored
nowhere: reading Redis does not give anyone a cookie).
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson
from redis import Redis

from hublink.store.connections import store_errors
from hublink.store.keys import SESSION_TTL_S, Keys

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


__all__ = ["ANONYMOUS_TTL_S", "SESSION_TTL_S", "SessionStore", "is_session_id", "new_session_id"]
