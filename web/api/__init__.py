"""The HTTP API under ``/api``: the direct API (``POST /api/associations``) and, behind the admin token,
dead letters, the event history, a record's trace and the pauses.

One blueprint (:data:`web.api.blueprint.bp`); each module adds the routes of what it serves.
"""

from __future__ import annotations

from flask import Flask

from web.api import (
    api_clients,
    associations,
    audit,
    dead_letters,
    events,
    pauses,
    privacy,
    rules,
    rules_preview,
    trace,
)
from web.api.blueprint import bp

#: The modules whose routes :func:`register` installs (imported for that).
ROUTES = (associations, dead_letters, events, pauses, trace, audit, rules, rules_preview, privacy, api_clients)


def register(app: Flask) -> None:
    """Install the API's blueprint and the URL converter its event routes use."""
    app.url_map.converters["event_id"] = events.EventIdConverter
    app.register_blueprint(bp)
