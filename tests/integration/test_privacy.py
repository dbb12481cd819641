"""The privacy eraser on a real Redis: after an erasure, no key or value names the contact; others keep theirs.

The parts are the worker's own (inbox, expansion with the rules, lanes, history, record fates), in process:
events naming the contact by id (a creation, a workflow carrying its email), a form naming it only by
email, a direct-API call with an Idempotency-Key, a dead letter, a set-aside delivery and an inbox entry
not yet expanded; each beside another person's, which must survive the erasure.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from click.testing import CliRunner, Result
from flask.cli import ScriptInfo
from flask.testing import FlaskClient

from hublink.config.rules_file import RulesFile
from hublink.config.settings import Settings
from hublink.domain.associations import AssociationRequest
from hublink.domain.dead_letter import DeadLetter, DeadPair
from hublink.domain.events import CrmEvent
from hublink.domain.record_fates import RecordFate
from hublink.intake.expansion import Expansion
from hublink.intake.history import EventFilter, EventHistory
from hublink.intake.inbox import HeldAnswer, Inbox
from hublink.intake.record_fates import RecordFates
from hublink.lanes import LaneStore, new_association_id, pending_ids
from hublink.ops.metrics import Metrics
from hublink.ops.privacy import KINDS, PrivacyEraser
from hublink.store.keys import Keys
from tests.conftest import ADMIN_TOKEN, API_TOKEN
from tests.support.redis_scan import traces_of
from web import create_app
from web.cli.main import cli
from worker.loops import Expander

pytestmark = pytest.mark.integration

PORTAL = "62515"
ADA = "98765432101"
ADA_EMAIL = "ada.lovelace@analytical.example"
BOB = "12312312399"
BOB_EMAIL = "bob.babbage@engines.example"
RULES = """\
sources:
  workflow:
    auth: {type: signature}
  forms:
    demo:
      auth: {type: hmac, header: X-Signature, secret_env: DEMO_FORM_SECRET, encoding: hex, prefix: "sha256="}
      id_field: submission_id
rules:
  - name: contact-created
    source: hubspot
    when: {subscriptionType: contact.creation}
    associations:
      - from: {objectType: contacts, id: objectId}
        to: {objectType: companies, id: "`42`"}
  - name: workflow-contact
    source: workflow
    associations:
      - from: {objectType: contacts, id: objectId}
        to: {objectType: companies, id: "`43`"}
  - name: form-contact
    source: forms:demo
    associations:
      - from: {objectType: contacts, lookup: {search: {property: email, value: "email", onMultiple: first}}}
        to: {objectType: companies, id: "`44`"}
