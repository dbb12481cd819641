"""The web process's parts, built once by ``create_app`` and reached by views through :func:`parts`."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from redis import Redis

from hublink.config.settings import Settings
from hublink.domain.sources import Sources
from hublink.intake.inbox import Inbox
from hublink.ops.dead_letters import DeadLetterStore
from hublink.ops.metrics import Metrics
from hublink.ops.sessions import SessionStore
from hublink.ops.throttle import FailureThrottle
from hublink.store.keys import Keys
from web.labels import LabelCheck


@dataclass(frozen=True, slots=True)
class Parts:
    """What views need: settings and the Redis-backed stores."""

    settings: Settings
    redis: Redis
    keys: Keys
    inbox: Inbox
    dead_letters: DeadLetterStore
    metrics: Metrics
    sources: Sources
    #: The dashboard's server-side sessions.
    sessions: SessionStore
    #: Failed dashboard logins, per address and in total.
    login_throttle: FailureThrottle
    #: Failed admin API bearer tokens, per address and in total.
    api_throttle: FailureThrottle
    #: Resolves the direct API's label names (None in tests that build Parts without one).
    labels: LabelCheck | None = None


def parts() -> Parts:
    """The current app's parts."""
    found: Parts = current_app.extensions["hublink"]
    return found
