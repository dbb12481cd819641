"""Reconcile: a rule's ``mode: replace``, making a record's associations exactly the ones the rule names.

For each ``from`` record of a run of replace work, and each label (or the unlabelled association when
none is given), the rule names a set of records to keep. HubLink reads what exists (``batch/read``),
removes the others (only that label, through ``batch/labels/archive``, when a label is given, so a former
primary company stays associated without the Primary label; the whole association through
``batch/archive`` otherwise), creates the missing ones, and reports what it removed. Replace work on the
same record from an earlier event in the same run is superseded by the latest (a reconcile sets a state:
only the newest matters). Every step is idempotent: when a call fails, the whole reconcile is simply run
again (read again, then the same removals and creations).

Pure apart from the two callables it is handed (the drain's calls, which take their rate-limit tokens).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from hublink.delivery.hubspot import CallResult
from hublink.domain.associations import AssociationRequest, AssociationType, CallKind
from hublink.domain.errors import DeliveryError, HubSpotErrorDetail

Pair = tuple[str, str]
#: HubSpot's cap on ``batch/read`` inputs.
MAX_READ_INPUTS = 1000
#: HubSpot's cap on association batch creates and removals.
MAX_WRITE_INPUTS = 2000
Existing = dict[str, list[tuple[str, tuple[AssociationType, ...]]]]
#: One call of a kind for distinct pairs (with each pair's types): its answer (``error`` set for the whole call).
Call = Callable[[CallKind, Sequence[Pair], Mapping[Pair, Sequence[AssociationType]]], CallResult]
#: ``batch/read`` of the from ids: each one's associated records with their types, or the call's error.
Read = Callable[[Sequence[str]], Existing | DeliveryError]


class AssociationReader(Protocol):
    """``batch/read`` (``hublink.delivery.hubspot.HubSpotClient.read_associations_batch``)."""

    def read_associations_batch(
        self, token: str, from_type: str, to_type: str, from_ids: Sequence[str], *, base_url: str | None = None
    ) -> Existing:
        """Each from id's associated records with their types."""
        ...


@dataclass(slots=True)
class Reconciled:
    """Each item's outcome (by index: None done, or its error) and what was removed, per from id."""

    errors: dict[int, DeliveryError | None] = field(default_factory=dict)
    removed: dict[str, list[str]] = field(default_factory=dict)


def _groups(
    requests: Sequence[AssociationRequest], types: Mapping[int, tuple[AssociationType, ...]]
) -> tuple[dict[tuple[str, tuple[AssociationType, ...]], list[int]], list[int]]:
    """The latest event's items per (from id, types), and the superseded items (done: a newer state wins)."""
    latest: dict[tuple[str, tuple[AssociationType, ...]], tuple[object, list[int]]] = {}
    superseded: list[int] = []
    for index, request in enumerate(requests):
        key = (request.from_object_id, types.get(index, ()))
        event = (request.source_event_id, request.received_at, request.occurred_at)
        held = latest.get(key)
        if held is None or held[0] != event:
            if held is not None:
                superseded += held[1]
            latest[key] = (event, [index])
        else:
            held[1].append(index)
    return {key: indexes for key, (_, indexes) in latest.items()}, superseded


def reconcile(
    requests: Sequence[AssociationRequest],
    types: Mapping[int, tuple[AssociationType, ...]],
    read: Read,
    call: Call,
) -> Reconciled:
    """Reconcile a run of replace work (one pair of object types); see the module's docstring."""
    groups, superseded = _groups(requests, types)
    out = Reconciled(errors=dict.fromkeys(superseded))
    from_ids = sorted({from_id for from_id, _ in groups})
    existing: Existing = {}
    for start in range(0, len(from_ids), MAX_READ_INPUTS):
        found = read(from_ids[start : start + MAX_READ_INPUTS])
        if isinstance(found, DeliveryError):
            out.errors.update((i, found) for indexes in groups.values() for i in indexes)
            return out
        existing.update(found)
    removals: dict[tuple[AssociationType, ...], dict[Pair, tuple[str, tuple[AssociationType, ...]]]] = {}
    creations: dict[tuple[AssociationType, ...], list[Pair]] = {}
    for (from_id, wanted), indexes in groups.items():
        keep = {requests[i].to_object_id for i in indexes}
        present = {
            to_id
            for to_id, have in existing.get(from_id, [])
            if not wanted or {t for _, t in have} & {t for _, t in wanted}
        }
        for to_id in sorted(present - keep):
            removals.setdefault(wanted, {})[(from_id, to_id)] = (from_id, wanted)
        creations.setdefault(wanted, []).extend((from_id, to_id) for to_id in sorted(keep - present))
    failed_groups: dict[tuple[str, tuple[AssociationType, ...]], DeliveryError] = {}
    for wanted, owners in removals.items():
        kind: CallKind = "labels_archive" if wanted else "archive"
        pairs = list(owners)
        for start in range(0, len(pairs), MAX_WRITE_INPUTS):  # a record may have many associations to remove
            chunk = pairs[start : start + MAX_WRITE_INPUTS]
            answer = call(kind, chunk, dict.fromkeys(chunk, wanted))
            for pair in chunk:
                error = answer.error or answer.failed.get(pair)
                if error is not None:
                    failed_groups[owners[pair]] = error
                else:
                    out.removed.setdefault(pair[0], []).append(pair[1])
    created: dict[Pair, DeliveryError | None] = {}
    for wanted, pairs in creations.items():
        if not pairs:
            continue
        kind = "create" if wanted else "default"
        answer = call(kind, pairs, dict.fromkeys(pairs, wanted))
        for pair in pairs:
            if answer.error is not None:
                created[pair] = answer.error
            elif pair in answer.linked:
                created[pair] = None
            else:
                missing = HubSpotErrorDetail(message=f"no outcome for pair {pair[0]} -> {pair[1]}")
                created[pair] = answer.failed.get(pair) or DeliveryError(missing)
    for key, indexes in groups.items():
        for i in indexes:
            pair = (key[0], requests[i].to_object_id)
            out.errors[i] = failed_groups.get(key) or created.get(pair)
    return out
