"""The audit log: who did what to HubLink, from where, when, and how it ended.

One Redis stream (``audit`` in :mod:`hublink.store.keys`), one entry per admin action, trimmed on every
write to ``HUBLINK_AUDIT_DAYS`` by stream id (ids are milliseconds, so ``MINID`` is the retention). Actions
are dotted nouns and verbs (``replay``, ``purge``, ``pause``, ``rules.publish``, ``api_client.create``,
``privacy.erase``); the actor is a session, an API client's name or ``cli:<user>``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis import Redis

from hublink.store.connections import store_errors
from hublink.store.keys import Keys

#: Longest target or actor kept (longer ones are cut: the log is for people, not for payloads).
MAX_FIELD_CHARS = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """One admin action as it is kept and answered (``GET /api/audit``)."""

    at: int  # epoch ms
    actor: str
    action: str
    target: str
    outcome: str
    address: str

    def to_wire(self) -> dict[str, str | int]:
        """The entry as the API answers it."""
        return {
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "address": self.address,
        }


class AuditLog:
    """Appends admin actions and reads them back; raises StoreUnavailableError without Redis."""

    def __init__(self, redis: Redis, keys: Keys, *, days: float) -> None:
        self._redis = redis
        self._key = keys.audit
        self._keep_ms = int(days * 86_400_000)

    def record(self, *, actor: str, action: str, target: str, outcome: str = "ok", address: str = "") -> None:
        """Append one entry and drop those older than the retention, in one command."""
        now_ms = int(time.time() * 1000)
        fields = {
            "actor": actor[:MAX_FIELD_CHARS],
            "action": action[:MAX_FIELD_CHARS],
            "target": target[:MAX_FIELD_CHARS],
            "outcome": outcome[:MAX_FIELD_CHARS],
            "address": address[:MAX_FIELD_CHARS],
        }
        with store_errors():
            self._redis.xadd(self._key, fields, minid=f"{now_ms - self._keep_ms}-0", approximate=True)  # type: ignore[arg-type]