"""


class World:
    """The worker's parts on the test's Redis, and what was fed to them."""

    def __init__(self, redis: redis_lib.Redis, tmp_path: Path, *, eraser: bool = False) -> None:
        self.redis = redis
        self.keys = Keys("hl:")
        rules_path = tmp_path / "rules.yaml"
        rules_path.write_text(RULES)
        rules_file = RulesFile.read(str(rules_path))
        self.inbox = Inbox(redis, self.keys, claim_idle_s=30)
        self.lanes = LaneStore(redis, self.keys, lease_s=30, dedup_window_s=3600)
        self.history = EventHistory(redis, self.keys)
        self.fates = RecordFates(redis, self.keys)
        self.eraser = PrivacyEraser(redis, self.keys, self.history)
        expansion = Expansion(
            self.inbox,
            rules_file.rules,
            self.lanes,
            Metrics(redis, self.keys),
            rules_tag=rules_file.tag,
            history=self.history,
            fates=self.fates,
            eraser=self.eraser if eraser else None,
        )
        self.expander = Expander(self.inbox, expansion, consumer="tests")

    def expand(self) -> None:
        """Expand every inbox entry."""
        while self.expander.step(block_ms=1):
            pass

    def hubspot(self, *events: dict[str, Any]) -> str:
        """A batch of HubSpot webhook events into the inbox (as the web stores it)."""
        base = {"portalId": int(PORTAL), "occurredAt": int(time.time() * 1000), "attemptNumber": 0}
        return self.inbox.add_hubspot(json.dumps([{**base, **e} for e in events]).encode(), received_at=time.time())

    def workflow(self, body: dict[str, Any]) -> None:
        """A workflow's webhook body."""
        event = CrmEvent(source="workflow", payload=body, object_id=str(body["objectId"]), dedup_key=f"wf:{body}")
        self.inbox.add_events([event], received_at=time.time())

    def form(self, submission: str, email: str) -> None:
        """A form submission carrying only an email."""
        payload = {"submission_id": submission, "email": email, "name": "someone"}
        dedup_key = f"forms:demo:{submission}"
        event = CrmEvent(source="forms:demo", payload=payload, event_id=submission, dedup_key=dedup_key)
        self.inbox.add_events([event], received_at=time.time())

    def direct(self, contact: str, key: str) -> str:
        """A direct-API association naming ``contact``, under an Idempotency-Key; its association id."""
        request = AssociationRequest.create(
            from_object_type="contacts",
            from_object_id=contact,
            to_object_type="deals",
            to_object_id="777",
            portal_id=PORTAL,
            source="api",
            received_at=time.time(),
        )
        association_id = new_association_id()
        answer = HeldAnswer("digest-of-the-body", 202, {"accepted": 1, "ids": [association_id]})
        held = self.inbox.add_associations_once(
            [(association_id, request)], received_at=time.time(), idempotency_key=key, answer=answer
        )
        assert held is None
        return association_id

    def bury(self, contact: str) -> str:
        """A dead letter naming ``contact`` (as settle.lua stores one)."""
        now = int(time.time() * 1000)
        letter = DeadLetter(
            id=new_association_id(),
            kind="association",
            association=DeadPair(
                portal_id=PORTAL,
                from_object_type="contacts",
                from_object_id=contact,
                to_object_type="companies",
                to_object_id="42",
            ),
            source="hubspot",
            source_event_id="1",
            reason="HubSpot refused",
            error="ValidationRejectedError",
            status=400,
            category="VALIDATION_ERROR",
            sub_category=None,
            message=f"contacts/{contact} refused",
            correlation_id=None,
            first_seen_ms=now,
            dead_at_ms=now,
        )
        self.redis.set(self.keys.dead_letter(letter.id), json.dumps(letter.to_wire()))
        self.redis.zadd(self.keys.dead_letters, {letter.id: now})
        return letter.id

    def set_aside(self, email: str) -> None:
        """A workflow delivery HubLink could not use, kept in inbox:failed."""
        body = {"email": email, "objectId": "not-an-id"}
        self.inbox.set_aside_delivery("workflow", body, f"d-{email}", "objectId: not an id", received_at=time.time())

    def feed(self, contact: str, email: str, n: int) -> dict[str, str]:
        """Every kind of data naming ``contact`` (``n`` keeps ids and event ids apart); what the test reads later."""
        self.hubspot(
            {"eventId": 100 + n, "subscriptionType": "contact.creation", "objectId": int(contact)},
            {
                "eventId": 200 + n,
                "subscriptionType": "contact.propertyChange",
                "objectId": int(contact),
                "propertyName": "email",
                "propertyValue": email,
            },
        )
        self.workflow({"objectId": int(contact), "email": email, "portalId": int(PORTAL), "callbackId": f"cb{n}"})
        self.form(f"sub-{n}", email.upper())  # case differs: an email is found whatever its case
        direct = self.direct(contact, f"idem-{n}")
        self.expand()
        self.bury(contact)
        self.set_aside(email)
        self.fates.record([RecordFate(PORTAL, "contacts", contact, "deleted")])
        self.redis.set(self.keys.lookup_cache(f"{PORTAL}|search|contacts|email|{email}"), json.dumps([contact]))
        done = self.keys.done_day(time.strftime("%Y%m%d", time.gmtime()))
        self.redis.hset(done, direct, json.dumps({"at": 1, "first_seen": 1}))
        return {"direct": direct}


