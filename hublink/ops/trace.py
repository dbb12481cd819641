"""A record's trace: every event that named a record and every association involving it, in one timeline.

Answers "why was deal 123 not linked?". The events come from the event history's index of the record
(``hublink.intake.history``); each association they produced is looked up where it is now: retrying
(``a:<id>``), leased to a worker (``inflight``), linked (``done:<day>``, kept for the history window), dead
(``dl:<id>``), or else waiting for its first attempt, with its attempts, HubSpot's status and
correlationId for each. A rule's lookup shows what it found (the resolution the workers keep in the history,
``hublink.delivery.lookups.ResolutionHistory``) and the association it became, which either of its records'
traces finds. A record HubSpot deleted or merged says so (``fate``, from ``hublink.intake.record_fates``).
Work that a pause or an open circuit holds in its lane shows as ``paused``, with the reason and what ends
the wait, instead of ``pending``. Reads only; owns no keys. Fails closed: raises
StoreUnavailableError without Redis.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis

from hublink.delivery.circuit import read_circuits
from hublink.delivery.displacements import DISPLACED
from hublink.delivery.lookups import RESOLUTION_KIND, resolution_entry
from hublink.delivery.pauses import PauseStore
from hublink.delivery.record_fates import MERGED_OUTCOME
from hublink.domain.lookups import LOOKUP_LANE_KIND
from hublink.domain.times import iso
from hublink.intake.history import EventFilter, EventHistory, expand_event, record_name, records_named
from hublink.intake.record_fates import DELETED, MERGED_PREFIX, RecordFates
from hublink.lanes import pause_fields
from hublink.store.connections import store_errors, text
from hublink.store.keys import Keys

#: Most history entries a trace reads (a record named by more events is cut, and says so).
MAX_ENTRIES = 500
#: Most lookups whose resolution a trace reads one by one (those its record's index did not bring).
MAX_LOOKUP_READS = 50


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
        tried = [entry for entry in attempts if entry.get("outcome") != MERGED_OUTCOME]
        return out | {
            "state": "done",
            "status": 200,
            "at": iso(int(record["at"])),
            "first_seen": iso(int(record["first_seen"])) if record.get("first_seen") else None,
            "attempt_count": len(tried) + 1,
            "attempts": attempts,
            "retried": bool(tried),
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
    #: lookup id -> what it resolved to (the history's ``lookup-<id>`` entries).
    found: dict[str, dict[str, str]] = {}
    entries = 0
    for entry, event in history.matching(flt):
        entries += 1
        if entries > MAX_ENTRIES:
            break
        if entry.get("k") == RESOLUTION_KIND:
            found |= _resolution(entry)
            continue
        if entry.get("k") == DISPLACED:
            # What a write of a Primary (or parent) company moved: shown, its records are not work to look up.
            events.append(expand_event(entry, event))
            continue
        events.append(expand_event(entry, event))
        portal = str(event.get("p") or "_")
        for item in event.get("a", []):
            if item[1] == "lookup":
                if record in records_named([{k: v for k, v in event.items() if k != "a"}]):
                    pairs[item[0]] = {"lookup": item[2], "portal": portal}
            elif record in item[1:3]:
                pairs[item[0]] = {"from": item[1], "to": item[2], "portal": portal}
    # A lookup of this record's events whose resolution the index did not bring (the trace was cut short).
    for lookup_id in [i for i, pair in pairs.items() if "lookup" in pair and i not in found][:MAX_LOOKUP_READS]:
        kept = history.entry(resolution_entry(lookup_id))
        if kept is not None:
            found |= _resolution(kept)
    for lookup_id, resolved in found.items():
        # A lookup whose event names no record of its own (a workflow's) is found by its resolution alone.
        lookup = pairs.setdefault(lookup_id, {"lookup": resolved["rule"], "portal": "_"})
        lookup["resolved"] = f"{resolved['from']} -> {resolved['to']}"
        lookup["resolved_id"] = resolved["id"]
        portal = lookup["portal"]
        pairs[resolved["id"]] = {
            "from": resolved["from"],
            "to": resolved["to"],
            "portal": portal,
            "lookup_id": lookup_id,
            "rule": resolved["rule"],
            "resolved_at": resolved["at"],
        }
    ids = list(pairs)
    days = _days_since(min([e["received_at"] for e in events] + [r["at"] for r in found.values()], default=None))
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
    _show_waits(redis, keys, associations)
    object_type = record.rsplit("/", 1)[0]
    return {
        "record": record,
        "fate": fate_of(RecordFates(redis, keys).fate(None, object_type, object_id), object_type),
        "events": list(reversed(events)),
        "associations": associations,
        "timeline": timeline(events, associations),
        "truncated": entries > MAX_ENTRIES,
    }


def fate_of(stored: str | None, object_type: str) -> dict[str, str] | None:
    """A record's fate as a trace shows it: ``{"state": "deleted"}``, ``{"state": "merged", "into": "deals/9"}``."""
    if stored == DELETED:
        return {"state": "deleted"}
    if stored is not None and stored.startswith(MERGED_PREFIX):
        return {"state": "merged", "into": f"{object_type}/{stored.removeprefix(MERGED_PREFIX)}"}
    return None


