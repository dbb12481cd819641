"""The associations the simulator holds: each pair's types (labels), both directions, and how clients spelled them.

HubSpot's associations are two-way: associating deal 1 → contact 2 with type 3 also makes contact 2 → deal 1
with type 4. The store keeps, per canonical direction, the set of types between two records, and an index
per record and object type for reads. ``GET /_sim/associations`` lists what clients *sent*, with the types
exactly as their paths spelled them (tests compare those), once per distinct spelling, in first-seen order.

Not thread-safe: ``SimState`` calls it under its lock; every method is O(its input).
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice
from typing import Any

from hubspot_sim.association_types import Spec

#: (fromObjectType, fromObjectId, toObjectType, toObjectId), the types exactly as the path gave them.
AssociationKey = tuple[str, str, str, str]
#: The same with canonical types: one direction of an association.
Direction = tuple[str, str, str, str]


class AssociationStore:
    """Both directions of every association with their types, and the spellings clients used."""

    def __init__(self) -> None:
        self._types: dict[Direction, set[Spec]] = {}
        # (type, id, other type) -> other ids, in first-associated order (a dict used as an ordered set).
        self._index: dict[tuple[str, str, str], dict[str, None]] = {}
        self._sent: dict[AssociationKey, tuple[float, Direction]] = {}
        self._spellings: dict[Direction, list[AssociationKey]] = {}  # keys not spelled canonically

    def add(
        self,
        spelled: tuple[str, str],
        types: tuple[str, str],
        pairs: Iterable[tuple[str, str]],
        forward: Spec,
        backward: Spec,
        now: float,
    ) -> None:
        """Associate each (fromId, toId) of ``pairs`` with type ``forward`` (and ``backward`` the other way).

        ``spelled`` are the types as the path gave them, ``types`` their canonical names. Adding a type a
        pair already has changes nothing (an idempotent success).
        """
        from_raw, to_raw = spelled
        from_type, to_type = types
        canonical = spelled == types
        # The hot path of every benchmark: locals and no calls per pair (this loop was most of the time).
        held, index, sent, spellings = self._types, self._index, self._sent, self._spellings
        for from_id, to_id in pairs:
            direction = (from_type, from_id, to_type, to_id)
            specs = held.get(direction)
            if specs is None:
                held[direction] = {forward}
                index.setdefault((from_type, from_id, to_type), {})[to_id] = None
            else:
                specs.add(forward)
            reverse = (to_type, to_id, from_type, from_id)
            specs = held.get(reverse)
            if specs is None:
                held[reverse] = {backward}
                index.setdefault((to_type, to_id, from_type), {})[from_id] = None
            else:
                specs.add(backward)
            key = direction if canonical else (from_raw, from_id, to_raw, to_id)
            if key not in sent:
                sent[key] = (now, direction)
                if not canonical:  # a key spelled canonically is its direction: remove() finds it directly
                    spellings.setdefault(direction, []).append(key)

    def types(self, direction: Direction) -> set[Spec]:
        """The types of one direction (empty when the records are not associated)."""
        return set(self._types.get(direction, ()))

    def remove(self, direction: Direction) -> bool:
        """Remove the association both ways, every type; True if there was one."""
        from_type, from_id, to_type, to_id = direction
        if direction not in self._types:
            return False
        for one_way in (direction, (to_type, to_id, from_type, from_id)):
            self._types.pop(one_way, None)
            index = self._index.get(one_way[:3])
            if index is not None:
                index.pop(one_way[3], None)
                if not index:
                    del self._index[one_way[:3]]
            self._sent.pop(one_way, None)
            for key in self._spellings.pop(one_way, []):
                self._sent.pop(key, None)
        return True

    def remove_types(self, direction: Direction, forward: Iterable[Spec], backward: Iterable[Spec]) -> None:
        """Remove some types of an association (and their reverses); with none left, the association goes."""
        from_type, from_id, to_type, to_id = direction
        reverse = (to_type, to_id, from_type, from_id)
        for one_way, specs in ((direction, forward), (reverse, backward)):
            held = self._types.get(one_way)
            if held is not None:
                held.difference_update(specs)
        if not self._types.get(direction) or not self._types.get(reverse):
            self.remove(direction)

    def count(self, object_type: str, object_id: str, to_type: str) -> int:
        """How many records of ``to_type`` one record is associated with."""
        return len(self._index.get((object_type, object_id, to_type), ()))

    def of_record(self, object_type: str, object_id: str) -> list[tuple[Direction, set[Spec]]]:
        """Every direction from one record with its types (a scan of the index: for merges and deletions)."""
        found: list[tuple[Direction, set[Spec]]] = []
        for (from_type, from_id, to_type), others in self._index.items():
            if (from_type, from_id) == (object_type, object_id):
                found.extend(
                    ((from_type, from_id, to_type, to_id), set(self._types[(from_type, from_id, to_type, to_id)]))
                    for to_id in others
                )
        return found

    def drop_record(self, object_type: str, object_id: str) -> list[tuple[Direction, set[Spec]]]:
        """Remove every association of one record (both ways); returns what it held, from its side."""
        held = self.of_record(object_type, object_id)
        for direction, _ in held:
            self.remove(direction)
        return held

    def associated(self, object_type: str, object_id: str, to_type: str) -> list[tuple[str, set[Spec]]]:
        """The records of ``to_type`` associated with one record, in first-associated order, with their types."""
        others = self._index.get((object_type, object_id, to_type), {})
        return [(to_id, set(self._types[(object_type, object_id, to_type, to_id)])) for to_id in others]

    def listing(self, since: int, describe: Any) -> dict[str, Any]:
        """``GET /_sim/associations``: each spelling sent after the first ``since``, with its types.

        ``describe(direction, specs)`` turns a direction's types into their JSON (with label names).
        """
        listed = islice(self._sent.items(), since, None)
        return {
            "total": len(self._sent),
            "associations": [
                {
                    "fromObjectType": from_raw,
                    "fromObjectId": from_id,
                    "toObjectType": to_raw,
                    "toObjectId": to_id,
                    "received_at": at,
                    "labels": describe(direction, self._types.get(direction, set())),
                }
                for (from_raw, from_id, to_raw, to_id), (at, direction) in listed
            ],
        }