def index_members(redis: redis_lib.Redis) -> int:
    """Members in every record index bucket."""
    return sum(int(redis.zcard(k)) for k in redis.scan_iter(match="hl:evr:*"))


def consistent_index(world: World) -> None:
    """The index's member count is what its buckets hold."""
    assert int(world.redis.hget(world.keys.history_index_meta, "n") or 0) == index_members(world.redis)


def test_an_erasure_by_id_leaves_nothing_naming_the_contact_and_keeps_everyone_else(
    redis_client: redis_lib.Redis, tmp_path: Path
) -> None:
    """By id: the contact's email is learned from its own events; then no key or value holds the id or email."""
    world = World(redis_client, tmp_path)
    world.feed(ADA, ADA_EMAIL, 1)
    world.feed(BOB, BOB_EMAIL, 2)
    # An entry not expanded yet, naming both: it is rewritten with Bob's event only.
    world.hubspot(
        {"eventId": 300, "subscriptionType": "contact.creation", "objectId": int(ADA)},
        {"eventId": 301, "subscriptionType": "contact.creation", "objectId": int(BOB)},
    )
    assert traces_of(redis_client, [ADA]) and traces_of(redis_client, [ADA_EMAIL])
    bob_before = len(traces_of(redis_client, [BOB, BOB_EMAIL]))
    records_before, bytes_before, _ = world.history.stats()

    erasure = world.eraser.erase(contact_ids=[ADA])

    assert traces_of(redis_client, [ADA, ADA_EMAIL]) == []
    counts = erasure.as_dict()["erased"]
    assert set(counts) == set(KINDS)
    for kind in ("history", "index", "pending", "inbox", "deadLetters", "setAside", "idempotency", "done", "fates"):
        assert counts[kind] >= 1, (kind, counts)
    assert counts["lookups"] == 1
    assert erasure.learned_emails == 1
    # Bob's data is all there: each place that named him still does.
    assert len(traces_of(redis_client, [BOB, BOB_EMAIL])) == bob_before
    assert world.history.entries_naming(f"contacts/{BOB}")
    assert world.history.entries_naming(f"contacts/{ADA}") == []
    consistent_index(world)
    # Redacted in place: as many requests kept, fewer bytes counted against the cap.
    records_after, bytes_after, _ = world.history.stats()
    assert records_after == records_before and 0 < bytes_after < bytes_before
    # The rewritten entry still reaches the rules: Bob's event is expanded, Ada's is gone.
    world.expand()
    assert redis_client.xlen(world.keys.inbox) == 0
    # Bob's two creations (the fed one, the rewritten entry's), and his workflow's (which names no portal).
    assert len(pending_ids(redis_client, world.keys, f"{PORTAL}|contacts|companies")) == 2
    assert len(pending_ids(redis_client, world.keys, "_|contacts|companies")) == 1
    assert traces_of(redis_client, [ADA, ADA_EMAIL]) == []


def test_an_erasure_by_email_finds_the_contact_and_its_id(redis_client: redis_lib.Redis, tmp_path: Path) -> None:
    """By email only: the events carrying it name the contact's id, and that is erased too."""
    world = World(redis_client, tmp_path)
    world.feed(ADA, ADA_EMAIL, 1)
    world.feed(BOB, BOB_EMAIL, 2)

    erasure = world.eraser.erase(emails=[ADA_EMAIL.title()])

    assert erasure.learned_ids == 1
    assert traces_of(redis_client, [ADA, ADA_EMAIL]) == []
    assert traces_of(redis_client, [BOB]) and traces_of(redis_client, [BOB_EMAIL])
    consistent_index(world)


