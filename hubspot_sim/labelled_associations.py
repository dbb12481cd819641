"""The rest of HubSpot's association surface (2026-03 spec): labelled create, read, remove, and label definitions.

Endpoints, each answering (Answer, association inputs received) for ``HubSpotApi``:
- ``associate_labels``: ``PUT /crm/objects/2026-03/{type}/{id}/associations/{toType}/{toId}`` with a body of
  ``[{"associationCategory", "associationTypeId"}]``: 201 ``LabelsBetweenObjectPair``;
- ``delete_association``: ``DELETE`` on the same path: 204, every type between the two records gone;
- ``read_associations``: ``GET /crm/objects/2026-03/{type}/{id}/associations/{toType}?limit&after``;
- ``batch_create`` (200 as HubSpot answers since 2025-08, or 201 by ``batch_create_status``; 207 with
  per-input errors: invalid ids, association limits), ``batch_archive``, ``batch_labels_archive`` (200
  ``BatchResponse``) and ``batch_read`` (up to 1,000 inputs; 200, or 207 naming ids without associations)
  under ``/crm/associations/2026-03/{from}/{to}/batch/``;
- ``association_labels``: v4 ``GET /crm/v4/associations/{from}/{to}/labels``, HubSpot's types then the
  user-defined ones (``POST /_sim/labels``); ``association_labels_paged``: the same on the 2026-03 path
  ``GET /crm/associations/2026-03/{from}/{to}/labels?limit&after``, in pages.
Writes go through ``SimState.write``: merged ids resolved (``merged_ids``), limits, single-valued types.
A type id must be one of the pair's (HubSpot's or user-defined), else 400 ``VALIDATION_ERROR``.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote

from hubspot_sim import errors
from hubspot_sim.inputs import (
    MAX_BATCH_READ_INPUTS,
    JsonObject,
    Side,
    inputs_of,
    invalid_answer,
    pair_types,
    record_id,
    specs_of,
)
from hubspot_sim.messages import Answer, Request, iso_utc
from hubspot_sim.object_types import NAME_TO_TYPE_ID, label
from hubspot_sim.state import SimState

Endpoint = Callable[[Request, tuple[str, ...]], tuple[Answer, int]]
DEFAULT_READ_LIMIT = 500  # HubSpot's page size for an object's associations
MAX_READ_LIMIT = 500
DEFAULT_LABELS_LIMIT = 100  # [I]: the 2026-03 labels page size is not stated


def _paging(request: Request, default_limit: int, max_limit: int) -> tuple[int, int]:
    """``limit`` (1 to ``max_limit``) and ``after`` (an offset cursor) of a paged read. Raises ValueError."""
    limit_text = (request.query_values("limit") or [str(default_limit)])[0]
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= max_limit:
        raise ValueError(f"limit: expected an integer from 1 to {max_limit}, got {limit_text!r}")
    after_text = (request.query_values("after") or ["0"])[0]
    if not after_text.isdigit():
        raise ValueError(f"after: expected a paging cursor from an earlier answer, got {after_text!r}")
    return int(limit_text), int(after_text)


def type_id_of(object_type: str) -> str:
    """The object type id of a canonical type (``deals`` → ``0-3``; custom ids as they are)."""
    return NAME_TO_TYPE_ID.get(object_type, object_type)


class LabelledAssociations:
    """The labelled association endpoints over a ``SimState``."""

    def __init__(self, state: SimState) -> None:
        self.state = state

    def endpoints(self) -> dict[str, Endpoint]:
        """The endpoints by name, for ``HubSpotApi``'s routes."""
        return {
            "associate_labels": self._associate_labels,
            "delete_association": self._delete,
            "read_associations": self._read,
            "batch_create": self._batch_create,
            "batch_archive": self._batch_archive,
            "batch_labels_archive": self._batch_labels_archive,
            "batch_read": self._batch_read,
            "association_labels": self._labels,
            "association_labels_paged": self._labels_paged,
        }

    # --- helpers ---

    def _pair(self, from_type: str, from_id: str, to_type: str, to_id: str) -> JsonObject:
        """A ``LabelsBetweenObjectPair`` with the labels now held from one record to the other."""
        return {
            "fromObjectTypeId": type_id_of(from_type),
            "fromObjectId": from_id,
            "toObjectTypeId": type_id_of(to_type),
            "toObjectId": to_id,
            "labels": self.state.labels_between((from_type, from_id, to_type, to_id)),
        }

    def _reverses(self, from_type: str, to_type: str, specs: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """The reverse of each type. Raises ValueError naming a type the pair does not have."""
        return [self.state.reverse_spec(from_type, to_type, spec) for spec in specs]

    def _with_default(self, from_type: str, to_type: str, specs: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """``specs`` plus the pair's unlabelled type: HubSpot applies it along with any label."""
        default = self.state.default_type_id(from_type, to_type)
        if default is None or ("HUBSPOT_DEFINED", default) in specs:
            return specs
        return [*specs, ("HUBSPOT_DEFINED", default)]

    def _times(self, started: float) -> JsonObject:
        return {"startedAt": iso_utc(started), "completedAt": iso_utc(self.state.now())}

    # --- endpoints ---

    def _associate_labels(self, request: Request, groups: tuple[str, ...]) -> tuple[Answer, int]:
        from_raw, from_id, to_raw, to_id = (unquote(g) for g in groups)
        from_type, to_type = pair_types(from_raw, to_raw)
        from_id, to_id = record_id(from_id, "objectId"), record_id(to_id, "toObjectId")
        (from_id,), (to_id,) = self.state.resolve_ids(from_type, [from_id]), self.state.resolve_ids(to_type, [to_id])
        specs = self._with_default(from_type, to_type, specs_of(request.json(), "body"))
        backwards = self._reverses(from_type, to_type, specs)
        sides: tuple[Side, ...] = ((from_type, from_id), (to_type, to_id))
        bad = self.state.check_sides(sides)
        if bad:
            status, body = invalid_answer(bad, sides)
            return Answer(status, body), 1
        both = list(zip(specs, backwards, strict=True))
        inputs = [(from_id, to_id, both)]
        (refusal,) = self.state.write((from_raw, to_raw), (from_type, to_type), inputs, request.caller)
        if refusal is not None:
            return Answer(400, refusal), 1
        return Answer(201, self._pair(from_type, from_id, to_type, to_id)), 1

    def _delete(self, request: Request, groups: tuple[str, ...]) -> tuple[Answer, int]:
        from_raw, from_id, to_raw, to_id = (unquote(g) for g in groups)
        from_type, to_type = pair_types(from_raw, to_raw)
        pair = (record_id(from_id, "objectId"), record_id(to_id, "toObjectId"))
        self.state.unlink(from_type, to_type, [pair], request.caller)
        return Answer(204, raw=b""), 1

    def _read(self, request: Request, groups: tuple[str, ...]) -> tuple[Answer, int]:
        from_raw, from_id, to_raw = (unquote(g) for g in groups)
        from_type, to_type = pair_types(from_raw, to_raw)
        from_id = record_id(from_id, "objectId")
        limit, after = _paging(request, DEFAULT_READ_LIMIT, MAX_READ_LIMIT)
        found = self.state.associated(from_type, from_id, to_type)
        body: JsonObject = {"results": found[after : after + limit]}
        if after + limit < len(found):
            body["paging"] = {"next": {"after": str(after + limit)}}
        return Answer(200, body), 0

    def _multi_post(self, request: Request) -> list[tuple[str, str, list[tuple[str, int]]]]:
        """Validate a ``BatchInputPublicAssociationMultiPost``: (fromId, toId, types) per input."""
        parsed = []
        for i, item in enumerate(inputs_of(request.json())):
            if not isinstance(item, dict):
                raise ValueError(f"inputs[{i}]: expected an object, got {item!r}")
            from_ref, to_ref = item.get("from"), item.get("to")
            from_id = record_id(from_ref.get("id") if isinstance(from_ref, dict) else None, f"inputs[{i}].from.id")
            to_id = record_id(to_ref.get("id") if isinstance(to_ref, dict) else None, f"inputs[{i}].to.id")
            parsed.append((from_id, to_id, specs_of(item.get("types"), f"inputs[{i}].types")))
        return parsed

    def _batch_create(self, request: Request, groups: tuple[str, ...]) -> tuple[Answer, int]:
        from_raw, to_raw = (unquote(g) for g in groups)
        from_type, to_type = pair_types(from_raw, to_raw)
        parsed = self._multi_post(request)
        from_ids = self.state.resolve_ids(from_type, [f for f, _, _ in parsed])
        to_ids = self.state.resolve_ids(to_type, [t for _, t, _ in parsed])
        inputs = [
            (f, t, self._with_default(from_type, to_type, specs))
            for f, t, (_, _, specs) in zip(from_ids, to_ids, parsed, strict=True)
        ]
        started = self.state.now()
        backwards = [self._reverses(from_type, to_type, specs) for _, _, specs in inputs]
        bad = self.state.check_sides(s for f, t, _ in inputs for s in ((from_type, f), (to_type, t)))
        results: list[JsonObject] = []
        problems: list[JsonObject] = []
        for (from_id, to_id, specs), reverses in zip(inputs, backwards, strict=True):
            sides: tuple[Side, ...] = ((from_type, from_id), (to_type, to_id))
            if any(side in bad for side in sides):
                problems.append(errors.batch_error(*invalid_answer(bad, sides)))
                continue
            both = list(zip(specs, reverses, strict=True))
            (refusal,) = self.state.write(
                (from_raw, to_raw), (from_type, to_type), [(from_id, to_id, both)], request.caller
            )
            if refusal is not None:
                problems.append(errors.batch_error(400, refusal))
                continue
            # Both directions, as HubSpot's batch answers list them (docs/reference/hubspot.md §8).
            results.append(self._pair(from_type, from_id, to_type, to_id))
            results.append(self._pair(to_type, to_id, from_type, from_id))
        body: JsonObject = {"status": "COMPLETE", "results": results, **self._times(started)}
        if problems:
            body |= {"errors": problems, "numErrors": len(problems)}
            return Answer(207, body), len(inputs)
        # 200 since 2025-08, 201 before (docs/reference/hubspot.md §9.7): batch_create_status chooses.
        return Answer(self.state.config.batch_create_status, body), len(inputs)

    def _batch_archive(self, request: Request, groups: tuple[str, ...]) -> tuple[Answer, int]:
        from_type, to_type = pair_types(*(unquote(g) for g in groups))
        pairs = []
        for i, item in enumerate(inputs_of(request.json())):
            from_ref = item.get("from") if isinstance(item, dict) else None
            from_id = record_id(from_ref.get("id") if isinstance(from_ref, dict) else None, f"inputs[{i}].from.id")
            targets = item.get("to") if isinstance(item, dict) else None
            if not isinstance(targets, list) or not targets:
                raise ValueError(f'inputs[{i}].to: expected a list of {{"id": "..."}}, got {targets!r}')
            for j, target in enumerate(targets):
                to_id = record_id(target.get("id") if isinstance(target, dict) else None, f"inputs[{i}].to[{j}].id")
                pairs.append((from_id, to_id))
        started = self.state.now()
        self.state.unlink(from_type, to_type, pairs, request.caller)
        return Answer(200, {"status": "COMPLETE", "results": [], **self._times(started)}), len(pairs)

    def _batch_labels_archive(self, request: Request, groups: tuple[str, ...]) -> tuple[Answer, int]:
        from_type, to_type = pair_types(*(unquote(g) for g in groups))
        inputs = self._multi_post(request)
        for _, _, specs in inputs:
            self._reverses(from_type, to_type, specs)  # every type must be the pair's before anything changes
        started = self.state.now()
        for from_id, to_id, specs in inputs:
            self.state.unlink_types(from_type, to_type, [(from_id, to_id)], specs, request.caller)
        return Answer(200, {"status": "COMPLETE", "results": [], **self._times(started)}), len(inputs)

    def _batch_read(self, request: Request, groups: tuple[str, ...]) -> tuple[Answer, int]:
        from_type, to_type = pair_types(*(unquote(g) for g in groups))
        ids = []
        for i, item in enumerate(inputs_of(request.json(), MAX_BATCH_READ_INPUTS)):
            ids.append(record_id(item.get("id") if isinstance(item, dict) else None, f"inputs[{i}].id"))
        started = self.state.now()
        results: list[JsonObject] = []
        problems: list[JsonObject] = []
        for from_id in dict.fromkeys(ids):
            found = self.state.associated(from_type, from_id, to_type)
            if found:
                results.append({"from": {"id": from_id}, "to": found})
                continue
            message = f"No {label(to_type)} is associated with {label(from_type)} {from_id}."
            body = errors.error_body(404, message=message, context={"fromObjectId": [from_id]})
            problems.append(errors.batch_error(404, body))
        answer: JsonObject = {"status": "COMPLETE", "results": results, **self._times(started)}
        if problems:
            answer |= {"errors": problems, "numErrors": len(problems)}
            return Answer(207, answer), 0
        return Answer(200, answer), 0

    def _labels(self, request: Request, groups: tuple[str, ...]) -> tuple[Answer, int]:
        from_type, to_type = pair_types(*(unquote(g) for g in groups))
        return Answer(200, {"results": self.state.label_definitions(from_type, to_type)}), 0

    def _labels_paged(self, request: Request, groups: tuple[str, ...]) -> tuple[Answer, int]:
        """The 2026-03 label definitions (docs/reference/hubspot.md §9.7): the v4 list, in pages."""
        from_type, to_type = pair_types(*(unquote(g) for g in groups))
        limit, after = _paging(request, DEFAULT_LABELS_LIMIT, MAX_READ_LIMIT)
        found = self.state.label_definitions(from_type, to_type)
        body: JsonObject = {"results": found[after : after + limit]}
        if after + limit < len(found):
            body["paging"] = {"next": {"after": str(after + limit)}}
        return Answer(200, body), 0
