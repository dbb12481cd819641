"""What counts as naming a contact, and what an erasure request must say (pure: no Redis)."""

from __future__ import annotations

import base64
import json
import zlib

import pytest

from hublink.domain.events import CrmEvent
from hublink.domain.record_fates import RecordFate, privacy_deletions
from hublink.intake.history import encode_record
from hublink.intake.record_fates import without_erased
from hublink.ops.privacy import (
    Subject,
    emails_in,
    event_names,
    may_name,
    parse_request,
    record_body,
    redacted,
)

ADA = "98765432101"
EMAIL = "ada@analytical.example"


def test_an_id_counts_only_as_an_id_field_s_whole_value() -> None:
    """objectId, vid, ids lists and ``contacts/<id>`` name the contact; a count or a longer number does not."""
    subject = Subject({ADA}, set())
    assert subject.mentioned_in({"objectId": int(ADA)})
    assert subject.mentioned_in({"vid": ADA})
    assert subject.mentioned_in({"answer": {"ids": [ADA]}})
    assert subject.mentioned_in({"message": f"contacts/{ADA} refused"})
    assert subject.mentioned_in([ADA])  # a lookup cache's value: a bare list of ids
    assert not subject.mentioned_in({"attempts": int(ADA)})
    assert not subject.mentioned_in({"objectId": int(ADA + "0")})
    assert not subject.mentioned_in({"dealname": ADA})


def test_an_email_counts_anywhere_whatever_its_case() -> None:
    """Inside a longer text too."""
    subject = Subject(set(), {EMAIL})
    assert subject.mentioned_in({"fields": [{"name": "email", "value": "ADA@Analytical.Example"}]})
    assert subject.mentioned_in({"note": f"from <{EMAIL}> today"})
    assert not subject.mentioned_in({"email": "bob@engines.example"})


def test_a_journal_body_kept_in_base64_is_read() -> None:
    """A set-aside journal entry holds its file in base64: the contact is found inside it."""
    raw = base64.b64encode(f'[{{"objectId": {ADA}}}]'.encode()).decode()
    assert Subject({ADA}, set()).mentioned_in_text(f'{{"source": "journal", "body": {{"base64": "{raw}"}}}}')


def test_emails_are_learned_from_email_fields_form_fields_and_property_changes() -> None:
    """The three shapes HubSpot and forms give a contact's email in; other fields are not taken for it."""
    payload = {
        "email": "A@x.example",
        "fields": [{"name": "email", "value": "b@x.example"}, {"name": "owner", "value": "o@x.example"}],
        "change": {"propertyName": "email", "propertyValue": "c@x.example"},
        "owner_email": "o@x.example",
    }
    assert emails_in(payload) == {"a@x.example", "b@x.example", "c@x.example"}


def test_a_history_event_names_the_contact_by_object_association_or_payload() -> None:
    """Its own object (contacts, or a typeless workflow's), an association it produced, an email in it."""
    subject = Subject({ADA}, {EMAIL})
    assert event_names(subject, {"ot": "contacts", "oid": ADA})
    assert event_names(subject, {"ot": "0-1", "oid": ADA})
    assert event_names(subject, {"oid": ADA, "src": "workflow"})
    assert not event_names(subject, {"ot": "deals", "oid": ADA})
    assert event_names(subject, {"ot": "deals", "oid": "5", "a": [["f" * 32, "deals/5", f"contacts/{ADA}"]]})
    assert event_names(subject, {"src": "forms:demo", "pl": {"email": EMAIL.upper()}})
    assert event_names(subject, {"ot": "deals", "oid": "5", "pl": {"contact_id": ADA}})
    assert not event_names(subject, {"ot": "deals", "oid": "5", "pl": {"amount": ADA}})
    assert not event_names(subject, {**redacted({"i": 0, "o": "accepted", "oid": ADA, "ot": "contacts"})})


def test_a_redacted_event_keeps_where_and_what_became_of_it_only() -> None:
    """Position, outcome, source, portal and subscription type; nothing else."""
    event = {"i": 3, "o": "accepted", "src": "hubspot", "p": "62515", "st": "contact.creation", "oid": ADA, "pl": {}}
    assert redacted(event) == {
        "i": 3,
        "o": "accepted",
        "src": "hubspot",
        "p": "62515",
        "st": "contact.creation",
        "x": 1,
    }