def test_a_privacy_deletion_event_erases_the_contact_and_keeps_no_fate(
    redis_client: redis_lib.Redis, tmp_path: Path
) -> None:
    """HubSpot's deletion and privacy deletion of a contact: no fate under its id, its history redacted."""
    world = World(redis_client, tmp_path, eraser=True)
    world.feed(ADA, ADA_EMAIL, 1)
    world.feed(BOB, BOB_EMAIL, 2)
    world.hubspot(
        {"eventId": 900, "subscriptionType": "contact.deletion", "objectId": int(ADA)},
        {"eventId": 901, "subscriptionType": "contact.privacyDeletion", "objectId": int(ADA)},
    )
    world.expand()

    assert traces_of(redis_client, [ADA, ADA_EMAIL]) == []
    assert world.fates.fate(PORTAL, "contacts", ADA) is None
    assert world.fates.fate(PORTAL, "contacts", BOB) == "deleted"  # another's fate stays
    # The history still says a privacy deletion came and was handled, naming no one.
    page, _ = world.history.page(EventFilter())
    erased = [e for e in page if e["subscription_type"] == "contact.privacyDeletion"]
    assert len(erased) == 1
    assert erased[0]["outcome"] == "record_deleted" and erased[0]["object_id"] is None
    consistent_index(world)


def test_a_contact_hublink_never_saw_erases_nothing(redis_client: redis_lib.Redis, tmp_path: Path) -> None:
    """Nothing names the contact: every count is 0 and the rest is untouched."""
    world = World(redis_client, tmp_path)
    world.feed(BOB, BOB_EMAIL, 2)
    before = sorted(traces_of(redis_client, [BOB, BOB_EMAIL]))

    erasure = world.eraser.erase(contact_ids=[ADA], emails=[ADA_EMAIL])

    assert set(erasure.as_dict()["erased"].values()) == {0}
    assert sorted(traces_of(redis_client, [BOB, BOB_EMAIL])) == before


# --- the API and the command ---


@pytest.fixture
def app_settings(make_settings: Callable[..., Settings], redis_url: str) -> Settings:
    """The web's settings on the test's Redis."""
    return make_settings(redis_url=redis_url)


@pytest.fixture
def client(app_settings: Settings) -> Iterator[FlaskClient]:
    """A test client of the app."""
    with create_app(app_settings).test_client() as c:
        yield c


def erase(client: FlaskClient, body: Any, token: str = ADMIN_TOKEN) -> Any:
    """POST /api/privacy/erase."""
    return client.post("/api/privacy/erase", json=body, headers={"Authorization": f"Bearer {token}"})


def audited(redis: redis_lib.Redis) -> list[dict[str, str]]:
    """The audit log's entries of privacy erasures."""
    entries = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in redis.xrange("hl:audit")]
    return [e for e in entries if e.get("action") == "privacy.erase"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (["contacts"], "body: expected a JSON object"),
        ({"objectId": ADA}, "objectType: required"),
        ({"objectType": "deals", "objectId": ADA}, "objectType: only contacts"),
        ({"objectType": "contacts"}, "objectId: give objectId, email, or both"),
        ({"objectType": "contacts", "objectId": "ada"}, "objectId: expected 1-20 decimal digits"),
        ({"objectType": "contacts", "objectId": int(ADA)}, "objectId: expected 1-20 decimal digits"),
        ({"objectType": "contacts", "email": "not an email"}, "email: expected an email address"),
        ({"objectType": "contacts", "email": ADA_EMAIL, "name": "Ada"}, "name: unknown field"),
    ],
)
def test_a_bad_body_is_a_precise_400_and_erases_nothing(
    client: FlaskClient, redis_client: redis_lib.Redis, tmp_path: Path, body: Any, message: str
) -> None:
    """Each mistake is named; nothing is erased and nothing audited."""
    World(redis_client, tmp_path).feed(ADA, ADA_EMAIL, 1)
    before = len(traces_of(redis_client, [ADA, ADA_EMAIL]))
    response = erase(client, body)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_erasure"
    assert response.json["error"]["message"].startswith(message)
    assert len(traces_of(redis_client, [ADA, ADA_EMAIL])) == before
    assert audited(redis_client) == []


