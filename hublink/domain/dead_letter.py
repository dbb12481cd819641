"""DeadLetter: the record of an association HubLink gave up on; one dataclass, one wire format.

Built in one place (``hublink.delivery.outcomes``), written by settle.lua as the JSON of
:meth:`DeadLetter.to_wire`, read back with :meth:`DeadLetter.from_wire` by the store, the HTTP API, the CLI
and the dashboard. The wire format is camelCase throughout, as the HTTP API answers; the queued-work
record it carries (``record``) is camelCase on the wire too and turned back into the work's own record
on read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hublink.domain.times import iso

#: Version of the wire format (add fields with defaults, never rename).
WIRE_VERSION = 2

Kind = Literal["association", "lookup"]

#: The categories HubLink itself gives a dead letter, with what each means. Every other category is
#: HubSpot's own (``VALIDATION_ERROR``, ``OBJECT_NOT_FOUND``, ...), copied from its error body.
#: The errors reference page is generated from this table; a unit test finds every category the code sets.
HUBLINK_CATEGORIES: dict[str, str] = {
    "LOOKUP_NO_MATCH": "a rule's search found no record, after retries inside the fresh-record grace",
    "LOOKUP_NO_VALUE": "the property a rule's lookup reads is empty on the record",
    "LOOKUP_AMBIGUOUS": "a rule's search found several records and the rule says `onMultiple: dead-letter`",
    "ASSOCIATION_LIMIT": (
        "the association would take a record past a limit an admin set at HubSpot (per pair of object types or "
        "per label); never retried: raise the limit or remove an association, then replay"
    ),
    "UNKNOWN_LABEL": "the label a rule or request names is not defined at HubSpot for that pair of object types",
    "UNKNOWN_PORTAL": "the association names a portal HubLink has no credentials for",
    "UNREADABLE": "queued work this version cannot read; kept whole so that nothing is silently dropped",
    "RECORD_DELETED": (
        "reason `record_deleted`: the association names a record deleted in HubSpot (a deletion event, or a read "
        "finding it archived past the fresh-record grace); ended without a call, not counted as a failure; replay it "
        "if the record is restored"
    ),
    "APP_UNINSTALLED": (
        "reason `app_uninstalled`: the app was uninstalled from the portal and not reinstalled within "
        "`HUBLINK_UNINSTALLED_HOLD_H`; ended without a call; replay it once the app is installed again"
    ),
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def _convert(value: Any, rename: Any) -> Any:
    if isinstance(value, Mapping):
        return {rename(str(k)): _convert(v, rename) for k, v in value.items()}
    if isinstance(value, list):
        return [_convert(v, rename) for v in value]
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadPair:
    """What the association was meant to link, for people: ids, or a lookup's description."""

    portal_id: str | None
    from_object_type: str
    from_object_id: str
    to_object_type: str
    to_object_id: str
    rule: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    """One dead letter: the association, why it died, every attempt, and what replay needs."""

    id: str
    kind: Kind
    association: DeadPair
    source: str
    source_event_id: str | None
    reason: str
    error: str
    status: int | None
    category: str | None
    sub_category: str | None
    message: str
    correlation_id: str | None
    missing_scopes: tuple[str, ...] = ()
    attempt_count: int = 0
    #: The attempt history (each entry as the lane keeps it: ``at``, ``outcome``, ``status``, ...).
    attempts: tuple[Mapping[str, Any], ...] = ()
    replays: int = 0
    first_seen_ms: int = 0
    dead_at_ms: int = 0
    #: The queued-work record (``AssociationRequest.as_record`` / ``LookupRequest.as_record``) replay rebuilds.
    record: Mapping[str, Any] = field(default_factory=dict)
    #: For work that could not be read (reason ``unreadable``): the stored fields as text, for an operator.
    #: Such a letter has no ``record`` and cannot be replayed.
    stored: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_replayable(self) -> bool:
        """False for a letter whose work could not be read: there is nothing to put back."""
        return bool(self.record)

    def to_wire(self) -> dict[str, Any]:
        """The JSON-safe camelCase form stored in Redis and answered by the HTTP API."""
        a = self.association
        association: dict[str, Any] = {
            "portalId": a.portal_id,
            "fromObjectType": a.from_object_type,
            "fromObjectId": a.from_object_id,
            "toObjectType": a.to_object_type,
            "toObjectId": a.to_object_id,
        }
        if a.rule is not None:
            association["rule"] = a.rule
        return {
            "v": WIRE_VERSION,
            "id": self.id,
            "kind": self.kind,
            "association": association,
            "source": self.source,
            "sourceEventId": self.source_event_id,
            "reason": self.reason,
            "error": self.error,
            "status": self.status,
            "category": self.category,
            "subCategory": self.sub_category,
            "message": self.message,
            "correlationId": self.correlation_id,
            "missingScopes": list(self.missing_scopes),
            "attemptCount": self.attempt_count,
            "attempts": [dict(entry) for entry in self.attempts],
            "replays": self.replays,
            "firstSeen": iso(self.first_seen_ms),
            "firstSeenMs": self.first_seen_ms,
            "deadAt": iso(self.dead_at_ms),
            "deadAtMs": self.dead_at_ms,
            "record": _convert(self.record, _camel),
        } | ({"stored": dict(self.stored)} if self.stored else {})

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> DeadLetter:
        """Read a stored dead letter; raise ValueError if it is not one."""
        try:
            a = wire["association"]
            record = wire.get("record") or {}
            return cls(
                id=str(wire["id"]),
                kind="lookup" if wire.get("kind") == "lookup" else "association",
                association=DeadPair(
                    portal_id=a.get("portalId"),
                    from_object_type=str(a.get("fromObjectType", "")),
                    from_object_id=str(a.get("fromObjectId") or ""),
                    to_object_type=str(a.get("toObjectType", "")),
                    to_object_id=str(a.get("toObjectId") or ""),
                    rule=a.get("rule"),
                ),
                source=str(wire.get("source") or ""),
                source_event_id=wire.get("sourceEventId"),
                reason=str(wire.get("reason") or ""),
                error=str(wire.get("error") or ""),
                status=wire.get("status"),
                category=wire.get("category"),
                sub_category=wire.get("subCategory"),
                message=str(wire.get("message") or ""),
                correlation_id=wire.get("correlationId"),
                missing_scopes=tuple(wire.get("missingScopes") or ()),
                attempt_count=int(wire.get("attemptCount") or 0),
                attempts=tuple(wire.get("attempts") or ()),
                replays=int(wire.get("replays") or 0),
                first_seen_ms=int(wire.get("firstSeenMs") or 0),
                dead_at_ms=int(wire.get("deadAtMs") or 0),
                record=_convert(record, _snake),
                stored={str(k): str(v) for k, v in (wire.get("stored") or {}).items()},
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"not a dead letter: {type(exc).__name__}: {exc}") from None

    def replay_history(self, now_ms: int, keep: int) -> list[Mapping[str, Any]]:
        """The attempt history a replay starts from: this letter's, marked replayed, the newest ``keep``."""
        return [*self.attempts, {"at": iso(now_ms), "outcome": "replayed"}][-keep:]
