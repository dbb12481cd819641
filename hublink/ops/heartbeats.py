"""Worker heartbeats: each worker's last sign of life, for ``python -m worker --check`` and operators.

Every worker's dispatcher thread writes its heartbeat every few seconds while it can reach Redis; the key
expires by itself, so a worker that died leaves nothing behind for long. A heartbeat says that the worker
runs and reaches Redis: what readiness means for a process whose work all goes through Redis.

A heartbeat alone cannot tell a live worker from one killed a second ago (the key outlives it), so each
worker process also holds its name's *presence*: a pub/sub subscription to ``alive:<worker>`` on a
connection of its own (:class:`WorkerPresence`). Redis drops a subscription the moment the process's
connection closes, which the kernel does when the process dies, however it dies; ``PUBSUB NUMSUB``
then counts no holder. A worker starting under a name waits only while a live process holds it, and
``--check`` answers ready only for a fresh heartbeat whose name a live process holds. A host that vanishes
without closing its connections keeps its subscription until Redis's ``tcp-keepalive`` notices; a holder
whose heartbeat is stale is then treated as gone.

Keys owned: ``hb:<worker>`` (epoch ms of the last beat, TTL :data:`HEARTBEAT_TTL_S`); the channel
``alive:<worker>`` stores nothing. Fails closed: raises StoreUnavailableError when Redis does not answer.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import suppress

from redis import Redis
from redis.client import PubSub

from hublink.store.connections import UNAVAILABLE, store_errors, text
from hublink.store.keys import Keys

#: How often a worker writes its heartbeat.
HEARTBEAT_INTERVAL_S = 2.0
#: A heartbeat older than this is stale: the worker is stuck, or cannot reach Redis.
HEARTBEAT_STALE_S = 15.0
#: A heartbeat key outlives its worker by this long at most.
HEARTBEAT_TTL_S = 60
#: How often a worker waiting for its name looks again whether the holder is gone.
CLAIM_POLL_S = 0.2
#: How often a worker waiting for its name says so in the log.
CLAIM_LOG_EVERY_S = 10.0

log = logging.getLogger("hublink.worker")


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

    def by_age(self, name_prefix: str = "") -> list[tuple[str, float]]:
        """Every worker whose name starts with ``name_prefix`` and has a heartbeat, freshest first, with its age."""
        prefix = self._keys.worker_heartbeat_prefix
        found: list[tuple[str, float]] = []
        with store_errors():
            for key in self._redis.scan_iter(match=f"{prefix}{name_prefix}*", count=1000):
                worker = text(key)[len(prefix) :]
                age = self.age_s(worker)
                if age is not None:
                    found.append((worker, age))
        return sorted(found, key=lambda pair: pair[1])


class WorkerPresence:
    """One process's hold on a worker name: a subscription to ``alive:<name>`` on its own connection.

    :meth:`claim` waits until no live process holds the name, then holds it; :meth:`keep` (called with each
    heartbeat) subscribes again on a fresh connection after Redis came back; :meth:`holders` counts the
    processes holding a name (0 for a worker that died, whatever its heartbeat says).
    """

    def __init__(self, redis: Redis, keys: Keys, heartbeats: WorkerHeartbeats | None = None) -> None:
        self._redis = redis
        self._keys = keys
        self._heartbeats = heartbeats or WorkerHeartbeats(redis, keys)
        self._pubsub: PubSub | None = None
        self._channel = ""
        # A forked child (RQ's scheduler) must not keep the name alive after this process dies: it closes
        # its copy of the subscription's socket (redis-py shuts a socket down only in the process that made it).
        os.register_at_fork(after_in_child=self._forget_in_child)

    @property
    def held(self) -> bool:
        """True once :meth:`claim` took a name (kept through a reconnection)."""
        return bool(self._channel)

    def holders(self, worker: str) -> int:
        """How many live processes hold ``worker``'s name (PUBSUB NUMSUB); raises StoreUnavailableError."""
        channel = self._keys.worker_presence(worker)
        with store_errors():
            answer = self._redis.pubsub_numsub(channel)
        return int(answer[0][1]) if answer else 0

    def claim(self, worker: str, *, stopping: Callable[[], bool] = lambda: False) -> bool:
        """Hold ``worker``'s name once no live process does; False if ``stopping()`` came first.

        A holder whose heartbeat is older than :data:`HEARTBEAT_STALE_S` (a vanished host, whose connection
        Redis has not yet closed, or a hung process) does not keep the name from this one.
        """
        next_log = 0.0
        while not stopping():
            holders = self.holders(worker)
            if holders == 0:
                break
            age = self._heartbeats.age_s(worker)
            if age is None or age > HEARTBEAT_STALE_S:
                log.warning(
                    "worker name held by a process whose heartbeat is stale: taking it over",
                    extra={"worker": worker, "heartbeat_age_s": None if age is None else round(age, 1)},
                )
                break
            if time.monotonic() >= next_log:
                log.warning("worker name held by a live process: waiting for it to stop", extra={"worker": worker})
                next_log = time.monotonic() + CLAIM_LOG_EVERY_S
            time.sleep(CLAIM_POLL_S)
        else:
            return False
        self._channel = self._keys.worker_presence(worker)
        with store_errors():
            self._subscribe()
        return True

    def keep(self) -> None:
        """Make sure the subscription stands (a Redis restart drops it); raises StoreUnavailableError."""
        if not self._channel:
            return
        try:
            if self._pubsub is None:
                self._subscribe()
                return
            # Reading answers (and PING's) both empties the connection's buffer and notices a closed one.
            while self._pubsub.get_message(timeout=0) is not None:
                pass
            self._pubsub.ping()
        except UNAVAILABLE:
            self.release()
            with store_errors():
                self._subscribe()

    def release(self) -> None:
        """Close the subscription's connection (Redis then counts no holder); :meth:`keep` subscribes again."""
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with suppress(*UNAVAILABLE):
                pubsub.close()

    def _forget_in_child(self) -> None:
        pubsub, self._pubsub, self._channel = self._pubsub, None, ""
        if pubsub is not None and pubsub.connection is not None:
            pubsub.connection.disconnect()

    def _subscribe(self) -> None:
        pubsub = self._redis.pubsub()  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(self._channel)
        except BaseException:
            pubsub.close()
            raise
        self._pubsub = pubsub
