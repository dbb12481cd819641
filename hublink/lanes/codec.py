"""The member form: one pending association as one string, written at enqueue and read back at claim.

A member is ``<id> US <first seen ms> US a US <from id> US <to id> US <source> US <received_at> US
<occurred_at> US <extras JSON> US <source event id>`` (US is the unit separator, 0x1F; portal and object
types are the lane's own), or ``<id> US <first seen ms> US j US <record JSON>`` for other work (lookups).
With tracing on, the form letter is followed by the association's origin (``a<origin>``, ``j<origin>``):
the span context of the request that created it, 32 characters (``hublink.tracing.origin``), which the
drain links its HubSpot call to; a member without one (tracing off) is exactly as before. The Lua scripts
read only the id and the first-seen time, so they never see it.
Fresh work is a list item of ``q:<lane>``, about 120 bytes of Redis: a first attempt needs no other state.
Retried and reclaimed work waits in the ``lane:<lane>`` zset by due time, and an association's state
(attempts, history, replays) lives in ``a:<id>`` only once it has some. That state reaches
:func:`claimed_from` as claim.lua returns it (:func:`fields_of`).

Everything a drain will use is checked on reading, so that a corrupt member fails the claim of that one
association (:class:`~hublink.lanes.types.UnreadableRecordError`, dead-lettered by the store), not the
settling of a whole batch after its HubSpot call.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from typing import Any

import orjson

from hublink.domain.associations import (
    MAX_EVENT_ID_CHARS,
    AssociationRequest,
    action_extras,
    canonical_object_type,
    check_object_id,
    is_object_id,
    is_portal_id,
    is_source,
    split_lane,
)
from hublink.domain.dead_letter import DeadLetter, DeadPair
from hublink.domain.errors import InvalidInputError
from hublink.domain.lookups import Work, work_from_record
from hublink.lanes.types import UNREADABLE, UNREADABLE_CATEGORY, Claimed, UnreadableRecordError
from hublink.store.connections import text

#: Separates a member's fields (ASCII unit separator: no id, type, slug or number holds it, and JSON escapes it).
US = "\x1f"
#: The member forms: an association's fields (portal and types are the lane's), or any work's record JSON.
FORM_ASSOCIATION = "a"
FORM_RECORD = "j"
#: The fields of ``a:<id>`` a claim reads, in claim.lua's order.
STATE_FIELDS = ("attempts", "hist", "replays")


def member_of(association_id: str, request: Work, first_seen_ms: int, origin: str = "") -> str:
    """The association as its lane stores it (see the module docstring): everything a first attempt needs.

    Floats are written with ``repr``, which reads back to the same float. A request whose source holds a
    separator (never one intake validated) is written in the record form, which holds anything. ``origin``
    (tracing on only) rides after the form letter.
    """
    if origin and US in origin:
        origin = ""  # never from hublink.tracing; a separator would shift every field after it
    if isinstance(request, AssociationRequest) and US not in request.source:
        extras = action_extras(request.action, request.label, request.types, request.mode)
        return US.join(
            (
                association_id,
                str(first_seen_ms),
                FORM_ASSOCIATION + origin,
                request.from_object_id,
                request.to_object_id,
                request.source,
                repr(request.received_at),
                "" if request.occurred_at is None else repr(request.occurred_at),
                orjson.dumps(extras).decode() if extras else "",
                request.source_event_id or "",  # last: it may hold anything, the separator included
            )
        )
    return US.join(
        (association_id, str(first_seen_ms), FORM_RECORD + origin, orjson.dumps(request.as_record()).decode())
    )


def member_origin(member: str) -> str:
    """The origin a member carries after its form letter (``hublink.tracing``), or "" (tracing was off)."""
    parts = member.split(US, 3)
    return parts[2][1:] if len(parts) == 4 else ""


def member_id(member: str) -> str:
    """The association id a member starts with."""
    return member.partition(US)[0]


def member_first_seen(member: str) -> int | None:
    """When the member's association was first seen (epoch ms), or None if the member does not say."""
    seen = member.split(US, 2)[1:2]
    return int(seen[0]) if seen and seen[0].isdigit() else None


