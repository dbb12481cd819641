"""Backfill planning: which records a rule's backfill walks, and the event each record becomes. Pure.

A backfill applies one rule to records that existed before HubLink was installed. It walks the records of
the rule's object type through HubSpot's CRM search, ascending by ``hs_object_id``, one page at a time,
each page a fresh query with ``hs_object_id GT <last id read>`` (search answers at most 10,000 results
per query, so ``after`` paging would stop there). Each record becomes the event the rule expects: the
fields its expressions read (a field of the same name as a record property, unless mapped to another),
the values its ``when`` equalities ask for, and for ``hubspot`` rules the envelope of a HubSpot webhook
event. The event's dedup key names the rule and the record, so that a resumed or repeated backfill
inside the dedup window queues nothing twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from hublink.domain.associations import STANDARD_OBJECTS
from hublink.domain.events import CrmEvent
from hublink.domain.rules import Expression, Rule
from hublink.domain.times import parse_time

#: HubSpot search's largest page.
PAGE_SIZE = 200
#: Fields of the event envelope, not record properties: a rule reading them is not asking for a property.
ENVELOPE_FIELDS = frozenset(
    {
        "objectId",
        "hs_object_id",
        "portalId",
        "portal_id",
        "eventId",
        "callbackId",
        "subscriptionId",
        "subscriptionType",
        "occurredAt",
        "objectTypeId",
        "attemptNumber",
        "changeSource",
        "changeFlag",
        "propertyName",
        "propertyValue",
    }
)
#: Where each standard object keeps its creation time (engagements and custom objects use hs_createdate).
CREATED_PROPERTY = {
    "contacts": "createdate",
    "companies": "createdate",
    "deals": "createdate",
    "tickets": "createdate",
    "products": "createdate",
    "line_items": "createdate",
}
_ID_FIELDS = ("objectId", "hs_object_id")
#: JMESPath nodes whose first child is read from the root and whose others from that child's result.
_LEFT_FROM_ROOT = frozenset(
    {"subexpression", "index_expression", "projection", "value_projection", "filter_projection", "pipe", "flatten"}
)
_SINGULAR = {plural: plural[:-1] if not plural.endswith("ies") else plural[:-3] + "y" for plural in STANDARD_OBJECTS}


def parse_date(text: str) -> int:
    """Epoch ms from ``2026-01-31`` (midnight UTC), an ISO-8601 date-time or epoch seconds; else ValueError."""
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        day = date.fromisoformat(text)
        return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
    return int(parse_time(text))


def _fields(node: Any) -> Iterator[str]:
    """Top-level field names a JMESPath AST reads (the first field of each path from the payload's root)."""
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if kind == "field":
        yield str(node.get("value"))
        return
    children = node.get("children", [])
    if kind in _LEFT_FROM_ROOT and children:
        # Only the left-most part starts at the root: "properties.amount" reads "properties".
        yield from _fields(children[0])
        return
    for child in children:
        yield from _fields(child)


def expression_fields(expression: Expression | None) -> set[str]:
    """The top-level payload fields an expression reads."""
    if expression is None:
        return set()
    return set(_fields(expression.compiled.parsed))


def rule_object_type(rule: Rule) -> str | None:
    """The object type of the record a rule's event is about: the side whose id is the event's ``objectId``."""
    for from_side, to_side in rule.associations:
        for side in (from_side, to_side):
            if side.expr.field in _ID_FIELDS:
                if side.kind == "id":
                    return side.object_type
                if side.kind == "property":
                    return side.record_type
    return None


def _expected(rule: Rule, key: str) -> str | int | float | bool | None:
    """The first value a rule's ``when`` equality asks of ``key``, if it asks."""
    for name, values in rule.equals:
        if name == key:
            return values[0]
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class BackfillPlan:
    """One rule's walk: the records' type, portal and window, and how a record becomes the rule's event.

    ``fields`` maps each payload field the rule reads to the record property giving it (by default the
    property of the same name); ``since_ms``/``until_ms`` bound ``date_property`` (creation by default).
    """

    rule: Rule
    object_type: str
    portal_id: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    date_property: str = "hs_createdate"
    fields: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def make(
        cls,
        rule: Rule,
        *,
        portal_id: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        mapping: Mapping[str, str] | None = None,
        object_type: str | None = None,
        date_property: str | None = None,
    ) -> BackfillPlan:
        """Plan ``rule``'s backfill; raises ValueError saying what is missing (the object type, a concrete source)."""
        if rule.source == "forms:*":
            raise ValueError(f"rule '{rule.name}' listens to every form (forms:*): a backfill needs one source")
        found = object_type or rule_object_type(rule)
        if found is None:
            raise ValueError(
                f"rule '{rule.name}': no side's id is the event's objectId, so the records to walk are unknown; "
                "name their object type with --object-type"
            )
        read: set[str] = {name for name, _ in rule.equals} | expression_fields(rule.condition)
        for from_side, to_side in rule.associations:
            read |= expression_fields(from_side.expr) | expression_fields(to_side.expr)
        fields = {name: name for name in sorted(read - ENVELOPE_FIELDS)}
        asked = _expected(rule, "propertyName")
        if "propertyValue" in read and isinstance(asked, str):
            fields["propertyValue"] = asked  # a propertyChange rule reads the changed property's value
        fields |= dict(mapping or {})
        return cls(
            rule=rule,
            object_type=found,
            portal_id=portal_id,
            since_ms=since_ms,
            until_ms=until_ms,
            date_property=date_property or CREATED_PROPERTY.get(found, "hs_createdate"),
            fields=fields,
        )

    def properties(self) -> list[str]:
        """The record properties each search asks for."""
        return sorted({*self.fields.values(), self.date_property, "hs_object_id"})

    def filters(self, after_id: str) -> list[dict[str, str]]:
        """One page's search filters: past ``after_id`` (``"0"`` to start), inside the window."""
        filters = [{"propertyName": "hs_object_id", "operator": "GT", "value": after_id}]
        if self.since_ms is not None:
            filters.append({"propertyName": self.date_property, "operator": "GTE", "value": str(self.since_ms)})
        if self.until_ms is not None:
            filters.append({"propertyName": self.date_property, "operator": "LTE", "value": str(self.until_ms)})
        return filters

    def event(self, record_id: str, properties: Mapping[str, Any], *, now_s: float) -> CrmEvent:
        """The event the rule expects for one record (its dedup key names the rule and the record)."""
        created = _epoch_ms(properties.get(self.date_property))
        occurred_ms = created if created is not None else int(now_s * 1000)
        payload: dict[str, Any] = {"objectId": int(record_id)}
        for name, prop in self.fields.items():
            payload[name] = properties.get(prop)
        subscription: str | None = None
        if self.rule.source == "hubspot":
            expected = _expected(self.rule, "subscriptionType")
            singular = _SINGULAR.get(self.object_type, "object")
            subscription = expected if isinstance(expected, str) else f"{singular}.creation"
            payload |= {
                "eventId": int(record_id),
                "subscriptionId": 0,
                "subscriptionType": subscription,
                "occurredAt": occurred_ms,
                "objectTypeId": STANDARD_OBJECTS.get(self.object_type, self.object_type),
                "attemptNumber": 0,
            }
            if self.portal_id is not None:
                payload["portalId"] = int(self.portal_id)
        for name, values in self.rule.equals:
            payload.setdefault(name, values[0])  # what the rule's when asks, where the record says nothing
            if payload[name] is None:
                payload[name] = values[0]
        return CrmEvent(
            source=self.rule.source,
            payload=payload,
            portal_id=self.portal_id,
            event_id=record_id,
            occurred_at=occurred_ms / 1000,
            subscription_type=subscription,
            object_type_id=STANDARD_OBJECTS.get(self.object_type, self.object_type),
            object_id=record_id,
            dedup_key=f"backfill:{self.rule.name}:{self.portal_id or '_'}:{self.object_type}:{record_id}",
        )


def _epoch_ms(value: Any) -> int | None:
    """HubSpot's date property value (epoch ms as a string, or ISO-8601) in epoch ms; None when unreadable."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str) or not value:
        return None
    if value.isascii() and value.isdigit():
        return int(value)
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None