def test_privacy_deletions_are_found_and_their_contact_gets_no_fate() -> None:
    """A contact.privacyDeletion names (portal, id); the same batch's deletion of that contact keeps no fate."""
    events = [
        CrmEvent(source="hubspot", payload={"objectId": int(ADA)}, portal_id="1", subscription_type="contact.deletion"),
        CrmEvent(
            source="hubspot", payload={"objectId": int(ADA)}, portal_id="1", subscription_type="contact.privacyDeletion"
        ),
        CrmEvent(source="hubspot", payload={"objectId": 5}, portal_id="1", subscription_type="deal.privacyDeletion"),
        CrmEvent(source="workflow", payload={"objectId": 6}, subscription_type="contact.privacyDeletion"),
    ]
    found = privacy_deletions(events)
    assert found == {1: ("1", ADA)}
    fates = [RecordFate("1", "contacts", ADA, "deleted"), RecordFate("1", "contacts", "7", "deleted")]
    assert without_erased(fates, found.values()) == [fates[1]]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"objectType": "contacts", "objectId": ADA}, ([ADA], [])),
        ({"objectType": "0-1", "email": " Ada@Analytical.example "}, ([], [EMAIL])),
        ({"objectType": "contacts", "objectId": ADA, "email": EMAIL}, ([ADA], [EMAIL])),
    ],
)
def test_an_erasure_request_names_an_id_an_email_or_both(body: object, expected: tuple[list[str], list[str]]) -> None:
    """The email is trimmed and lowercased; contacts may be named by type id."""
    assert parse_request(body) == expected


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (None, "body"),
        ({}, "objectType"),
        ({"objectType": "companies", "objectId": ADA}, "objectType"),
        ({"objectType": "contacts", "objectId": None, "email": None}, "objectId"),
        ({"objectType": "contacts", "objectId": "012"}, "objectId"),
        ({"objectType": "contacts", "email": "@"}, "email"),
        ({"objectType": "contacts", "email": "a@" + "b" * 400}, "email"),
        ({"objectType": "contacts", "email": ["a@b.c"]}, "email"),
        ({"objectType": "contacts", "objectId": ADA, "extra": 1}, "extra"),
    ],
)
def test_a_bad_erasure_request_names_its_field(body: object, field: str) -> None:
    """Every refusal starts with the field at fault."""
    with pytest.raises(ValueError, match=f"^{field}: "):
        parse_request(body)


def test_an_email_that_is_not_ascii_is_found_in_a_stored_record() -> None:
    """History JSON escapes non-ASCII characters: the quick substring test must not rule such a record out."""
    email = "jürgen@beispiel.example"
    raw = encode_record("1-0", {"id": "1-0", "e": [{"i": 0, "o": "accepted", "pl": {"email": email}}]}, [])
    body = record_body(raw)
    assert body is not None and json.loads(body)["e"][0]["pl"]["email"] == email
    assert may_name(Subject(set(), {email}), body)
    assert not may_name(Subject({ADA}, {"ada@analytical.example"}), body)
    assert record_body(b"\x02" + zlib.compress(b"no")) is None


def test_a_body_that_is_not_json_names_the_contact_by_a_whole_number_or_an_email() -> None:
    """A set-aside body that did not parse: the id as a whole number counts, a longer number or a time does not."""
    subject = Subject({ADA}, {"ada@analytical.example"})
    assert subject.mentioned_in_text(f'[{{"objectId":{ADA},"x":'.encode())
    assert not subject.mentioned_in_text(f'[{{"objectId":{ADA}5,"at":1{ADA}'.encode())
    assert subject.mentioned_in_text(b'{"email": "ADA@analytical.example", broken')


@pytest.mark.parametrize("origin", ["", "0af7651916cd43dd8448eb211c80319c"])
def test_pending_work_names_the_contact_with_or_without_a_trace_origin(origin: str) -> None:
    """A lane member names the contact whether or not tracing put its request's span after the form letter,
    read by its fields: the deal's id, equal to a contact's elsewhere, does not name that contact."""
    import time

    from hublink.domain.associations import AssociationRequest
    from hublink.lanes.codec import member_of
    from hublink.ops.privacy import PrivacyEraser

    work = AssociationRequest.create(
        from_object_type="deals",
        from_object_id="5001",
        to_object_type="contacts",
        to_object_id=ADA,
        source="api",
        received_at=time.time(),
    )
    member = member_of("f" * 32, work, 1, origin)
    assert PrivacyEraser._member_names(Subject({ADA}, set()), "_|deals|contacts", member)
    assert not PrivacyEraser._member_names(Subject({"5001"}, set()), "_|deals|contacts", member)
