"""Seeded CRM records and the search over them: record values, seed parsing, and HubSpot's search filters.

Search follows HubSpot's semantics (docs/reference/hubspot.md §2.1, crm-objects spec ``PublicObjectSearchRequest``):
filter groups are OR-ed and the filters inside a group AND-ed, text compares without regard to case (as
HubSpot's does for emails and domains), a page holds at most 200 results, and ``after`` is an offset
cursor.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hubspot_sim.messages import iso_utc

MAX_SEARCH_LIMIT = 200
DEFAULT_SEARCH_LIMIT = 10
#: HubSpot returns at most 10,000 results per query; paging past them is refused (docs/reference/hubspot.md §2.1, §8).
MAX_SEARCH_RESULTS = 10_000
# The operators HubSpot offers (crm-objects spec, Filter.operator), grouped by how they take their value.
_ONE_VALUE = frozenset({"EQ", "NEQ", "GT", "GTE", "LT", "LTE", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"})
_MANY_VALUES = frozenset({"IN", "NOT_IN"})
_NO_VALUE = frozenset({"HAS_PROPERTY", "NOT_HAS_PROPERTY"})
_OPERATORS = _ONE_VALUE | _MANY_VALUES | _NO_VALUE | {"BETWEEN"}


@dataclass(slots=True)
class Record:
    """One CRM record: its properties (strings, or None for an explicitly empty one) and its timestamps."""

    object_id: str
    properties: dict[str, str | None]
    created_at: float
    updated_at: float
    visible_at: float = 0.0  # before this epoch time the record does not exist yet for the API

    def is_visible(self, now: float) -> bool:
        """True once the record exists for the API (see ``visibleAfterMs``)."""
        return now >= self.visible_at

    def all_properties(self) -> dict[str, str | None]:
        """Its properties plus ``hs_object_id``, which HubSpot records always have."""
        return {"hs_object_id": self.object_id, **self.properties}

    def view(self, wanted: Sequence[str] | None = None) -> dict[str, Any]:
        """The ``SimplePublicObject`` JSON; with ``wanted``, only those properties (absent ones left out)."""
        props = self.all_properties()
        if wanted:
            props = {name: props[name] for name in ("hs_object_id", *wanted) if name in props}
        return {
            "id": self.object_id,
            "properties": props,
            "createdAt": iso_utc(self.created_at),
            "updatedAt": iso_utc(self.updated_at),
            "archived": False,
        }


@dataclass(frozen=True, slots=True)
class SeedRecord:
    """A validated ``{"objectType", "id", "properties"}`` entry of a seed."""

    object_type: str
    object_id: str
    properties: dict[str, str | None]
    visible_after_ms: int = 0


def parse_seed(
    raw: Any, canonical_type: Callable[[str], str | None], is_object_id: Callable[[str], bool]
) -> list[SeedRecord]:
    """Validate ``{"records": [...], "visibleAfterMs"?}``. Raises ValueError naming the first bad field.

    ``visibleAfterMs`` (top level, or per record, which wins) delays a record's existence for the API.
    """
    if not isinstance(raw, dict) or not isinstance(raw.get("records"), list):
        raise ValueError('expected {"records": [{"objectType", "id", "properties"}, ...]}')
    default_delay = _delay(raw.get("visibleAfterMs", 0), "visibleAfterMs")
    parsed = []
    for i, item in enumerate(raw["records"]):
        where = f"records[{i}]"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: expected an object, got {item!r}")
        object_type = canonical_type(str(item.get("objectType", "")))
        if object_type is None:
            got = item.get("objectType")
            raise ValueError(f"{where}.objectType: expected a HubSpot object type, got {got!r}")
        object_id = str(item.get("id", ""))
        if not is_object_id(object_id):
            raise ValueError(f"{where}.id: expected 1-20 decimal digits, got {item.get('id')!r}")
        props = item.get("properties") or {}
        if not isinstance(props, dict):
            raise ValueError(f"{where}.properties: expected an object, got {props!r}")
        # HubSpot stores every property value as a string; None stays None, meaning "explicitly empty".
        values = {str(k): (None if v is None else _as_text(v)) for k, v in props.items()}
        delay = _delay(item.get("visibleAfterMs", default_delay), f"{where}.visibleAfterMs")
        parsed.append(SeedRecord(object_type, object_id, values, delay))
    return parsed


def _delay(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where}: expected milliseconds (an integer of at least 0), got {value!r}")
    return value


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True, slots=True)
class Filter:
    """One search filter: ``property_name operator value(s)``."""

    property_name: str
    operator: str
    value: str | None = None
    values: tuple[str, ...] = ()
    high_value: str | None = None

    @classmethod
    def parse(cls, raw: Any, where: str) -> Filter:
        """Validate one filter. Raises ValueError naming ``where`` and the bad field."""
        if not isinstance(raw, dict) or not isinstance(raw.get("propertyName"), str):
            raise ValueError(f"{where}: expected an object with a propertyName, got {raw!r}")
        operator = raw.get("operator", "EQ")
        if operator not in _OPERATORS:
            raise ValueError(f"{where}.operator: expected one of {sorted(_OPERATORS)}, got {operator!r}")
        value = raw.get("value")
        if (operator in _ONE_VALUE or operator == "BETWEEN") and value is None:
            raise ValueError(f"{where}.value: required for operator {operator}")
        values = raw.get("values") or []
        if operator in _MANY_VALUES and (not isinstance(values, list) or not values):
            raise ValueError(f"{where}.values: a non-empty list is required for operator {operator}")
        high = raw.get("highValue")
        if operator == "BETWEEN" and high is None:
            raise ValueError(f"{where}.highValue: required for operator BETWEEN")
        return cls(
            property_name=raw["propertyName"],
            operator=operator,
            value=None if value is None else _as_text(value),
            values=tuple(_as_text(v) for v in values),
            high_value=None if high is None else _as_text(high),
        )

    def matches(self, props: Mapping[str, str | None]) -> bool:
        """True when a record's ``props`` satisfy this filter."""
        actual = props.get(self.property_name)
        if self.operator == "HAS_PROPERTY":
            return actual not in (None, "")
        if self.operator == "NOT_HAS_PROPERTY":
            return actual in (None, "")
        if actual is None:
            # HubSpot leaves out records without the property, even for the negative operators.
            return False
        if self.operator in _MANY_VALUES:
            found = actual.lower() in {v.lower() for v in self.values}
            return found if self.operator == "IN" else not found
        wanted = self.value or ""
        if self.operator in ("EQ", "NEQ"):
            return (actual.lower() == wanted.lower()) == (self.operator == "EQ")
        if self.operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            contains = wanted.strip("*").lower() in actual.lower()
            return contains == (self.operator == "CONTAINS_TOKEN")
        if self.operator == "BETWEEN":
            return _compare(actual, wanted) >= 0 and _compare(actual, self.high_value or "") <= 0
        order = _compare(actual, wanted)
        return {"GT": order > 0, "GTE": order >= 0, "LT": order < 0, "LTE": order <= 0}[self.operator]


