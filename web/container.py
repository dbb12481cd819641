"""The web process's parts, built once by ``create_app`` and reached by views through :func:`parts`."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from redis import Redis

from hublink.dead_letters import DeadLetterStore
from hublink.domain.rules import RuleSet
from hublink.domain.sources import Sources
from hublink.inbox import Inbox
from hublink.keys import Keys
from hublink.metrics import Metrics
from hublink.queueing import Queueing
from hublink.settings import Settings


@dataclass(frozen=True, slots=True)
class Parts:
    """What views need: settings and the Redis-backed stores."""

    settings: Settings
    redis: Redis
    keys: Keys
    queueing: Queueing
    inbox: Inbox
    dead_letters: DeadLetterStore
    metrics: Metrics
    rules: RuleSet
    sources: Sources


def parts() -> Parts:
    """The current app's parts."""
    found: Parts = current_app.extensions["hublink"]
    return found
