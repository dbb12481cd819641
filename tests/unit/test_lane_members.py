"""A pending association is one lane member: what it holds reads back whole, and what is corrupt is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hublink.domain.associations import AssociationRequest
from hublink.domain.lookups import LookupRequest
from hublink.domain.rules import Fixed, SearchLookup
from hublink.lanes import US, UnreadableRecordError, claimed_from, member_of
from tests.unit.strategies import object_ids

ID = "0123456789abcdef0123456789abcdef"
NO_STATE = [None, None, None]


def read(member: str, lane: str, state: list[object] | None = None) -> tuple[str, object, int]:
    """What a claim rebuilds from ``member``: id, request, first-seen ms."""
    claimed = claimed_from([member.encode(), *(state or NO_STATE)], lane)
    return claimed.association_id, claimed.request, claimed.first_seen_ms


requests = st.builds(
    AssociationRequest,
    from_object_type=st.just("deals"),
    from_object_id=object_ids,
    to_object_type=st.just("companies"),
    to_object_id=object_ids,
    portal_id=st.sampled_from([None, "62515"]),
    source=st.sampled_from(["api", "hubspot", "forms.demo", "workflow.x-1"]),
    source_event_id=st.none() | st.text(min_size=1, max_size=200),
    received_at=st.floats(min_value=0, max_value=4e9, allow_nan=False),
    occurred_at=st.none() | st.floats(min_value=0, max_value=4e9, allow_nan=False),
    action=st.sampled_from(["link", "unlink"]),
    label=st.none() | st.text(min_size=1, max_size=40),
    types=st.just(()) | st.tuples(st.tuples(st.sampled_from(["HUBSPOT_DEFINED", "USER_DEFINED"]), st.integers(1, 999))),
    mode=st.sampled_from(["add", "replace"]),
)


class TestMembersReadBackWhole:
    """Every field of a request survives its member form, whatever text its free fields hold."""

    @given(request=requests, first_seen=st.integers(0, 2**45))
    def test_an_association_reads_back_equal(self, request: AssociationRequest, first_seen: int) -> None:
        """Ids, source, times (to the bit), event id (separators included), label, types, action, mode."""
        assert read(member_of(ID, request, first_seen), request.lane) == (ID, request, first_seen)

    def test_a_lookup_reads_back_in_the_record_form(self) -> None:
        """Work that is not a plain association keeps its whole record in the member."""
        lookup = LookupRequest(
            rule="demo",
            from_side=Fixed("contacts", "5"),
            to_side=SearchLookup("companies", "domain", "example.com", "first"),
            source="forms.demo",
            received_at=1.5,
        )
        member = member_of(ID, lookup, 7)
        assert member.split(US)[2] == "j"
        assert read(member, lookup.lane) == (ID, lookup, 7)

    def test_a_default_link_is_about_a_hundred_and_ten_bytes(self) -> None:
        """The common case carries no JSON: ids, source, times and event id, nothing the lane already names."""
        request = AssociationRequest(
            from_object_type="deals",
            from_object_id="18452066183",
            to_object_type="contacts",
            to_object_id="96512018734",
            portal_id="62515",
            source="hubspot",
            source_event_id="4172036451",
            received_at=1764553555.123456,
        )
        member = member_of(ID, request, 1764553555123)
        assert len(member) <= 120
        assert "deals" not in member and "62515" not in member

    def test_retry_state_comes_from_the_state_fields(self) -> None:
        """Attempts, history and replays are read from a:<id> beside the member."""
        request = AssociationRequest(
            from_object_type="deals", from_object_id="1", to_object_type="contacts", to_object_id="2", received_at=1.0
        )
        claimed = claimed_from([member_of(ID, request, 5).encode(), b"2", b'[{"status": 500}]', b"1"], request.lane)
        assert (claimed.attempts, claimed.history, claimed.replays) == (2, [{"status": 500}], 1)


class TestCorruptMembersAreRefused:
    """Each corruption raises UnreadableRecordError (the claim dead-letters it), never anything else."""

    @pytest.mark.parametrize(
        "member",
        [
            f"{ID}{US}5{US}a{US}not-an-id{US}2{US}api{US}1.0{US}{US}{US}",
            f"{ID}{US}5{US}a{US}1{US}2{US}api{US}nan{US}{US}{US}",
            f"{ID}{US}5{US}a{US}1{US}2{US}api{US}1.0{US}inf{US}{US}",
            f"{ID}{US}5{US}a{US}1{US}2{US}Not A Slug{US}1.0{US}{US}{US}",
            f"{ID}{US}5{US}a{US}1{US}2{US}api{US}1.0{US}{US}[1]{US}",
            f"{ID}{US}5{US}a{US}too{US}few",
            f"{ID}{US}x{US}a{US}1{US}2{US}api{US}1.0{US}{US}{US}",
            f"{ID}{US}5{US}z{US}{{}}",
            f"{ID}{US}5{US}j{US}[]",
            f"{ID}{US}5{US}j{US}{{not json",
        ],
    )
    def test_a_corrupt_member(self, member: str) -> None:
        """Bad ids, non-finite times, bad slugs, wrong shapes, unknown forms: all unreadable."""
        with pytest.raises(UnreadableRecordError):
            read(member, "_|deals|contacts")

    def test_a_bare_id_is_not_a_member(self) -> None:
        """An id alone carries no association: it is refused, naming the member form it lacks."""
        with pytest.raises(UnreadableRecordError, match="member: expected"):
            read(ID, "_|deals|contacts")

    @pytest.mark.parametrize(("state", "why"), [([b"!WRONGTYPE", None, None], "state"), ([b"x", None, None], "int")])
    def test_unreadable_state(self, state: list[object], why: str) -> None:
        """A state key that is not a hash, or attempts that are not a number."""
        request = AssociationRequest(
            from_object_type="deals", from_object_id="1", to_object_type="contacts", to_object_id="2", received_at=1.0
        )
        with pytest.raises(UnreadableRecordError, match=why):
            read(member_of(ID, request, 5), request.lane, state)
