"""Inspection queries for tools and operators: how much waits in each lane, and what, without claiming it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redis import Redis

from hublink.lanes.codec import STATE_FIELDS, claimed_from, member_first_seen, member_id
from hublink.lanes.types import Claimed, UnreadableRecordError
from hublink.store.connections import store_errors, text
from hublink.store.keys import Keys


@dataclass(frozen=True, slots=True)
class LaneDepth:
    """How much waits in one lane, and since when."""

    lane: str
    waiting: int
    #: The earliest first-seen (fresh work) or due time (retries) in the lane, epoch ms; None when empty.
    oldest_ms: int | None


def lane_depths(redis: Redis, keys: Keys, lanes: Sequence[str]) -> list[LaneDepth]:
    """The depth of each lane (queue and retry zset together), in one pipeline. Raises redis errors."""
    pipe = redis.pipeline(transaction=False)
    for lane in lanes:
        pipe.llen(keys.queue(lane))
        pipe.lindex(keys.queue(lane), 0)
        pipe.zcard(keys.lane(lane))
        pipe.zrange(keys.lane(lane), 0, 0, withscores=True)
    raw = pipe.execute()
    out = []
    for n, lane in enumerate(lanes):
        fresh, head, retries, first = raw[4 * n : 4 * n + 4]
        times = [int(first[0][1])] if first else []
        seen = None if head is None else member_first_seen(text(head))
        if seen is not None:
            times.append(seen)
        out.append(LaneDepth(lane, int(fresh) + int(retries), min(times) if times else None))
    return out


def pending_ids(redis: Redis, keys: Keys, lane: str) -> list[str]:
    """The ids waiting in ``lane``: retries by due time, then fresh work in the order accepted (for tools)."""
    with store_errors():
        pipe = redis.pipeline(transaction=False)
        pipe.zrange(keys.lane(lane), 0, -1)
        pipe.lrange(keys.queue(lane), 0, -1)
        retries, fresh = pipe.execute()
    return [member_id(text(m)) for m in (*retries, *fresh)]


def peek(redis: Redis, keys: Keys, lane: str, limit: int = 100) -> list[Claimed]:
    """Up to ``limit`` associations waiting in ``lane``, read without claiming them (retries first).

    For tools and tests; what cannot be read is left out (a claim dead-letters it).
    """
    with store_errors():
        pipe = redis.pipeline(transaction=False)
        pipe.zrange(keys.lane(lane), 0, limit - 1)
        pipe.lrange(keys.queue(lane), 0, limit - 1)
        retries, fresh = pipe.execute()
        members = [text(m) for m in (*retries, *fresh)][:limit]
        pipe = redis.pipeline(transaction=False)
        for member in members:
            pipe.hmget(keys.association(member_id(member)), *STATE_FIELDS)
        states = pipe.execute(raise_on_error=False)
    out = []
    for member, state in zip(members, states, strict=True):
        try:
            fields = state if isinstance(state, list) else [None] * len(STATE_FIELDS)
            out.append(claimed_from([member, *fields], lane))
        except UnreadableRecordError:
            continue
    return out