def done_record(item: Claimed, now: int, lane: str) -> bytes:
    """A done association's record, for its trace: when, after which attempts, first seen when."""
    if not (item.history or item.attempts or item.replays):
        return b'{"at":%d,"first_seen":%d}' % (now, item.first_seen_ms)
    return orjson.dumps(
        {
            "at": now,
            "first_seen": item.first_seen_ms,
            "replays": item.replays,
            "attempts": item.attempts,
            "hist": json.dumps(item.history, separators=(",", ":")),
            "lane": lane,
        }
    )


def fields_of(member: Any, state: Any) -> list[Any]:
    """claim.lua's member and state as :func:`claimed_from`'s fields: member, attempts, hist, replays."""
    raw = text(state or b"")
    if not raw:
        return [member, None, None, None]
    if raw.startswith("!"):
        return [member, raw, None, None]
    try:
        values = json.loads(raw)
    except ValueError:
        values = None
    if not isinstance(values, list) or len(values) != len(STATE_FIELDS):
        return [member, f"!state: not the fields claim.lua reads: {raw[:80]}", None, None]
    return [member, *(None if v is False else v for v in values)]


def claimed_from(fields: Sequence[Any], lane: str) -> Claimed:
    """One claimed association from its member and state (:func:`fields_of`); raises UnreadableRecordError.

    Everything a drain will use is checked here, so that a corrupt member or field fails the claim of
    that one association, not the settling of a whole batch after its HubSpot call.
    """
    raw_member, attempts, hist, replays = fields
    if attempts is None and hist is None and replays is None:
        fast = _first_attempt(raw_member, lane)
        if fast is not None:
            return fast
    try:
        member = text(raw_member)
        if text(attempts or "").startswith("!"):
            raise UnreadableRecordError(f"state: {text(attempts)[1:]}"[:300])
        parts = member.split(US, 3)
        if len(parts) != 4:
            raise ValueError("member: expected <id> US <first seen ms> US <form> US <body>")
        association_id, seen, form, body = parts
        form = form[:1]  # what follows the letter is the origin (tracing), no part of the work
        request: Work
        if form == FORM_ASSOCIATION:
            association, extras = _from_member(body, lane)
            if extras:
                _check_as_intake(association)
            request = association
        elif form == FORM_RECORD:
            record = json.loads(body)
            if not isinstance(record, dict):
                raise TypeError(f"member: expected a JSON object, got {type(record).__name__}")
            request = work_from_record(record)
            _check_as_intake(request)
        else:
            raise ValueError(f"member: unknown form {form!r:.20}")
        for name in ("received_at", "occurred_at"):
            value = getattr(request, name)
            if not (value is None and name == "occurred_at") and (
                not isinstance(value, int | float) or isinstance(value, bool)
            ):
                raise TypeError(f"req.{name}: expected a number, got {value!r:.40}")
        history = json.loads(hist) if hist and hist not in (b"[]", "[]") else []
        if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
            raise TypeError("hist: expected a JSON array of objects")
        claimed = Claimed(
            association_id=association_id,
            request=request,
            attempts=int(attempts or 0),
            history=history,
            first_seen_ms=int(seen or 0),
            replays=int(replays or 0),
            member=member,
        )
    except UnreadableRecordError:
        raise
    except InvalidInputError as exc:
        problems = "; ".join(p.message for p in exc.problems) or exc.message
        raise UnreadableRecordError(f"req: {problems}") from None
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as exc:
        raise UnreadableRecordError(f"{type(exc).__name__}: {exc}"[:300]) from None
    if claimed.attempts < 0 or claimed.replays < 0:
        raise UnreadableRecordError("attempts and replays must not be negative")
    return claimed


