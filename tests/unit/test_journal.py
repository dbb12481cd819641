"""The Webhooks Journal as a source: parsing HubSpot's answers, the offset's promises, the poller's order of writes."""

from __future__ import annotations

import base64
import json
from typing import Any

import orjson
import pytest
import responses

from hublink.config.portals import load_portals
from hublink.delivery.credentials import journal_tokens
from hublink.delivery.hubspot import HubSpotClient
from hublink.domain.errors import (
    ConfigError,
    ForbiddenError,
    HubSpotErrorDetail,
    InvalidInputError,
    NotFoundError,
    ServerError,
)
from hublink.intake.inbox import KIND_DELIVERY, InboxEntry
from hublink.intake.journal import (
    LOCK_INTERVALS,
    MAX_ENTRIES_PER_POLL,
    MIN_LOCK_S,
    JournalFetch,
    JournalPoller,
    MemoryOffsets,
    entry_events,
    inbox_bodies,
)
from hublink.store.keys import Keys

BASE = "https://api.hubapi.test"
TOKEN = "pat-na1-journal"
PORTAL = "62515"


def event(n: int) -> dict[str, Any]:
    """A contact.creation event of the portal, numbered ``n``."""
    return {
        "eventId": n,
        "subscriptionId": 7,
        "portalId": int(PORTAL),
        "occurredAt": 1_780_000_000_000 + n,
        "subscriptionType": "contact.creation",
        "objectId": 1000 + n,
    }


class FakeJournal:
    """A journal of entries (offset, raw body) answering like HubSpot's; records the calls it gets."""

    def __init__(self, *bodies: bytes) -> None:
        self.entries = [(f"off-{i}", body) for i, body in enumerate(bodies)]
        self.fetches: list[str | None] = []
        self.expired: set[str] = set()

    def write(self, body: bytes) -> None:
        """Append an entry."""
        self.entries.append((f"off-{len(self.entries)}", body))

    def journal_fetch(
        self, token: str, after: str | None, *, portal_id: str, base_url: str | None = None
    ) -> dict[str, Any] | None:
        """HubSpot's JournalFetchResponse for the entry after ``after``, None when none; 404 when expired."""
        assert token == TOKEN and portal_id == PORTAL
        self.fetches.append(after)
        if after in self.expired:
            raise NotFoundError(HubSpotErrorDetail(status=404, message="gone"))
        offsets = [offset for offset, _ in self.entries]
        index = 0 if after is None else offsets.index(after) + 1
        if index >= len(self.entries):
            return None
        offset = self.entries[index][0]
        return {"currentOffset": offset, "url": f"https://files.test/{offset}", "expiresAt": "2026-12-01T00:05:00Z"}

    def journal_download(self, url: str) -> bytes:
        """The entry's body."""
        return dict(self.entries)[url.rsplit("/", 1)[1]]


class ListInbox:
    """An inbox that keeps what it is given; ``fail`` makes the next add raise."""

    def __init__(self, offsets: MemoryOffsets | None = None) -> None:
        self.bodies: list[bytes] = []
        self.fail = False
        #: (source, body, delivery id, reason, the portal's offset when it was set aside)
        self.aside: list[tuple[str, Any, str, str, str | None]] = []
        self._offsets = offsets

    def set_aside_delivery(self, source: str, body: Any, delivery_id: str, reason: str, *, received_at: float) -> str:
        """Keep what was set aside, with the offset the portal had then."""
        offset = self._offsets.offset(PORTAL) if self._offsets is not None else None
        self.aside.append((source, body, delivery_id, reason, offset))
        return f"{len(self.aside)}-1"

    def add_hubspot(self, raw: bytes, *, received_at: float) -> str:
        """Keep ``raw`` (or fail as Redis would)."""
        if self.fail:
            raise ConnectionError("inbox down")
        self.bodies.append(raw)
        return f"{len(self.bodies)}-0"


def body(*numbers: int) -> bytes:
    """A journal entry's body: the events numbered ``numbers``, as a JSON array."""
    return json.dumps([event(n) for n in numbers]).encode()


def poller(journal: FakeJournal, inbox: ListInbox, offsets: MemoryOffsets, owner: str = "w1") -> JournalPoller:
    """A poller of the fake journal for ``owner``."""
    return JournalPoller(journal, lambda _: (TOKEN, None), inbox, offsets, owner=owner, poll_s=5.0, clock=lambda: 1.0)


