"""The signed intake under ``/webhooks``: HubSpot app webhooks, workflow actions and third-party forms.

Each view: read the raw body once (bounded), verify the sender before parsing anything, validate every
event, store them in the inbox with one XADD, answer 200. The rules run in the workers, so a request
costs the same whatever the rules ask for. Every refusal is a precise 4xx (or 503 without Redis), and
nothing refused reaches Redis.
"""

from __future__ import annotations

from flask import Flask

from web.webhooks import forms, hubspot, workflow
from web.webhooks.blueprint import bp

#: The modules whose routes :func:`register` installs (imported for that).
ROUTES = (forms, hubspot, workflow)


def register(app: Flask) -> None:
    """Install the webhooks' blueprint."""
    app.register_blueprint(bp)