def unreadable_letter(association_id: str, lane: str, fields: Sequence[Any], reason: str, now: int) -> DeadLetter:
    """The dead letter of an association that cannot be read: what was stored, as text, and why."""
    stored = dict(zip(("member", *STATE_FIELDS), fields, strict=True))
    stored = {k: v for k, v in stored.items() if v not in ("", b"", None)}
    portal, _, types = lane.partition("|")
    from_type, _, to_type = types.partition("|")
    return DeadLetter(
        id=association_id,
        kind="association",
        association=DeadPair(
            portal_id=None if portal == "_" else portal,
            from_object_type=from_type,
            from_object_id="",
            to_object_type=to_type,
            to_object_id="",
        ),
        source="unknown",
        source_event_id=None,
        reason=f"{UNREADABLE}: {reason}",
        error=UnreadableRecordError.__name__,
        status=None,
        category=UNREADABLE_CATEGORY,
        sub_category=None,
        message=reason[:500],
        correlation_id=None,
        first_seen_ms=now,
        dead_at_ms=now,
        stored={k: text(v)[:2000] for k, v in stored.items()},
    )


def _check_as_intake(request: Work) -> None:
    """Check an association's types, ids and portal as intake does (its constructor trusts its caller)."""
    if not isinstance(request, AssociationRequest):
        return
    AssociationRequest.create(
        from_object_type=request.from_object_type,
        from_object_id=request.from_object_id,
        to_object_type=request.to_object_type,
        to_object_id=request.to_object_id,
        portal_id=request.portal_id,
        source=request.source if isinstance(request.source, str) else "?",
        source_event_id=request.source_event_id,
        received_at=0.0,
    )


def _finite(value: str, name: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name}: expected a finite number, got {value!r:.40}")
    return number


@functools.lru_cache(maxsize=4096)
def _lane_parts(lane: str) -> tuple[str | None, str, str]:
    """A lane's portal and object types, checked as intake checks them (once per lane, not per member)."""
    portal, from_type, to_type = split_lane(lane)
    if portal is not None and not is_portal_id(portal):
        raise ValueError(f"lane: bad portal id {portal!r:.30}")
    if canonical_object_type(from_type) != from_type or canonical_object_type(to_type) != to_type:
        raise ValueError(f"lane: object types not in canonical form: {lane!r:.80}")
    return portal, from_type, to_type


def _from_member(body: str, lane: str) -> tuple[AssociationRequest, bool]:
    """An association from the fields of its member's association form, and the lane it waits in.

    Checks what intake checked, field by field, at a fraction of ``AssociationRequest.create``'s cost (a
    2,000-input claim reads 2,000 of these). Returns the request and whether it has optional fields, which
    the caller checks with ``create``.
    """
    from_id, to_id, source, received, occurred, extras, event_id = body.split(US, 6)
    portal, from_type, to_type = _lane_parts(lane)
    if not (is_object_id(from_id) and is_object_id(to_id)):
        check_object_id(from_id)  # raises, naming what is wrong
        check_object_id(to_id)
    if not is_source(source):
        raise ValueError(f"source: expected a short slug, got {source!r:.40}")
    if len(event_id) > MAX_EVENT_ID_CHARS:
        raise ValueError(f"source event id: longer than {MAX_EVENT_ID_CHARS} characters")
    fields: dict[str, Any] = {
        "from_object_type": from_type,
        "from_object_id": from_id,
        "to_object_type": to_type,
        "to_object_id": to_id,
        "portal_id": portal,
        "source": source,
        "source_event_id": event_id or None,
        "received_at": _finite(received, "received_at"),
        "occurred_at": _finite(occurred, "occurred_at") if occurred else None,
    }
    if not extras:
        return AssociationRequest(**fields), False
    more = json.loads(extras)
    if not isinstance(more, dict):
        raise TypeError("extras: expected a JSON object")
    return AssociationRequest.from_record(fields | more), True


def _first_attempt(raw_member: Any, lane: str) -> Claimed | None:
    """The common case, read in a few microseconds: a plain link's member and no state; None otherwise."""
    try:
        member = raw_member.decode() if isinstance(raw_member, bytes) else str(raw_member)
        parts = member.split(US, 3)
        if len(parts) != 4 or parts[2][:1] != FORM_ASSOCIATION:
            return None
        request, extras = _from_member(parts[3], lane)
        if extras:
            return None
        return Claimed(parts[0], request, 0, [], int(parts[1]), 0, member)
    except (ValueError, TypeError, UnicodeDecodeError):
        return None  # the full reading below says what is wrong