def _compare(left: str, right: str) -> int:
    """Numbers compare as numbers (HubSpot's number and date properties), anything else as text."""
    try:
        a, b = float(left), float(right)
    except ValueError:
        a_text, b_text = left.lower(), right.lower()
        return (a_text > b_text) - (a_text < b_text)
    return (a > b) - (a < b)


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A validated ``PublicObjectSearchRequest``."""

    filter_groups: tuple[tuple[Filter, ...], ...] = ()
    properties: tuple[str, ...] = ()
    limit: int = DEFAULT_SEARCH_LIMIT
    after: int = 0
    sorts: tuple[tuple[str, bool], ...] = ()  # (propertyName, descending)

    @classmethod
    def parse(cls, raw: Any) -> SearchQuery:
        """Validate a search body. Raises ValueError naming the bad field (``filterGroups[0].filters[1]``)."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ValueError(f"expected a JSON object, got {raw!r}")
        groups = raw.get("filterGroups") or []
        if not isinstance(groups, list):
            raise ValueError(f"filterGroups: expected a list, got {groups!r}")
        parsed_groups = []
        for g, group in enumerate(groups):
            filters = group.get("filters") if isinstance(group, dict) else None
            if not isinstance(filters, list):
                raise ValueError(f"filterGroups[{g}].filters: expected a list, got {group!r}")
            where = f"filterGroups[{g}].filters"
            parsed_groups.append(tuple(Filter.parse(f, f"{where}[{i}]") for i, f in enumerate(filters)))
        properties = raw.get("properties") or []
        if not isinstance(properties, list) or not all(isinstance(p, str) for p in properties):
            raise ValueError(f"properties: expected a list of names, got {properties!r}")
        limit = raw.get("limit", DEFAULT_SEARCH_LIMIT)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_SEARCH_LIMIT:
            raise ValueError(f"limit: expected an integer from 1 to {MAX_SEARCH_LIMIT}, got {limit!r}")
        after = str(raw.get("after") or "0")
        if not after.isdigit():
            raise ValueError(f"after: expected a paging cursor from an earlier answer, got {after!r}")
        if int(after) >= MAX_SEARCH_RESULTS:
            raise SearchCapError(int(after))
        return cls(tuple(parsed_groups), tuple(properties), limit, int(after), _sorts(raw.get("sorts")))

    def matches(self, props: Mapping[str, str | None]) -> bool:
        """True when any filter group matches entirely (no groups: every record)."""
        groups = self.filter_groups
        return not groups or any(all(f.matches(props) for f in group) for group in groups)

    def page(self, found: Sequence[Record]) -> dict[str, Any]:
        """The ``CollectionResponseWithTotalSimplePublicObject`` for this page of ``found`` (sorted first)."""
        ordered = list(found)
        for name, descending in reversed(self.sorts):  # stable sorts: the first sort ends up the main key
            ordered.sort(key=functools.partial(_record_sort_key, name), reverse=descending)
        end = self.page_end(len(ordered))
        answer: dict[str, Any] = {
            "total": len(ordered),
            "results": [record.view(self.properties or None) for record in ordered[self.after : end]],
        }
        if end < min(len(ordered), MAX_SEARCH_RESULTS):
            answer["paging"] = {"next": {"after": str(end)}}
        return answer

    def page_end(self, total: int) -> int:
        """Where this page ends: ``after + limit``, but never past the total or the 10,000-result cap."""
        return min(self.after + self.limit, total, MAX_SEARCH_RESULTS)


