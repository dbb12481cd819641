"""Records at scale: ``--synthetic-records deals:1000000`` makes ids 1 to N of a type exist, generated on demand.

Nothing is held per record: a record's properties are a function of its id, so a million deals cost nothing
until read. Search over them follows what a client paging a large type does with HubSpot's CRM search
(docs/reference/hubspot.md §8): filters on ``hs_object_id`` (``EQ``, ``GT``, ``GTE``, ``LT``, ``LTE``, ``BETWEEN``,
AND-ed within one filter group), sorted by ``hs_object_id`` (ascending unless a sort says descending), at
most 200 a page, ``after`` paging, and HubSpot's 10,000-results-per-query cap. Any other filter is refused.
A seeded record with the same type and id shadows its synthetic twin (reads and search show the seeded
properties).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hubspot_sim.records import MAX_SEARCH_RESULTS, Record, SearchQuery

_SPEC = re.compile(r"([A-Za-z0-9_-]+):([1-9][0-9]{0,11})")
ID_PROPERTY = "hs_object_id"
_RANGE_OPERATORS = frozenset({"EQ", "GT", "GTE", "LT", "LTE", "BETWEEN"})
#: The name property HubSpot's standard types carry, for a recognisable generated record.
_NAME_PROPERTY = {"deals": "dealname", "companies": "name", "tickets": "subject", "contacts": "firstname"}


def parse_synthetic(text: str, canonical_type: Any) -> tuple[str, int]:
    """``deals:1000000`` → (``deals``, 1000000). Raises ValueError naming the text when malformed."""
    match = _SPEC.fullmatch(text.strip())
    object_type = canonical_type(match.group(1)) if match else None
    if match is None or object_type is None:
        raise ValueError(f"synthetic records: expected <object type>:<count>, e.g. deals:1000000, got {text!r}")
    return object_type, int(match.group(2))


@dataclass(frozen=True, slots=True)
class SyntheticRecords:
    """Ids 1 to ``count`` of ``object_type``, all created at ``created_at``."""

    object_type: str
    count: int
    created_at: float

    def has(self, object_id: str) -> bool:
        """True when ``object_id`` is one of the generated ids."""
        return object_id.isdigit() and 1 <= int(object_id) <= self.count

    def record(self, object_id: str) -> Record:
        """The generated record of an id (call ``has`` first)."""
        name = _NAME_PROPERTY.get(self.object_type, "name")
        properties: dict[str, str | None] = {name: f"{self.object_type} {object_id}"}
        return Record(object_id, properties, self.created_at, self.created_at)

    def id_range(self, query: SearchQuery) -> tuple[int, int]:
        """The ids [low, high] the query's filters allow. Raises ValueError for a filter on anything else."""
        if len(query.filter_groups) > 1:
            raise ValueError("filterGroups: synthetic records are searched with one filter group on hs_object_id")
        low, high = 1, self.count
        for i, one in enumerate(query.filter_groups[0] if query.filter_groups else ()):
            where = f"filterGroups[0].filters[{i}]"
            if one.property_name != ID_PROPERTY or one.operator not in _RANGE_OPERATORS:
                raise ValueError(f"{where}: synthetic records are searched by hs_object_id {sorted(_RANGE_OPERATORS)}")
            try:
                value = int(one.value or "")
                top = int(one.high_value or "0") if one.operator == "BETWEEN" else value
            except ValueError:
                raise ValueError(f"{where}.value: expected a record id, got {one.value!r}") from None
            low = max(low, {"GT": value + 1, "GTE": value, "EQ": value, "BETWEEN": value}.get(one.operator, low))
            high = min(high, {"LT": value - 1, "LTE": value, "EQ": value, "BETWEEN": top}.get(one.operator, high))
        for name, _ in query.sorts:
            if name != ID_PROPERTY:
                raise ValueError(f"sorts: synthetic records are sorted by hs_object_id only, got {name!r}")
        return low, high

    def search(self, query: SearchQuery, seeded: dict[str, Record]) -> dict[str, Any]:
        """The ``CollectionResponseWithTotalSimplePublicObject`` for one page, generated from the id range."""
        low, high = self.id_range(query)
        total = max(high - low + 1, 0)
        descending = bool(query.sorts) and query.sorts[0][1]
        end = query.page_end(total)
        offsets = range(query.after, end)
        ids = [str(high - offset if descending else low + offset) for offset in offsets]
        wanted = query.properties or None
        results = [(seeded.get(i) or self.record(i)).view(wanted) for i in ids]
        answer: dict[str, Any] = {"total": total, "results": results}
        if end < min(total, MAX_SEARCH_RESULTS):
            answer["paging"] = {"next": {"after": str(end)}}
        return answer
