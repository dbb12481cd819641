"""A record's trace: every event that named a record and every association involving it, in one timeline.

Answers "why was deal 123 not linked?". The events come from the event history's index of the record
(``hublink.intake.history``); each association they produced is looked up where it is now: retrying
(``a:<id>``), leased to a worker (``inflight``), linked (``done:<day>``, kept for the history window), dead
(``dl:<id>``), or else waiting for its first attempt, with its attempts, HubSpot's status and
correlationId for each. Reads only; owns no keys. Associations a rule's lookup resolved later carry ids
of their own and show as the lookup. Fails closed: raises StoreUnavailableError without Redis.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis

from hublink.domain.times import iso
from hublink.intake.history import EventFilter, EventHistory, expand_event, record_name, records_named
from hublink.store.connections import store_errors, text
from hublink.store.keys import Keys

#: Most history entries a trace reads (a record named by more events is cut, and says so).
MAX_ENTRIES = 500


def _attempts(hist: Any) -> list[dict[str, Any]]:
    if isinstance(hist, str):
        try:
            hist = json.loads(hist)
        except ValueError:
            return []
    return [h for h in hist if isinstance(h, dict)] if isinstance(hist, list) else []


def _state(association_id: str, pair: dict[str, str], raw: list[Any]) -> dict[str, Any]:
    """One association where it is now, from its hash, lease, done record and dead letter."""
    fields, leased, dead, done = raw
    out: dict[str, Any] = {"id": association_id, **pair}
    if dead:
        letter = json.loads(dead)
        attempts = _attempts(letter.get("attempts") or letter.get("history") or [])
        return out | {
            "state": "dead",
            "reason": letter.get("reason"),
            "status": letter.get("status"),
            "category": letter.get("category"),
            "correlation_id": letter.get("correlationId"),
            "attempt_count": letter.get("attemptCount", len(attempts)),
            "attempts": attempts,
            "at": letter.get("deadAt"),
        }
    if done:
        record = json.loads(done)
        attempts = _attempts(record.get("hist"))
        return out | {
            "state": "done",
            "status": 200,
            "at": iso(int(record["at"])),
            "first_seen": iso(int(record["first_seen"])) if record.get("first_seen") else None,
            "attempt_count": len(attempts) + 1,
            "attempts": attempts,
            "retried": bool(attempts),
        }
    if fields:
        values = {text(k): text(v) for k, v in fields.items()}
        attempts = _attempts(values.get("hist", "[]"))
        last = attempts[-1] if attempts else {}
        state = "in_flight" if leased is not None else ("retrying" if attempts else "pending")
        return out | {
            "state": state,
            "first_seen": iso(int(values["first_seen"])) if values.get("first_seen") else None,
            "attempt_count": int(values.get("attempts") or 0),
            "attempts": attempts,
            "status": last.get("status"),
            "correlation_id": last.get("correlationId"),
        }
    if leased is not None:
        return out | {"state": "in_flight", "attempt_count": 0, "attempts": []}
    # A first attempt keeps no state (its lane holds it whole), and a done record outlives the event that
    # named it; so with nothing kept, the association is waiting for its first attempt, unless its dead
    # letter was dropped by the size cap or retention.
    return out | {
        "state": "pending",
        "attempt_count": 0,
        "attempts": [],
        "note": "waiting for its first attempt (no state is kept before one)",
    }


def trace(redis: Redis, keys: Keys, history: EventHistory, object_type: str, object_id: str) -> dict[str, Any]:
    """The record's events, associations and their timeline, oldest first. Raises ValueError for a bad type."""
    flt = EventFilter.parse({"object_type": object_type, "object_id": object_id})
    record = record_name(str(flt.object_type), object_id)
    events: list[dict[str, Any]] = []
    pairs: dict[str, dict[str, str]] = {}
    entries = 0
    for entry, event in history.matching(flt):
        entries += 1
        if entries > MAX_ENTRIES:
            break
        events.append(expand_event(entry, event))
        for item in event.get("a", []):
            if item[1] == "lookup":
                if record in records_named([{k: v for k, v in event.items() if k != "a"}]):
                    pairs[item[0]] = {"lookup": item[2]}
            elif record in item[1:3]:
                pairs[item[0]] = {"from": item[1], "to": item[2]}
    ids = list(pairs)
    days = _days_since(min((e["received_at"] for e in events), default=None))
    with store_errors():
        pipe = redis.pipeline(transaction=False)
        for association_id in ids:
            pipe.hgetall(keys.association(association_id))
            pipe.zscore(keys.inflight, association_id)
            pipe.get(keys.dead_letter(association_id))
            for day in days:
                pipe.hget(keys.done_day(day), association_id)
        raw = pipe.execute()
    width = 3 + len(days)
    associations = []
    for n, association_id in enumerate(ids):
        fields, leased, dead, *by_day = raw[width * n : width * n + width]
        done = next((record for record in by_day if record), None)
        associations.append(_state(association_id, pairs[association_id], [fields, leased, dead, done]))
    return {
        "record": record,
        "events": list(reversed(events)),
        "associations": associations,
        "timeline": timeline(events, associations),
        "truncated": entries > MAX_ENTRIES,
    }


def _days_since(first: str | None) -> list[str]:
    """The UTC days (``YYYYMMDD``) from the first event's to today: where done records may be (at most 62)."""
    today = datetime.now(UTC).date()
    start = today
    if first:
        try:
            start = max(
                datetime.fromisoformat(first.replace("Z", "+00:00")).astimezone(UTC).date(), today - timedelta(61)
            )
        except ValueError:
            start = today - timedelta(7)
    return [(start + timedelta(d)).strftime("%Y%m%d") for d in range((today - start).days + 1)]


def timeline(events: list[dict[str, Any]], associations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events received, associations created, each attempt, and each end, in time order."""
    rows: list[dict[str, Any]] = []
    for e in events:
        made = ", ".join(a.get("id", "")[:8] for a in e["associations"])
        detail = f"{e['source']} {e.get('subscription_type') or ''} {e['outcome']}".replace("  ", " ")
        if e["rules"]:
            detail += f" (rules: {', '.join(e['rules'])})"
        if e.get("replay_of"):
            detail += f" (replay of {e['replay_of']})"
        if made:
            detail += f"; produced {made}"
        rows.append({"at": e["received_at"], "what": "event", "id": e["id"], "detail": detail})
    for a in associations:
        if a.get("first_seen"):
            rows.append({"at": a["first_seen"], "what": "queued", "id": a["id"], "detail": _pair(a)})
        for attempt in a.get("attempts", []):
            status = attempt.get("status")
            detail = f"attempt: {attempt.get('error')} {status} {attempt.get('category') or ''}".rstrip()
            if attempt.get("correlationId"):
                detail += f" correlationId {attempt['correlationId']}"
            rows.append(
                {"at": attempt.get("at"), "what": attempt.get("outcome", "attempt"), "id": a["id"], "detail": detail}
            )
        if a["state"] in ("done", "dead") and a.get("at"):
            detail = "linked (HubSpot 200)" if a["state"] == "done" else f"dead-lettered: {a.get('reason')}"
            rows.append({"at": a["at"], "what": a["state"], "id": a["id"], "detail": detail})
    return sorted(rows, key=lambda r: str(r["at"] or ""))


def _pair(association: dict[str, Any]) -> str:
    if "lookup" in association:
        return f"lookup {association['lookup']}"
    return f"{association.get('from')} -> {association.get('to')}"
