"""The web process's parts, built once by ``create_app`` and reached by views and commands through :func:`parts`.

Only ``hublink`` types live here, so every module of ``web`` can import this one and none of them
imports another subpackage to reach a store.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from redis import Redis

from hublink.config.settings import Settings
from hublink.delivery.labels import LabelCache
from hublink.delivery.pauses import PauseStore
from hublink.domain.rules import RuleSet
from hublink.domain.sources import Sources
from hublink.intake.history import EventHistory
from hublink.intake.inbox import Inbox
from hublink.intake.live_rules import LiveRules
from hublink.intake.rule_versions import RuleVersions
from hublink.lanes import LaneStore
from hublink.ops.audit import AuditLog
from hublink.ops.dead_letters import DeadLetterStore
from hublink.ops.event_replay import EventReplayer
from hublink.ops.metrics import Metrics
from hublink.store.keys import Keys
from hublink.store.scripts import Scripts
from web.throttle import FailureThrottle


@dataclass(frozen=True, slots=True, kw_only=True)
class Parts:
    """What views and commands need: settings, the rules, and the Redis-backed stores."""

    settings: Settings
    #: Requests' Redis client (``hublink.store.connections.WEB_POOL_SIZE`` connections).
    redis: Redis
    #: The probes' own client (/readyz, /metrics: open to anyone), ``PROBE_POOL_SIZE`` connections.
    probe_redis: Redis
    keys: Keys
    scripts: Scripts
    inbox: Inbox
    lanes: LaneStore
    dead_letters: DeadLetterStore
    metrics: Metrics
    #: The rules in use (the file's, or the published version's: HUBLINK_RULES_SOURCE) and their sources.
    live_rules: LiveRules
    #: The rules document's versions in Redis (read and written whatever HUBLINK_RULES_SOURCE says).
    rule_versions: RuleVersions
    #: Portals and lanes paused by operators, and portals whose circuit is open.
    pauses: PauseStore
    #: Every accepted request and event, with what became of it.
    history: EventHistory
    #: Runs past events through today's rules.
    replayer: EventReplayer
    #: The label definitions the workers cached (the web never asks HubSpot).
    labels: LabelCache
    #: Failed dashboard logins, per address and in total.
    login_throttle: FailureThrottle
    #: Failed admin API bearer tokens, per address and in total.
    api_throttle: FailureThrottle
    #: Every admin action: who, what, when, from where, and how it ended (:mod:`web.audit` writes it).
    audit: AuditLog

    @property
    def rules(self) -> RuleSet:
        """The rules in use now (empty without any)."""
        return self.live_rules.current().rules

    @property
    def sources(self) -> Sources:
        """The workflow and form senders of the rules in use now."""
        return self.live_rules.current().sources


def parts() -> Parts:
    """The current app's parts."""
    found: Parts = current_app.extensions["hublink"]
    return found
