"""Worker heartbeats: each worker's last sign of life, for ``python -m worker --check`` and operators.

Every worker's dispatcher thread writes its heartbeat every few seconds while it can reach Redis; the key
expires by itself, so a worker that died leaves nothing behind for long. A heartbeat says that the worker
runs and reaches Redis: what readiness means for a process whose work all goes through Redis.

Keys owned: ``hb:<worker>`` (epoch ms of the last beat, TTL :data:`HEARTBEAT_TTL_S`). Fails closed: raises
StoreUnavailableError when Redis does not answer.
"""

from __future__ import annotations

import time

from redis import Redis

from hublink.store.connections import store_errors, text
from hublink.store.keys import Keys

#: How often a worker writes its heartbeat.
HEARTBEAT_INTERVAL_S = 2.0
#: A heartbeat older than this is stale: the worker is stuck, or cannot reach Redis.
HEARTBEAT_STALE_S = 15.0
#: A heartbeat key outlives its worker by this long at most.
HEARTBEAT_TTL_S = 60


class WorkerHeartbeats:
    """Writes and reads ``hb:<worker>`` keys."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._last_beat = 0.0

    def beat(self, worker: str, *, force: bool = False) -> bool:
        """Write ``worker``'s heartbeat unless one was written in the last HEARTBEAT_INTERVAL_S; True if written."""
        now = time.time()
        if not force and now - self._last_beat < HEARTBEAT_INTERVAL_S:
            return False
        with store_errors():
            self._redis.set(self._keys.worker_heartbeat(worker), int(now * 1000), ex=HEARTBEAT_TTL_S)
        self._last_beat = now
        return True

    def age_s(self, worker: str) -> float | None:
        """Seconds since ``worker``'s last heartbeat, or None when it has none."""
        with store_errors():
            raw = self._redis.get(self._keys.worker_heartbeat(worker))
        return None if raw is None else max(time.time() - int(text(raw)) / 1000, 0.0)

    def freshest(self, name_prefix: str = "") -> tuple[str, float] | None:
        """The worker (whose name starts with ``name_prefix``) with the newest heartbeat, and its age in seconds."""
        prefix = self._keys.worker_heartbeat_prefix
        best: tuple[str, float] | None = None
        with store_errors():
            for key in self._redis.scan_iter(match=f"{prefix}{name_prefix}*", count=1000):
                worker = text(key)[len(prefix) :]
                age = self.age_s(worker)
                if age is not None and (best is None or age < best[1]):
                    best = (worker, age)
        return best