def _resolution(entry: dict[str, Any]) -> dict[str, dict[str, str]]:
    """A ``lookup-<id>`` history entry as {lookup id: the association it became, its pair, rule and time}."""
    lookup_id = str(entry["id"]).removeprefix(resolution_entry(""))
    for event in entry.get("e", []):
        for item in event.get("a", []):
            if item[1] != "lookup":
                rule = (event.get("r") or [""])[0]
                return {
                    lookup_id: {"id": item[0], "from": item[1], "to": item[2], "rule": rule, "at": iso(entry["at"])}
                }
    return {}


#: The states in which work waits in its lane, where a pause or an open circuit holds it.
WAITING_STATES = ("pending", "retrying")


def _lane(association: dict[str, Any]) -> str:
    """The lane an association (or a lookup) of the trace waits in."""
    portal = association.get("portal") or "_"
    if "from" not in association:
        return f"{portal}|{LOOKUP_LANE_KIND}|{association.get('lookup')}"
    return f"{portal}|{association['from'].rsplit('/', 1)[0]}|{association['to'].rsplit('/', 1)[0]}"


def _show_waits(redis: Redis, keys: Keys, associations: list[dict[str, Any]]) -> None:
    """Mark work held by a pause or an open circuit as ``paused``, with why and how it ends."""
    waiting = [a for a in associations if a["state"] in WAITING_STATES]
    if not waiting:
        return
    pauses = {p.field: p for p in PauseStore(redis, keys).list()}
    if not pauses:
        return
    circuits = {c.portal: c for c in read_circuits(redis, keys)}
    for association in waiting:
        lane = _lane(association)
        pause = next((pauses[f] for f in pause_fields(lane) if f in pauses), None)
        if pause is None:
            continue
        since = iso(pause.since_ms) if pause.since_ms else None
        if pause.scope == "circuit":
            circuit = circuits.get(pause.name)
            said = f": {circuit.message}" if circuit and circuit.message else ""
            reason = f"the portal's circuit is open ({pause.reason or 'reason not recorded'}){said}"
            ends = circuit.advice if circuit else "It closes by itself at the next successful probe."
        else:
            reason = f"{pause.scope} {pause.name} is paused" + (f": {pause.reason}" if pause.reason else "")
            ends = f"Resume it: hublink resume --{pause.scope} '{pause.name}'."
        association.update(
            {
                "state": "paused",
                "queued_as": association["state"],
                "reason": reason,
                "waiting": {"scope": pause.scope, "name": pause.name, "since": since, "until": ends},
            }
        )


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
        if e["outcome"] == DISPLACED:
            rows.append({"at": e["received_at"], "what": DISPLACED, "id": e["id"], "detail": "; ".join(e["problems"])})
            continue
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
            if attempt.get("outcome") == MERGED_OUTCOME:
                # Not an attempt: the work was sent to the record a merge made (``hublink.delivery.record_fates``).
                detail = str(attempt.get("message") or "re-targeted to a merged record")
            rows.append(
                {"at": attempt.get("at"), "what": attempt.get("outcome", "attempt"), "id": a["id"], "detail": detail}
            )
        if a.get("lookup_id"):
            detail = f"lookup {a['rule']} ({a['lookup_id'][:8]}) found {_pair(a)}"
            rows.append({"at": a.get("resolved_at"), "what": "resolved", "id": a["id"], "detail": detail})
        if a["state"] == "paused":
            wait = a["waiting"]
            rows.append({"at": wait["since"], "what": "paused", "id": a["id"], "detail": f"waits: {a['reason']}"})
        if a["state"] in ("done", "dead") and a.get("at"):
            detail = "linked (HubSpot 200)" if a["state"] == "done" else f"dead-lettered: {a.get('reason')}"
            rows.append({"at": a["at"], "what": a["state"], "id": a["id"], "detail": detail})
    return sorted(rows, key=lambda r: str(r["at"] or ""))


def _pair(association: dict[str, Any]) -> str:
    if "from" not in association:
        found = f": found {association['resolved']}" if association.get("resolved") else ""
        return f"lookup {association['lookup']}{found}"
    return f"{association.get('from')} -> {association.get('to')}"