def test_only_an_admin_erases(client: FlaskClient, redis_client: redis_lib.Redis, tmp_path: Path) -> None:
    """The direct API's token is refused; so is no token."""
    World(redis_client, tmp_path).feed(ADA, ADA_EMAIL, 1)
    assert erase(client, {"objectType": "contacts", "objectId": ADA}, token=API_TOKEN).status_code in (401, 403)
    assert client.post("/api/privacy/erase", json={"objectType": "contacts", "objectId": ADA}).status_code == 401
    assert traces_of(redis_client, [ADA])


def test_the_api_erases_by_email_answers_counts_and_audits_naming_no_one(
    client: FlaskClient, redis_client: redis_lib.Redis, tmp_path: Path
) -> None:
    """By email: counts by kind, the learned id erased too, and one audit entry that names no one."""
    world = World(redis_client, tmp_path)
    world.feed(ADA, ADA_EMAIL, 1)
    world.feed(BOB, BOB_EMAIL, 2)
    response = erase(client, {"objectType": "contacts", "email": ADA_EMAIL})
    assert response.status_code == 200, response.json
    assert response.json["erased"]["history"] >= 1 and response.json["erased"]["deadLetters"] == 1
    assert response.json["learned"] == {"ids": 1, "emails": 0}
    assert traces_of(redis_client, [ADA, ADA_EMAIL]) == []
    assert traces_of(redis_client, [BOB, BOB_EMAIL])
    [entry] = audited(redis_client)
    assert entry["target"] == "contacts" and entry["outcome"] == "ok"
    # Again: nothing left to erase, and the answer says so.
    again = erase(client, {"objectType": "contacts", "objectId": ADA, "email": ADA_EMAIL})
    assert set(again.json["erased"].values()) == {0}


def run_cli(settings: Settings, *args: str) -> Result:
    """``hublink ARGS`` in process."""
    app = ScriptInfo(create_app=lambda: create_app(settings), set_debug_flag=False)
    return CliRunner().invoke(cli, list(args), obj=app)


def test_the_command_erases_by_id_and_refuses_what_it_cannot(
    app_settings: Settings, redis_client: redis_lib.Redis, tmp_path: Path
) -> None:
    """``hublink privacy erase contacts ID`` prints the counts; a wrong type or no contact is a usage error."""
    world = World(redis_client, tmp_path)
    world.feed(ADA, ADA_EMAIL, 1)
    world.feed(BOB, BOB_EMAIL, 2)
    refused = run_cli(app_settings, "privacy", "erase", "deals", ADA)
    assert refused.exit_code == 2 and "only contacts" in refused.output
    assert run_cli(app_settings, "privacy", "erase", "contacts").exit_code == 2
    assert traces_of(redis_client, [ADA])

    result = run_cli(app_settings, "privacy", "erase", "contacts", ADA, "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["erased"]["pending"] >= 1
    assert traces_of(redis_client, [ADA, ADA_EMAIL]) == []
    assert traces_of(redis_client, [BOB, BOB_EMAIL])
    [entry] = audited(redis_client)
    assert entry["actor"].startswith("cli") and entry["target"] == "contacts"
    by_email = run_cli(app_settings, "privacy", "erase", "contacts", "--email", BOB_EMAIL)
    assert by_email.exit_code == 0 and by_email.output.startswith("erased: history ")
    assert traces_of(redis_client, [BOB, BOB_EMAIL]) == []


def test_work_a_drain_holds_is_counted_not_erased(redis_client: redis_lib.Redis, tmp_path: Path) -> None:
    """Claimed work is the drain's until it settles: the erasure says how much there was, to be erased again."""
    world = World(redis_client, tmp_path)
    world.feed(ADA, ADA_EMAIL, 1)
    world.feed(BOB, BOB_EMAIL, 2)
    claim = world.lanes.claim(f"{PORTAL}|contacts|companies", 10)
    assert len(claim.items) == 2  # Ada's creation and Bob's

    erasure = world.eraser.erase(contact_ids=[ADA])

    assert erasure.in_flight == 1
    assert erasure.as_dict()["inFlight"] == 1
    assert [key for key, _ in traces_of(redis_client, [ADA])] == ["hl:leased"]
