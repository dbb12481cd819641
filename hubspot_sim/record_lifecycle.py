"""Records that merge and vanish (docs/reference/hubspot.md §9.2, §9.3): aliases of merged ids, archived ids.

A merge mints a new id; the old ids become aliases of it (reads answer the new record; association writes
follow ``merged_ids``); the associations of the old records move to the new one, and where the records
held a single-valued type (Primary) with different records, the primary record's is kept and the extras
dropped. A deletion archives the record: reads answer 404, association writes ``INVALID_OBJECT_IDS``, and
its associations are dropped. Not thread-safe: ``SimState`` calls it under its lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hubspot_sim.association_store import AssociationStore
from hubspot_sim.association_types import LabelRegistry
from hubspot_sim.association_writes import is_single_valued
from hubspot_sim.inputs import Side
from hubspot_sim.records import Record

FIRST_MINTED_ID = 100_000_000_001  # merged records' new ids: above any id a test is likely to seed


class RecordLifecycle:
    """Aliases (merged id -> new id) and archived records of each type."""

    def __init__(self) -> None:
        self._aliases: dict[Side, str] = {}
        self._archived: set[Side] = set()
        self._next_id = FIRST_MINTED_ID

    def __bool__(self) -> bool:
        return bool(self._aliases or self._archived)

    def resolve(self, side: Side) -> Side:
        """The side a (possibly merged-away) id stands for now: aliases followed to the end."""
        object_type, object_id = side
        seen = 0
        while (object_type, object_id) in self._aliases and seen < 1000:
            object_id = self._aliases[(object_type, object_id)]
            seen += 1
        return (object_type, object_id)

    def is_merged(self, side: Side) -> bool:
        """True for an id merged away."""
        return side in self._aliases

    def is_archived(self, side: Side) -> bool:
        """True for a deleted record."""
        return side in self._archived

    def restore(self, side: Side) -> None:
        """A record seeded again exists again."""
        self._archived.discard(side)

    def mint(self, object_type: str, taken: dict[tuple[str, str], Record]) -> str:
        """A new record id of ``object_type`` that no record or alias has."""
        while (object_type, str(self._next_id)) in taken or (object_type, str(self._next_id)) in self._aliases:
            self._next_id += 1
        minted = str(self._next_id)
        self._next_id += 1
        return minted

    def merge(
        self,
        object_type: str,
        old_ids: Sequence[str],
        new_id: str,
        store: AssociationStore,
        labels: LabelRegistry,
        custom_types: set[str],
        now: float,
    ) -> None:
        """Move the associations of ``old_ids`` (the primary first) to ``new_id`` and make the old ids aliases.

        A single-valued type the new record already holds with another record is not moved (the primary
        record's Primary wins). Associations among the merged records themselves are dropped.
        """
        merged = {(object_type, i) for i in old_ids}
        for old_id in old_ids:
            for (_, _, to_type, to_id), specs in store.drop_record(object_type, old_id):
                if (to_type, to_id) in merged:
                    continue
                for spec in sorted(specs):
                    if is_single_valued(object_type, to_type, spec) and any(
                        spec in held for _, held in store.associated(object_type, new_id, to_type)
                    ):
                        continue
                    back = labels.reverse_held(object_type, to_type, spec, custom_types)
                    pair = [(new_id, to_id)]
                    store.add((object_type, to_type), (object_type, to_type), pair, spec, back, now)
        for old_id in old_ids:
            self._aliases[(object_type, old_id)] = new_id

    def archive(self, side: Side, store: AssociationStore) -> int:
        """Archive a record and drop its associations; returns how many associations it had."""
        self._archived.add(side)
        return len(store.drop_record(*side))

    def as_json(self) -> dict[str, Any]:
        """``GET /_sim/lifecycle``: the aliases and archived ids."""
        return {
            "aliases": [{"objectType": t, "id": i, "newId": new} for (t, i), new in self._aliases.items()],
            "archived": [{"objectType": t, "id": i} for t, i in sorted(self._archived)],
        }
