"""Lanes: the one owner of lane keys. Intake's expansion writes work into them; drains claim, settle and leave.

A lane holds the associations that one batch call could carry (same portal, same object-type pair, see
``domain.associations.lane_of``), scored by when each is due. Work waits in lanes rather than as one RQ
job per association: a lane is what one batch call can carry, retries and dead letters stay per
association, and storing a request's work costs one EVALSHA however many events it holds. An idle lane
is woken through the ``wake`` list, which workers turn into RQ drain jobs.

The package, by what each module owns:

- ``types``: work as written and claimed, outcomes, and the :class:`Lanes` protocol a drain depends on;
- ``codec``: the member form, one pending association as one string, and reading it back;
- ``store``: :class:`LaneStore`, the lanes in Redis through the Lua scripts in ``hublink/store/lua``;
- ``memory``: :class:`MemoryLanes`, the same promises in process memory for unit tests;
- ``queries``: what operators and tools read without claiming (depths, ids, a peek).
"""

from hublink.lanes.codec import US, claimed_from, member_of
from hublink.lanes.memory import MemoryLanes
from hublink.lanes.queries import LaneDepth, lane_depths, peek, pending_ids
from hublink.lanes.store import LaneStore
from hublink.lanes.types import (
    UNREADABLE,
    UNREADABLE_CATEGORY,
    Claim,
    Claimed,
    EnqueueResult,
    EventGroup,
    Lanes,
    Outcome,
    PendingItem,
    SweepReport,
    UnreadableRecordError,
    new_association_id,
    pause_fields,
    portal_name,
)

__all__ = [
    "UNREADABLE",
    "UNREADABLE_CATEGORY",
    "US",
    "Claim",
    "Claimed",
    "EnqueueResult",
    "EventGroup",
    "LaneDepth",
    "LaneStore",
    "Lanes",
    "MemoryLanes",
    "Outcome",
    "PendingItem",
    "SweepReport",
    "UnreadableRecordError",
    "claimed_from",
    "lane_depths",
    "member_of",
    "new_association_id",
    "pause_fields",
    "peek",
    "pending_ids",
    "portal_name",
]