class TestParsing:
    """HubSpot's fetch answer and an entry's body."""

    def test_a_fetch_answer_gives_its_offset_and_url(self) -> None:
        """currentOffset and url are read from a JournalFetchResponse; expiresAt is not needed."""
        fetch = JournalFetch.parse({"currentOffset": "a1b2", "url": "https://s3.test/x?sig=1", "expiresAt": "z"})
        assert fetch == JournalFetch("a1b2", "https://s3.test/x?sig=1")

    @pytest.mark.parametrize(
        ("answer", "field"),
        [
            ([], "expected a JSON object"),
            ({"url": "https://s3.test/x"}, "currentOffset"),
            ({"currentOffset": "", "url": "https://s3.test/x"}, "currentOffset"),
            ({"currentOffset": "a"}, "url"),
            ({"currentOffset": "a", "url": "ftp://s3.test/x"}, "url"),
        ],
    )
    def test_a_malformed_fetch_answer_is_refused_naming_the_field(self, answer: Any, field: str) -> None:
        """An answer without a usable offset or URL raises InvalidInputError naming what was wrong."""
        with pytest.raises(InvalidInputError, match=field):
            JournalFetch.parse(answer)

    def test_an_entry_of_at_most_100_events_is_stored_as_sent(self) -> None:
        """The body is kept byte for byte: exactly the shape a push has."""
        raw = body(1, 2, 3)
        assert inbox_bodies(raw) == ([raw], 3)

    def test_a_bigger_entry_is_cut_into_arrays_of_100(self) -> None:
        """250 events become inbox bodies of 100, 100 and 50, in order."""
        bodies, count = inbox_bodies(body(*range(250)))
        assert count == 250
        assert [len(orjson.loads(b)) for b in bodies] == [100, 100, 50]
        assert [e["eventId"] for b in bodies for e in orjson.loads(b)] == list(range(250))

    def test_an_empty_entry_stores_nothing(self) -> None:
        """An empty array gives no inbox body."""
        assert inbox_bodies(b"[]") == ([], 0)

    @pytest.mark.parametrize("raw", [b"not json", b'{"events": []}', b'{"journalEvents": {}}', b"42", b"\xff\xfe"])
    def test_a_body_that_is_neither_format_is_refused(self, raw: bytes) -> None:
        """Anything but a JSON array or the wrapper with a journalEvents array raises InvalidInputError."""
        with pytest.raises(InvalidInputError, match="journal entry"):
            inbox_bodies(raw)

    def test_the_wrapper_format_gives_its_journal_events(self) -> None:
        """HubSpot's ``{"offset", "journalEvents", "publishedAt"}`` is read as its events, as an array would be."""
        wrapper = {"offset": "o1", "journalEvents": [event(1), event(2)], "publishedAt": "2026-12-07T00:00:00.000Z"}
        bodies, count = inbox_bodies(orjson.dumps(wrapper))
        assert count == 2 and [orjson.loads(b) for b in bodies] == [[event(1), event(2)]]
        assert entry_events(orjson.dumps(wrapper)) == entry_events(body(1, 2))

    def test_a_big_wrapper_is_cut_into_arrays_of_100(self) -> None:
        """A wrapper of 150 events becomes inbox bodies of 100 and 50."""
        bodies, count = inbox_bodies(orjson.dumps({"offset": "o", "journalEvents": [event(n) for n in range(150)]}))
        assert count == 150 and [len(orjson.loads(b)) for b in bodies] == [100, 50]


class TestOffsets:
    """The in-memory offset store keeps the Redis one's promises (the integration tier checks Redis)."""

    def test_the_offset_moves_only_from_where_it_was_read(self) -> None:
        """A second advance from the same starting offset is refused and not counted."""
        offsets = MemoryOffsets()
        assert offsets.advance(PORTAL, None, "a", events=2) is True
        assert offsets.advance(PORTAL, None, "b", events=2) is False
        assert offsets.offset(PORTAL) == "a" and offsets.events_read == {PORTAL: 2}

    def test_one_owner_holds_a_portal_until_its_lock_runs_out(self) -> None:
        """Another owner is refused while the lock lives; its holder renews it; it is free once it ran out."""
        now = [0.0]
        offsets = MemoryOffsets(clock=lambda: now[0])
        assert offsets.hold(PORTAL, "w1", 15.0) and offsets.hold(PORTAL, "w1", 15.0)
        assert not offsets.hold(PORTAL, "w2", 15.0)
        now[0] = 16.0
        assert offsets.hold(PORTAL, "w2", 15.0)


