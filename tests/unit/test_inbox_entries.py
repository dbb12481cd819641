"""Inbox entries read back by an expander: each kind gives its events, anything else is refused by name."""

from __future__ import annotations

import json

import pytest

from hublink.domain.errors import InvalidInputError
from hublink.domain.events import parse_workflow
from hublink.intake.inbox import KIND_ASSOCIATIONS, KIND_EVENTS, KIND_HUBSPOT, InboxEntry


def entry(kind: str, body: bytes) -> InboxEntry:
    """An entry as XREADGROUP would give it."""
    return InboxEntry("1-0", kind, body, received_at=1764331200.0)


def test_a_hubspot_entry_is_the_batch_as_received() -> None:
    """The raw array is parsed again: same events, same dedup keys."""
    raw = json.dumps(
        [
            {
                "eventId": 1,
                "subscriptionId": 2,
                "portalId": 3,
                "occurredAt": 4,
                "subscriptionType": "deal.creation",
                "objectId": 5,
            }
        ]
    ).encode()
    [event] = entry(KIND_HUBSPOT, raw).events().events
    assert (event.source, event.object_id, event.dedup_key) == ("hubspot", "5", "hubspot:3:2:1:5:4")


def test_an_events_entry_gives_back_the_events_stored() -> None:
    """Workflow and form events travel as their records."""
    event = parse_workflow({"objectId": 9, "contact_id": "7"}, received_at=1.0)
    assert entry(KIND_EVENTS, json.dumps([event.as_record()]).encode()).events().events == [event]


@pytest.mark.parametrize(
    ("kind", "body", "says"),
    [
        ("from-the-future", b"[]", "unknown inbox entry kind"),
        (KIND_EVENTS, b"{", "not JSON"),
        (KIND_EVENTS, b'[{"no_source": 1}]', "malformed event"),
        (KIND_EVENTS, b'{"not": "a list"}', "must hold a JSON array"),
        (KIND_EVENTS, b"[5]", "malformed event"),
    ],
)
def test_an_entry_this_version_cannot_read_is_refused_by_name(kind: str, body: bytes, says: str) -> None:
    """Unreadable entries raise InvalidInputError (the expander sets them aside), never anything else."""
    with pytest.raises(InvalidInputError, match=says):
        entry(kind, body).events()


def test_an_associations_entry_in_the_full_list_form_is_refused() -> None:
    """Only the compact body is an associations entry: a list of full records is refused, not guessed at."""
    from hublink.domain.associations import AssociationRequest

    request = AssociationRequest.create(
        from_object_type="deals", from_object_id="1", to_object_type="contacts", to_object_id="2", received_at=3.0
    )
    body = json.dumps([["a" * 32, request.as_record()]]).encode()
    with pytest.raises(InvalidInputError, match="compact body"):
        entry(KIND_ASSOCIATIONS, body).associations()


def test_the_compact_associations_body_gives_back_every_request() -> None:
    """Shared fields said once, per-item ones kept: each request reads back equal, with its id."""
    from hublink.domain.associations import AssociationRequest
    from hublink.intake.inbox import associations_body

    items = [
        (
            f"{n:032x}",
            AssociationRequest.create(
                from_object_type="deals",
                from_object_id=str(100 + n),
                to_object_type="contacts" if n % 2 else "companies",
                to_object_id=str(200 + n),
                portal_id="62515",
                source="api",
                label="Primary" if n == 3 else None,
                received_at=3.0,
            ),
        )
        for n in range(5)
    ]
    body = associations_body(items)
    assert entry(KIND_ASSOCIATIONS, body).associations() == items
    assert len(body) < len(json.dumps([[i, r.as_record()] for i, r in items])) / 2
    assert entry(KIND_ASSOCIATIONS, associations_body([])).associations() == []


@pytest.mark.parametrize(
    "body",
    [b'{"a": 1}', b"[[1]]", b'[["id", {"from_object_type": "deals"}]]', b'{"v": 2, "c": {}, "a": [["id"]]}'],
)
def test_a_malformed_associations_entry_is_refused_by_name(body: bytes) -> None:
    """Anything but [id, record] pairs raises InvalidInputError."""
    with pytest.raises(InvalidInputError, match=r"associations entry|malformed association"):
        entry(KIND_ASSOCIATIONS, body).associations()
