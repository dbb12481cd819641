"""Association inputs as HubSpot's API takes them: object types in paths, record ids, batch bodies, types.

Each parser raises ValueError naming the bad field (``inputs[3].from.id``), which the API answers as 400
``VALIDATION_ERROR``.
"""

from __future__ import annotations

from typing import Any

from hubspot_sim import errors
from hubspot_sim.object_types import are_object_ids, canonical_type, is_object_id, label

JsonObject = dict[str, Any]
#: (canonical object type, record id): one side of an association.
Side = tuple[str, str]
MAX_BATCH_INPUTS = 2000  # HubSpot's cap on batch association create (docs/reference/hubspot.md §1.1)
MAX_BATCH_READ_INPUTS = 1000  # HubSpot's cap on batch association read since Feb 2025 (§1.1)
CATEGORIES = ("HUBSPOT_DEFINED", "INTEGRATOR_DEFINED", "USER_DEFINED", "WORK")


def object_type_of(raw: str, name: str) -> str:
    """The canonical type of ``raw``. Raises ValueError naming the path parameter ``name``."""
    canonical = canonical_type(raw)
    if canonical is None:
        raise ValueError(f"{name}: expected a HubSpot object type (e.g. deals, 0-3, 2-123), got {raw!r}")
    return canonical


def pair_types(from_raw: str, to_raw: str) -> tuple[str, str]:
    """The canonical (from, to) types of a path. Raises ValueError naming the bad one."""
    return object_type_of(from_raw, "fromObjectType"), object_type_of(to_raw, "toObjectType")


def batch_pairs(data: Any, max_inputs: int = MAX_BATCH_INPUTS) -> list[tuple[str, str]]:
    """Validate a ``BatchInputPublicDefaultAssociationMultiPost``. Raises ValueError naming the bad input."""
    inputs = data.get("inputs") if isinstance(data, dict) else None
    if not isinstance(inputs, list):
        raise ValueError('expected a body {"inputs": [{"from": {"id": "1"}, "to": {"id": "2"}}, ...]}')
    if not 1 <= len(inputs) <= max_inputs:
        raise ValueError(f"inputs: expected 1 to {max_inputs} inputs, got {len(inputs)}")
    # The fast path takes well-formed inputs with string ids, which is every input of a sane client; anything
    # else goes to the careful path, which accepts numeric ids and names the first bad input.
    try:
        from_ids = [item["from"]["id"] for item in inputs]
        to_ids = [item["to"]["id"] for item in inputs]
        if are_object_ids(from_ids) and are_object_ids(to_ids):
            return list(zip(from_ids, to_ids, strict=True))
    except (KeyError, TypeError):
        pass  # malformed somewhere: the careful path finds where
    return _careful_pairs(inputs)


def _careful_pairs(inputs: list[Any]) -> list[tuple[str, str]]:
    pairs = []
    for i, item in enumerate(inputs):
        ids = []
        for side in ("from", "to"):
            ref = item.get(side) if isinstance(item, dict) else None
            value = ref.get("id") if isinstance(ref, dict) else None
            # HubSpot's spec says string; a JSON number is accepted too, as lenient clients send them.
            text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""
            if not is_object_id(text):
                raise ValueError(f"inputs[{i}].{side}.id: expected 1-20 decimal digits, got {value!r}")
            ids.append(text)
        pairs.append((ids[0], ids[1]))
    return pairs


def invalid_answer(bad: dict[Side, int], sides: tuple[Side, ...]) -> tuple[int, JsonObject]:
    """HubSpot's answer for (type, id) sides, some invalid: the first invalid one named sets the status."""
    named = [(side, bad[side]) for side in sides if side in bad]
    status = named[0][1]
    chosen = [(label(object_type), object_id) for (object_type, object_id), s in named if s == status]
    return status, errors.invalid_ids_body(chosen) if status == 400 else errors.not_found_body(chosen)


def record_id(value: Any, where: str) -> str:
    """A record id given as a string (or, leniently, a JSON number). Raises ValueError naming ``where``."""
    text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if not is_object_id(text):
        raise ValueError(f"{where}: expected 1-20 decimal digits, got {value!r}")
    return text


def inputs_of(data: Any, max_inputs: int = MAX_BATCH_INPUTS) -> list[Any]:
    """The ``inputs`` list of a batch body, 1 to ``max_inputs`` long. Raises ValueError otherwise."""
    inputs = data.get("inputs") if isinstance(data, dict) else None
    if not isinstance(inputs, list):
        raise ValueError('expected a body {"inputs": [...]}')
    if not 1 <= len(inputs) <= max_inputs:
        raise ValueError(f"inputs: expected 1 to {max_inputs} inputs, got {len(inputs)}")
    return inputs


def specs_of(data: Any, where: str) -> list[tuple[str, int]]:
    """A non-empty list of ``AssociationSpec`` (category, type id). Raises ValueError naming the bad one."""
    if not isinstance(data, list) or not data:
        raise ValueError(f'{where}: expected [{{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}}]')
    specs = []
    for i, item in enumerate(data):
        category = item.get("associationCategory") if isinstance(item, dict) else None
        type_id = item.get("associationTypeId") if isinstance(item, dict) else None
        if category not in CATEGORIES:
            raise ValueError(f"{where}[{i}].associationCategory: expected one of {list(CATEGORIES)}, got {category!r}")
        if isinstance(type_id, bool) or not isinstance(type_id, int):
            raise ValueError(f"{where}[{i}].associationTypeId: expected an integer, got {type_id!r}")
        specs.append((str(category), type_id))
    return specs
