"""The operator's dashboard at ``/admin``: log in with HUBLINK_ADMIN_TOKEN, see, pause, replay, purge.

Server-rendered pages without JavaScript; the charts are inline SVG drawn by the templates. A session
kept in Redis (:mod:`web.admin.sessions`; the cookie, HttpOnly, SameSite=Lax and Secure behind HTTPS,
holds only its random id) marks a logged-in operator: logging out, or ``hublink admin sessions revoke
--all``, ends it everywhere. Failed logins are throttled per address and in total (:mod:`web.throttle`).
Every POST carries the session's CSRF token, and replay, purge, pause and resume always pass through a
confirmation page that says what they will do. The overview's figures come from
:mod:`web.admin.dashboard`, the rest from the stores in :class:`web.parts.Parts`.
"""

from __future__ import annotations

from flask import Flask

from web.admin import audit, dead_letters, login, overview, pauses, rules, trace
from web.admin.blueprint import SESSION_LIFETIME, bp
from web.admin.sessions import EXTENSION, DashboardSessions, SessionStore
from web.parts import Parts

#: The modules whose routes :func:`register` installs (imported for that).
ROUTES = (dead_letters, login, overview, pauses, trace, audit, rules)


def register(app: Flask) -> None:
    """Install the blueprint on ``app`` with its server-side sessions and their cookie settings."""
    found: Parts = app.extensions["hublink"]
    app.extensions[EXTENSION] = SessionStore(found.redis, found.keys)
    app.session_interface = DashboardSessions(bp.url_prefix or "/admin")
    # Assigned, not setdefault: Flask's defaults already hold these keys (31 days, SameSite unset).
    app.config["PERMANENT_SESSION_LIFETIME"] = SESSION_LIFETIME
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = found.settings.is_cookie_secure
    app.register_blueprint(bp)