class SearchCapError(ValueError):
    """A search paging past HubSpot's 10,000 results per query."""

    def __init__(self, after: int) -> None:
        super().__init__(
            f"after: {after} is past the {MAX_SEARCH_RESULTS:,} results a search can return; narrow the query "
            "instead, e.g. filter hs_object_id GT the last id seen, sorted by hs_object_id ascending"
        )


def _sorts(raw: Any) -> tuple[tuple[str, bool], ...]:
    """``sorts``: ``[{"propertyName", "direction": "ASCENDING"|"DESCENDING"}]`` or property names."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ValueError(f"sorts: expected a list, got {raw!r}")
    parsed = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            parsed.append((item.lstrip("-"), item.startswith("-")))
            continue
        name = item.get("propertyName") if isinstance(item, dict) else None
        direction = item.get("direction", "ASCENDING") if isinstance(item, dict) else None
        if not isinstance(name, str) or direction not in ("ASCENDING", "DESCENDING"):
            raise ValueError(
                f'sorts[{i}]: expected {{"propertyName", "direction": ASCENDING|DESCENDING}}, got {item!r}'
            )
        parsed.append((name, direction == "DESCENDING"))
    return tuple(parsed)


def _record_sort_key(name: str, record: Record) -> tuple[int, float, str]:
    return _sort_key(record.all_properties().get(name))


def _sort_key(value: str | None) -> tuple[int, float, str]:
    """Numbers before text, numerically; missing values last."""
    if value is None:
        return (2, 0.0, "")
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value.lower())
