"""Every Redis key HubLink owns, its type, and its lifetime: the map of HubLink's Redis.

All names start with ``Settings.redis_prefix`` (default ``hl:``); RQ keeps its own ``rq:`` keys.
HubLink uses multi-key Lua scripts, as RQ does, so like RQ it does not run on Redis Cluster.

==========================  ======  ==========================================================  ================
key                         type    holds                                                       lifetime
==========================  ======  ==========================================================  ================
``a:<id>``                  hash    one pending association: req (JSON), lane, attempts,        until settled
                                    hist (JSON list), first_seen (ms), replays, reclaims
``lane:<lane>``             zset    association ids waiting in a lane, scored by due time (ms)  while non-empty
``lanes``                   zset    lanes with work, scored by the earliest time worth a drain  permanent
``lanejob:<lane>``          string  "a drain for this lane is queued, running or parked"        lease / park
``wake``                    list    lanes to turn into RQ drain jobs (read by every worker)     drained at once
``inflight``                zset    claimed association ids, scored by lease deadline (ms)      until settled
``dl:<id>``                 string  one dead letter (JSON)                                      retention TTL
``dlq``                     zset    dead-letter ids scored by the time they died (ms)           entries trimmed
``dlq:dropped``             string  dead letters dropped by the size cap (counter)              permanent
``seen:<digest>``           string  an event already accepted (dedup mark)                      dedup window
``inbox``                   stream  accepted requests waiting for the workers' expanders        until expanded
``inbox:failed``            stream  inbox entries set aside (unreadable), with the reason       ~10,000 kept
``rl:<bucket>``             zset    requests sent in the rolling window (sliding log)           one window
``rl:<bucket>:block``       string  epoch ms before which nothing may be sent (after a 429)     until then
``rl:<bucket>:max``         string  a lower limit learned from X-HubSpot-RateLimit-Max          a minute
``lookup:<digest>``         string  a cached rule lookup result (JSON)                          cache TTL
``token:<portal>``          string  a cached OAuth access token (JSON)                          token expiry
``m:<name>``                hash    a metric's counters, field = label values                  permanent
``ts:<minute>``             hash    per-minute counters for the dashboard's charts              two hours
``rl:<bucket>:seen``        hash    the last X-HubSpot-RateLimit-* values seen, and when        ten minutes
``alert:<kind>``            string  last alert time (rate-limits alerts)                       alert interval
``hb:<worker>``             string  a worker's last heartbeat (epoch ms), from its dispatcher   one minute
``inbox:excused:<entry>``   string  deliveries of an inbox entry caused by Redis trouble        one day
==========================  ======  ==========================================================  ================
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

DEDUP_PREFIX = "seen:"


def digest(text: str) -> str:
    """A short stable digest for key names built from untrusted text (bounded length, no separators)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names under one prefix; construct once from ``Settings.redis_prefix``."""

    prefix: str = "hl:"

    def association(self, association_id: str) -> str:
        """Hash of one pending association."""
        return f"{self.prefix}a:{association_id}"

    @property
    def association_prefix(self) -> str:
        """Prefix of association hashes (Lua scripts append the id)."""
        return f"{self.prefix}a:"

    def lane(self, lane: str) -> str:
        """Zset of ids waiting in ``lane``."""
        return f"{self.prefix}lane:{lane}"

    @property
    def lane_prefix(self) -> str:
        """Prefix of lane zsets (Lua scripts append the lane)."""
        return f"{self.prefix}lane:"

    @property
    def lanes(self) -> str:
        """Zset of lanes with work, scored by when they are next worth draining."""
        return f"{self.prefix}lanes"

    def lane_job(self, lane: str) -> str:
        """Marker that a drain for ``lane`` is queued, running or parked."""
        return f"{self.prefix}lanejob:{lane}"

    @property
    def lane_job_prefix(self) -> str:
        """Prefix of lane markers (Lua scripts append the lane)."""
        return f"{self.prefix}lanejob:"

    @property
    def wake(self) -> str:
        """List of lanes that need an RQ drain job."""
        return f"{self.prefix}wake"

    @property
    def inflight(self) -> str:
        """Zset of claimed ids scored by lease deadline."""
        return f"{self.prefix}inflight"

    def dead_letter(self, association_id: str) -> str:
        """One dead letter's JSON body."""
        return f"{self.prefix}dl:{association_id}"

    @property
    def dead_letter_prefix(self) -> str:
        """Prefix of dead-letter bodies (Lua scripts append the id)."""
        return f"{self.prefix}dl:"

    @property
    def dead_letters(self) -> str:
        """Zset of dead-letter ids scored by time of death (ms)."""
        return f"{self.prefix}dlq"

    @property
    def dead_letters_dropped(self) -> str:
        """Counter of dead letters dropped by the size cap."""
        return f"{self.prefix}dlq:dropped"

    def seen(self, dedup_key: str) -> str:
        """Dedup mark for one event (``dedup_key`` is hashed: it comes from the sender)."""
        return f"{self.prefix}{DEDUP_PREFIX}{digest(dedup_key)}"

    @property
    def inbox(self) -> str:
        """Stream of verified events waiting for the rules (read by the workers' expanders)."""
        return f"{self.prefix}inbox"

    @property
    def inbox_failed(self) -> str:
        """Stream of inbox entries that could not be expanded, kept for inspection."""
        return f"{self.prefix}inbox:failed"

    def rate_window(self, bucket: str) -> str:
        """Sliding-log window of one rate-limit bucket."""
        return f"{self.prefix}rl:{bucket}"

    def rate_block(self, bucket: str) -> str:
        """Time before which a bucket may not send (set after a 429)."""
        return f"{self.prefix}rl:{bucket}:block"

    def rate_learned_max(self, bucket: str) -> str:
        """A lower limit learned from HubSpot's headers."""
        return f"{self.prefix}rl:{bucket}:max"

    def lookup_cache(self, lookup_key: str) -> str:
        """A cached lookup result."""
        return f"{self.prefix}lookup:{digest(lookup_key)}"

    def oauth_token(self, portal_id: str) -> str:
        """A cached OAuth access token for one portal."""
        return f"{self.prefix}token:{portal_id}"

    def metric(self, name: str) -> str:
        """Counters of one metric."""
        return f"{self.prefix}m:{name}"

    def series(self, minute: int) -> str:
        """Per-minute dashboard counters for one epoch minute."""
        return f"{self.prefix}ts:{minute}"

    @property
    def series_prefix(self) -> str:
        """Prefix of the per-minute series hashes."""
        return f"{self.prefix}ts:"

    def rate_seen(self, bucket: str) -> str:
        """The last rate-limit headers HubSpot sent for a bucket (for the dashboard's headroom chart)."""
        return f"{self.prefix}rl:{bucket}:seen"

    def alert(self, kind: str) -> str:
        """Last time an alert of ``kind`` was sent."""
        return f"{self.prefix}alert:{kind}"

    def worker_heartbeat(self, worker: str) -> str:
        """A worker's last heartbeat (epoch ms), written by its dispatcher thread; ``worker`` is its name."""
        return f"{self.prefix}hb:{worker}"

    @property
    def worker_heartbeat_prefix(self) -> str:
        """Prefix of worker heartbeats (``python -m worker --check`` scans it when given no name)."""
        return f"{self.prefix}hb:"

    def inbox_excused(self, entry_id: str) -> str:
        """How many deliveries of an inbox entry a Redis outage caused (they do not count towards setting it aside)."""
        return f"{self.prefix}inbox:excused:{entry_id}"
