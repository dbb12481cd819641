"""Call kinds: which HubSpot call a run of claimed work needs, and the one place each kind is sent.

A lane holds every action on one pair of object types (default links, labelled links, unlinks), in the
order they were accepted, so that a link and an unlink of the same records settle in that order. A claim
is cut into *runs*: consecutive items needing the same kind of call. Each run goes out as calls of one
kind only (``default``: ``batch/associate/default`` or the default PUT; ``create``: ``batch/create`` or the
labelled PUT; ``archive``: ``batch/archive``; ``labels_archive``: ``batch/labels/archive``), one run after
the other, so the order of a pair's actions is the order of its runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from hublink.delivery.hubspot import CallResult
from hublink.domain.associations import AssociationRequest, AssociationType, CallKind

Pair = tuple[str, str]


class LabelledClient(Protocol):
    """The HubSpot calls for labelled links and unlinks (``hublink.delivery.hubspot.HubSpotClient``)."""

    def associate_labelled(
        self,
        token: str,
        from_type: str,
        from_id: str,
        to_type: str,
        to_id: str,
        types: Sequence[AssociationType],
        *,
        base_url: str | None = None,
    ) -> CallResult:
        """The labelled single PUT."""
        ...

    def create_labelled_batch(
        self,
        token: str,
        from_type: str,
        to_type: str,
        inputs: Sequence[tuple[Pair, Sequence[AssociationType]]],
        *,
        base_url: str | None = None,
    ) -> CallResult:
        """``batch/create``."""
        ...

    def archive_batch(
        self, token: str, from_type: str, to_type: str, pairs: Sequence[Pair], *, base_url: str | None = None
    ) -> CallResult:
        """``batch/archive``."""
        ...

    def archive_labels_batch(
        self,
        token: str,
        from_type: str,
        to_type: str,
        inputs: Sequence[tuple[Pair, Sequence[AssociationType]]],
        *,
        base_url: str | None = None,
    ) -> CallResult:
        """``batch/labels/archive``."""
        ...


def runs(requests: Sequence[AssociationRequest]) -> list[tuple[CallKind, list[int]]]:
    """Cut ``requests`` (in claim order) into runs of one call kind: (kind, indexes), order kept."""
    cut: list[tuple[CallKind, list[int]]] = []
    for index, request in enumerate(requests):
        kind = request.call_kind
        if cut and cut[-1][0] == kind:
            cut[-1][1].append(index)
        else:
            cut.append((kind, [index]))
    return cut


def endpoint(kind: CallKind, size: int) -> str:
    """The endpoint label a call of ``kind`` with ``size`` distinct pairs is counted under."""
    if kind == "default":
        return "associate_default" if size == 1 else "batch_associate_default"
    if kind == "create":
        return "associate_labelled" if size == 1 else "batch_create"
    if kind == "replace":
        return "reconcile"
    return "batch_archive" if kind == "archive" else "batch_labels_archive"


def send(
    client: LabelledClient,
    kind: CallKind,
    token: str,
    from_type: str,
    to_type: str,
    pairs: Sequence[Pair],
    types: Mapping[Pair, Sequence[AssociationType]],
    *,
    base_url: str | None,
) -> CallResult:
    """One call of a non-default ``kind`` for ``pairs`` (distinct); raises DeliveryError for the whole call."""
    if kind == "create":
        if len(pairs) == 1:
            (from_id, to_id) = pairs[0]
            return client.associate_labelled(
                token, from_type, from_id, to_type, to_id, types[pairs[0]], base_url=base_url
            )
        return client.create_labelled_batch(
            token, from_type, to_type, [(p, types[p]) for p in pairs], base_url=base_url
        )
    if kind == "archive":
        return client.archive_batch(token, from_type, to_type, pairs, base_url=base_url)
    if kind == "labels_archive":
        return client.archive_labels_batch(token, from_type, to_type, [(p, types[p]) for p in pairs], base_url=base_url)
    raise ValueError(f"kind {kind!r} is sent by the drain's default path")
