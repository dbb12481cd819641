"""Association writes as HubSpot applies them: limits, single-valued types, and the changes they fire.

For each input (a pair and its types, both directions), in order:
1. association limits (``association_limits.py``): an input that would take either record past a limit is
   refused on its own, with ``errors.association_limit_body``; the others go on;
2. single-valued types (one Primary company, one parent company; docs/reference/hubspot.md §9.4): writing
   one moves it from the record that held it (that record stays associated, unlabelled);
3. the types are added; each type new to the pair fires an ``associationChange`` for both sides, with
   ``changeSource`` ``API`` and the writing app's id as ``sourceId`` (§9.5); a displaced type fires its
   removal (``changed`` also serves the removals of ``SimState.unlink``).
Not thread-safe: ``SimState`` calls it under its lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hubspot_sim import errors
from hubspot_sim.association_limits import AssociationLimits
from hubspot_sim.association_store import AssociationStore, Direction
from hubspot_sim.association_types import PRIMARY_TYPE_IDS, SINGLE_VALUED, LabelRegistry, Spec
from hubspot_sim.changes import Change, association_fields
from hubspot_sim.object_types import label

#: One input: (fromId, toId, [(forward type, backward type), ...]).
WriteInput = tuple[str, str, Sequence[tuple[Spec, Spec]]]


@dataclass(frozen=True, slots=True)
class Writer:
    """Who writes: the portal the changes belong to and the app named as their source."""

    portal_id: int
    app_id: str | None = None


def is_single_valued(from_type: str, to_type: str, spec: Spec) -> bool:
    """True for a type a record holds with one record at most (Primary company, parent company)."""
    return spec[0] == "HUBSPOT_DEFINED" and (from_type, to_type, spec[1]) in SINGLE_VALUED


def _is_primary(from_type: str, to_type: str, spec: Spec) -> bool:
    primary = PRIMARY_TYPE_IDS.get((from_type, to_type))
    return spec[0] == "HUBSPOT_DEFINED" and primary is not None and primary[0] == spec[1]


def changed(
    direction: Direction, forward: Spec, backward: Spec, now: float, writer: Writer, *, removed: bool
) -> list[Change]:
    """An association type added or removed through the API, seen from both sides (two changes)."""
    from_type, from_id, to_type, to_id = direction
    reverse = (to_type, to_id, from_type, from_id)
    found = []
    for one_way, spec in ((direction, forward), (reverse, backward)):
        primary = _is_primary(one_way[0], one_way[2], spec)
        fields = association_fields(one_way, spec, removed=removed, primary=primary)
        found.append(
            Change(
                "associationChange",
                one_way[0],
                one_way[1],
                writer.portal_id,
                now,
                "API",
                writer.app_id,
                fields,
                one_way[2],
            )
        )
    return found


class AssociationWriter:
    """Applies writes to an ``AssociationStore`` (see the module docstring)."""

    def __init__(
        self,
        store: AssociationStore,
        labels: LabelRegistry,
        custom_types: set[str],
        limits: AssociationLimits,
    ) -> None:
        self._store = store
        self._labels = labels
        self._custom = custom_types
        self._limits = limits

    def write(
        self,
        spelled: tuple[str, str],
        types: tuple[str, str],
        inputs: Sequence[WriteInput],
        now: float,
        writer: Writer | None,
    ) -> tuple[list[dict[str, Any] | None], list[Change]]:
        """Apply ``inputs``: per input None (written) or the refusal body; and the changes fired.

        ``writer`` None: nobody listens for changes, so none are made.
        """
        from_type, to_type = types
        limited = bool(self._limits) and (
            self._limits.applies(from_type, to_type) or self._limits.applies(to_type, from_type)
        )
        outcomes: list[dict[str, Any] | None] = []
        changes: list[Change] = []
        if writer is None and not limited and inputs:
            shared = inputs[0][2]
            if all(specs is shared for _, _, specs in inputs) and not any(
                is_single_valued(from_type, to_type, f) or is_single_valued(to_type, from_type, b) for f, b in shared
            ):
                # The benchmarks' hot path: one type for a whole batch and nothing to check, so one bulk add.
                pairs = [(f, t) for f, t, _ in inputs]
                for forward, backward in shared:
                    self._store.add(spelled, types, pairs, forward, backward, now)
                return [None] * len(inputs), changes
        for from_id, to_id, specs in inputs:
            direction = (from_type, from_id, to_type, to_id)
            refusal = self._over_limit(direction, specs) if limited else None
            outcomes.append(refusal)
            if refusal is not None:
                continue
            held = self._store.types(direction) if writer is not None else set()
            for forward, backward in specs:
                self._displace(direction, forward, backward, now, writer, changes)
                self._store.add(spelled, types, [(from_id, to_id)], forward, backward, now)
                if writer is not None and forward not in held:
                    changes.extend(changed(direction, forward, backward, now, writer, removed=False))
        return outcomes, changes

    def _displace(
        self, direction: Direction, forward: Spec, backward: Spec, now: float, writer: Writer | None, out: list[Change]
    ) -> None:
        """Move a single-valued type to this pair from the record that held it, on either side."""
        from_type, from_id, to_type, to_id = direction
        for (one_type, one_id, other_type, keep), spec, back in (
            ((from_type, from_id, to_type, to_id), forward, backward),
            ((to_type, to_id, from_type, from_id), backward, forward),
        ):
            if not is_single_valued(one_type, other_type, spec):
                continue
            for other_id, specs in self._store.associated(one_type, one_id, other_type):
                if other_id != keep and spec in specs:
                    moved_from = (one_type, one_id, other_type, other_id)
                    self._store.remove_types(moved_from, [spec], [back])
                    if writer is not None:
                        out.extend(changed(moved_from, spec, back, now, writer, removed=True))

    def _over_limit(self, direction: Direction, specs: Sequence[tuple[Spec, Spec]]) -> dict[str, Any] | None:
        """The refusal body if this input takes either record past a limit, else None."""
        from_type, from_id, to_type, to_id = direction
        reverse = (to_type, to_id, from_type, from_id)
        for one_way, one_specs in ((direction, [f for f, _ in specs]), (reverse, [b for _, b in specs])):
            one_type, one_id, other_type, other_id = one_way
            held = self._store.types(one_way)
            most = self._limits.pair_limit(one_type, other_type)
            if most is not None and not held and self._store.count(one_type, one_id, other_type) >= most:
                return errors.association_limit_body(label(one_type), label(other_type), None, most)
            for name, most in self._limits.label_limits(one_type, other_type).items():
                for spec in one_specs:
                    if spec in held or is_single_valued(one_type, other_type, spec):
                        continue
                    found = self._labels.find(one_type, other_type, spec, self._custom)
                    if found is None or found.label != name:
                        continue
                    holding = sum(
                        1
                        for other, types in self._store.associated(one_type, one_id, other_type)
                        if other != other_id and spec in types
                    )
                    if holding >= most:
                        return errors.association_limit_body(label(one_type), label(other_type), name, most)
        return None
