"""The direct API's label check: each item's ``label`` resolved to association types from the workers' cache.

The web never calls HubSpot: it reads the label definitions the workers keep in Redis
(:class:`hublink.delivery.labels.LabelCache`, filled by :class:`~hublink.delivery.labels.LabelCatalog`).

- Cached, and the name is defined: the item carries the resolved types, so the worker sends it as is.
- Cached, and the name is not defined: a 422 on ``/associations/<i>/label`` naming the labels that exist.
- Not cached (no worker has read that portal's pair of object types yet, or the entry expired): the item
  is accepted with its label unresolved, and the worker resolves it before sending. A name HubSpot does
  not define then becomes a dead letter (category ``UNKNOWN_LABEL``) that names the known labels, and the
  worker's read fills the cache, so the next request for that pair is checked here. Refusing instead
  (a 503) would refuse every first request for a pair for ever, since nothing else fills the cache.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

from hublink.delivery.labels import UNKNOWN_LABEL_CATEGORY, LabelDefinitions, unknown_label_message
from hublink.domain.associations import AssociationRequest
from hublink.domain.errors import FieldProblem, InvalidInputError


class CachedLabels(Protocol):
    """Reads cached label definitions (:class:`hublink.delivery.labels.LabelCache`)."""

    def definitions(self, portal: str | None, from_type: str, to_type: str) -> LabelDefinitions | None:
        """The pair's definitions, None when they are not cached."""
        ...


def resolve_labels(cache: CachedLabels, requests: Sequence[AssociationRequest]) -> list[AssociationRequest]:
    """``requests`` with each label the cache knows resolved to its types (the others left to the worker).

    Raises InvalidInputError (422) naming every label the cache shows undefined, and the defined ones;
    StoreUnavailableError without Redis.
    """
    resolved: list[AssociationRequest] = []
    problems: list[FieldProblem] = []
    for index, request in enumerate(requests):
        if request.label is None or request.types:
            resolved.append(request)
            continue
        found = cache.definitions(request.portal_id, request.from_object_type, request.to_object_type)
        if found is None:
            resolved.append(request)
            continue
        types = found.types_for(request.label)
        if types is None:
            problems.append(
                FieldProblem(
                    f"/associations/{index}/label",
                    unknown_label_message(request.label, request.from_object_type, request.to_object_type, found.known),
                )
            )
            continue
        resolved.append(dataclasses.replace(request, types=types))
    if problems:
        raise InvalidInputError(f"{len(problems)} unknown label(s) ({UNKNOWN_LABEL_CATEGORY})", problems)
    return resolved