class TestPoller:
    """A poll stores new entries in order, then advances the offset."""

    def test_the_first_poll_reads_from_the_earliest_entry_on(self) -> None:
        """Every entry is stored as an inbox body, the offset ends at the last one, events are counted."""
        journal, inbox, offsets = FakeJournal(body(1, 2), body(3)), ListInbox(), MemoryOffsets()
        assert poller(journal, inbox, offsets).poll(PORTAL) == 2
        assert inbox.bodies == [body(1, 2), body(3)]
        assert offsets.offset(PORTAL) == "off-1" and offsets.events_read == {PORTAL: 3}
        assert journal.fetches == [None, "off-0", "off-1"]

    def test_a_later_poll_reads_on_from_the_stored_offset(self) -> None:
        """Only entries written since the last poll are stored."""
        journal, inbox, offsets = FakeJournal(body(1)), ListInbox(), MemoryOffsets()
        poller(journal, inbox, offsets).poll(PORTAL)
        journal.write(body(2))
        assert poller(journal, inbox, offsets).poll(PORTAL) == 1
        assert inbox.bodies == [body(1), body(2)]
        assert poller(journal, inbox, offsets).poll(PORTAL) == 0

    def test_the_offset_stays_when_the_inbox_did_not_take_the_entry(self) -> None:
        """Storing fails: the offset is not advanced, so the next poll reads the same entry again."""
        journal, inbox, offsets = FakeJournal(body(1)), ListInbox(), MemoryOffsets()
        inbox.fail = True
        with pytest.raises(ConnectionError):
            poller(journal, inbox, offsets).poll(PORTAL)
        assert offsets.offset(PORTAL) is None
        inbox.fail = False
        assert poller(journal, inbox, offsets).poll(PORTAL) == 1
        assert inbox.bodies == [body(1)]

    def test_a_failed_fetch_leaves_the_offset(self) -> None:
        """HubSpot's error reaches the caller and nothing moves."""

        class Failing(FakeJournal):
            """A journal that answers 503."""

            def journal_fetch(self, token: str, after: str | None, **_: Any) -> dict[str, Any] | None:
                """Always a 503."""
                raise ServerError(HubSpotErrorDetail(status=503, message="down"))

        inbox, offsets = ListInbox(), MemoryOffsets()
        with pytest.raises(ServerError):
            poller(Failing(body(1)), inbox, offsets).poll(PORTAL)
        assert offsets.offset(PORTAL) is None and inbox.bodies == []

    def test_a_portal_held_by_another_worker_is_not_read(self) -> None:
        """While w1 holds the lock, w2's poll reads and stores nothing."""
        journal, inbox, offsets = FakeJournal(body(1)), ListInbox(), MemoryOffsets()
        assert offsets.hold(PORTAL, "w1", MIN_LOCK_S)
        assert poller(journal, inbox, offsets, owner="w2").poll(PORTAL) == 0
        assert journal.fetches == [] and inbox.bodies == []
        assert LOCK_INTERVALS * 5.0 >= MIN_LOCK_S

    def test_an_expired_offset_reads_on_from_the_earliest_entry(self) -> None:
        """An offset the journal no longer knows (404) restarts from the earliest entry it keeps."""
        journal, inbox, offsets = FakeJournal(body(1)), ListInbox(), MemoryOffsets()
        offsets.advance(PORTAL, None, "gone", events=0)
        journal.expired.add("gone")
        assert poller(journal, inbox, offsets).poll(PORTAL) == 1
        assert offsets.offset(PORTAL) == "off-0"

    def test_an_unreadable_entry_is_set_aside_raw_before_the_offset_moves_past_it(self) -> None:
        """A file that cannot be read is kept as it came (before the offset moves), and the journal reads on."""
        offsets = MemoryOffsets()
        journal, inbox = FakeJournal(b"{corrupt", body(2)), ListInbox(offsets)
        assert poller(journal, inbox, offsets).poll(PORTAL) == 2
        assert inbox.bodies == [body(2)] and offsets.offset(PORTAL) == "off-1"
        [(source, kept, delivery_id, reason, offset_then)] = inbox.aside
        assert (source, kept, delivery_id) == ("journal", "{corrupt", f"journal:{PORTAL}:off-0")
        assert offset_then is None and "cannot be read" in reason and "off-0" in reason

    def test_an_entry_that_is_not_utf8_is_kept_as_base64(self) -> None:
        """Bytes that are not text are kept whole, base64-encoded."""
        offsets = MemoryOffsets()
        journal, inbox = FakeJournal(b"\xff\x00"), ListInbox(offsets)
        poller(journal, inbox, offsets).poll(PORTAL)
        assert inbox.aside[0][1] == {"base64": base64.b64encode(b"\xff\x00").decode()}

    def test_an_entry_that_cannot_be_set_aside_is_read_again(self) -> None:
        """When keeping it fails (Redis down), the offset stays: the next poll reads the entry again."""

        class Down(ListInbox):
            """An inbox whose Redis is gone."""

            def set_aside_delivery(self, *args: Any, **kwargs: Any) -> str:
                """Fail as Redis would."""
                raise ConnectionError("inbox down")

        journal, inbox, offsets = FakeJournal(b"{corrupt"), Down(), MemoryOffsets()
        with pytest.raises(ConnectionError):
            poller(journal, inbox, offsets).poll(PORTAL)
        assert offsets.offset(PORTAL) is None

    def test_a_refused_token_is_forgotten(self) -> None:
        """A 401 or 403 from the journal calls ``refused`` (the app token is fetched again) and is raised."""
        refused: list[bool] = []

        class Refusing(FakeJournal):
            """A journal that refuses the token."""

            def journal_fetch(self, token: str, after: str | None, **_: Any) -> dict[str, Any] | None:
                """Answer 403."""
                raise ForbiddenError(HubSpotErrorDetail(status=403, message="app token required"))

        p = JournalPoller(
            Refusing(),
            lambda _: (TOKEN, None),
            ListInbox(),
            MemoryOffsets(),
            owner="w1",
            poll_s=5.0,
            refused=lambda: refused.append(True),
        )
        with pytest.raises(ForbiddenError):
            p.poll(PORTAL)
        assert refused == [True]

    def test_a_big_entry_becomes_several_inbox_entries(self) -> None:
        """150 events are stored as 100 and 50, and the offset moves once."""
        journal, inbox, offsets = FakeJournal(body(*range(150))), ListInbox(), MemoryOffsets()
        poller(journal, inbox, offsets).poll(PORTAL)
        assert [len(orjson.loads(b)) for b in inbox.bodies] == [100, 50]
        assert offsets.events_read == {PORTAL: 150}

    def test_one_poll_stores_at_most_its_share(self) -> None:
        """A backlog is read MAX_ENTRIES_PER_POLL entries at a time."""
        journal = FakeJournal(*(body(n) for n in range(MAX_ENTRIES_PER_POLL + 5)))
        inbox, offsets = ListInbox(), MemoryOffsets()
        assert poller(journal, inbox, offsets).poll(PORTAL) == MAX_ENTRIES_PER_POLL
        assert poller(journal, inbox, offsets).poll(PORTAL) == 5


class TestClient:
    """HubSpotClient's journal calls, on a stubbed transport."""

    @responses.activate
    def test_the_first_fetch_asks_for_the_earliest_entry_of_the_portal(self) -> None:
        """GET .../journal/2026-03/earliest?installPortalId=<portal> with the token; the answer as sent."""
        answer = {"currentOffset": "o1", "url": "https://s3.test/o1", "expiresAt": "2026-12-01T00:05:00Z"}
        responses.get(f"{BASE}/webhooks-journal/journal/2026-03/earliest", json=answer)
        client = HubSpotClient(BASE, connect_timeout_s=1, read_timeout_s=2)
        assert client.journal_fetch(TOKEN, None, portal_id=PORTAL) == answer
        sent = responses.calls[0].request
        assert sent.url == f"{BASE}/webhooks-journal/journal/2026-03/earliest?installPortalId={PORTAL}"
        assert sent.headers["Authorization"] == f"Bearer {TOKEN}"

    @responses.activate
    def test_no_entry_yet_is_none(self) -> None:
        """HubSpot's 204 after an offset means nothing new: None."""
        responses.get(f"{BASE}/webhooks-journal/journal/2026-03/offset/o1/next", status=204)
        client = HubSpotClient(BASE, connect_timeout_s=1, read_timeout_s=2)
        assert client.journal_fetch(TOKEN, "o1", portal_id=PORTAL) is None

    @responses.activate
    def test_an_unknown_offset_is_not_found(self) -> None:
        """A 404 for an expired offset raises NotFoundError."""
        responses.get(f"{BASE}/webhooks-journal/journal/2026-03/offset/o1/next", status=404, json={"message": "gone"})
        client = HubSpotClient(BASE, connect_timeout_s=1, read_timeout_s=2)
        with pytest.raises(NotFoundError):
            client.journal_fetch(TOKEN, "o1", portal_id=PORTAL)

    @responses.activate
    def test_the_download_sends_no_token_and_returns_the_body_as_sent(self) -> None:
        """A pre-signed URL is fetched without Authorization; its bytes come back unchanged."""
        raw = body(1)
        responses.get("https://s3.test/o1?sig=abc", body=raw)
        client = HubSpotClient(BASE, connect_timeout_s=1, read_timeout_s=2)
        assert client.journal_download("https://s3.test/o1?sig=abc") == raw
        assert "Authorization" not in responses.calls[0].request.headers


class TestPortalsFile:
    """``journal: true`` in the portals file."""

    def test_a_portal_opts_in_with_journal_true(self) -> None:
        """The flag is read per portal; it is off by default."""
        portals = load_portals("portals:\n  1:\n    token: a\n    journal: true\n  2:\n    token: b\n", {}, "p.yaml")
        assert portals["1"].journal is True and portals["2"].journal is False

    def test_anything_but_a_boolean_is_refused(self) -> None:
        """``journal: yes-please`` names the file, the portal and the field."""
        with pytest.raises(ConfigError, match=r"p.yaml: portals.1: journal: "):
            load_portals("portals:\n  1:\n    token: a\n    journal: yes-please\n", {}, "p.yaml")


class TestAppCredentials:
    """The journal's app credentials are required where a portal reads the journal."""

    @pytest.mark.parametrize(
        ("client_id", "secret", "missing"),
        [(None, "s", "HUBSPOT_CLIENT_ID"), ("c", None, "HUBSPOT_CLIENT_SECRET"), ("", "", "HUBSPOT_CLIENT_ID")],
    )
    def test_a_missing_credential_is_named(self, client_id: str | None, secret: str | None, missing: str) -> None:
        """Without the app's client id or secret a worker with journal portals refuses to start, naming it."""
        client = HubSpotClient(BASE, connect_timeout_s=1, read_timeout_s=2)
        with pytest.raises(ConfigError, match=f"{missing} is required when a portal has journal: true"):
            journal_tokens(client_id, secret, None, Keys("hl:"), client)  # type: ignore[arg-type]

    @responses.activate
    def test_the_app_token_is_a_client_credentials_grant(self) -> None:
        """POST /oauth/2026-03/token with grant_type client_credentials, the app's id, secret and scope."""
        responses.post(f"{BASE}/oauth/2026-03/token", json={"access_token": "app-t", "expires_in": 1800})
        client = HubSpotClient(BASE, connect_timeout_s=1, read_timeout_s=2)
        assert client.app_token("cid", "sec", ("developer.webhooks_journal.read",))["access_token"] == "app-t"
        sent = responses.calls[0].request.body
        assert isinstance(sent, str)
        assert sent == (
            "grant_type=client_credentials&client_id=cid&client_secret=sec&scope=developer.webhooks_journal.read"
        )
        assert "Authorization" not in responses.calls[0].request.headers


class TestReplayOfAnEntrySetAside:
    """A journal entry kept in inbox:failed is read again when it is replayed."""

    @staticmethod
    def kept(body: Any) -> InboxEntry:
        """The inbox entry a replay of a set-aside journal entry makes."""
        payload = json.dumps({"source": "journal", "body": body, "id": f"journal:{PORTAL}:off-0"}).encode()
        return InboxEntry(entry_id="1-0", kind=KIND_DELIVERY, body=payload, received_at=1.0)

    def test_a_readable_file_gives_its_events(self) -> None:
        """Its text, in either shape, gives the events as a push would."""
        wrapper = orjson.dumps({"offset": "o", "journalEvents": [event(1), event(2)]}).decode()
        assert [e.event_id for e in self.kept(wrapper).events().events] == ["1", "2"]
        assert [e.event_id for e in self.kept(body(3).decode()).events().events] == ["3"]

    def test_a_big_file_keeps_its_unusable_events_numbered_in_it(self) -> None:
        """150 events, the 120th unusable: 149 events and one unusable, numbered 120."""
        events: list[Any] = [event(n) for n in range(150)]
        events[120] = {"nope": True}
        batch = self.kept(json.dumps(events)).events()
        assert len(batch.events) == 149 and [u.index for u in batch.unusable] == [120]

    @pytest.mark.parametrize("kept_as", ["{corrupt", {"base64": base64.b64encode(b"\xff").decode()}, {"x": 1}, 7])
    def test_a_file_still_unreadable_is_refused(self, kept_as: Any) -> None:
        """A file HubLink still cannot read raises InvalidInputError: the expander sets it aside again."""
        with pytest.raises(InvalidInputError):
            self.kept(kept_as).events()
