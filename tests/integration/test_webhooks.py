"""The signed webhook endpoints: HubSpot app webhooks, workflow actions and forms, on a real Redis.

Requests signed by HubSpot's algorithm are accepted into the inbox; any change of body, URI, timestamp or
secret is refused with 401 and stores nothing; a worker's expander runs the rules on what was accepted, and
a redelivered event is acknowledged without being processed twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from flask import Flask
from flask.testing import FlaskClient

from hublink.config.settings import Settings
from hublink.domain import signatures
from hublink.intake.expansion import IntakeReport
from tests.integration.conftest import Sim, Stack
from tests.integration.helpers import expand_all, make_expander, wait_settled, waiting
from tests.support.processes import wait_for
from web import create_app

pytestmark = pytest.mark.integration

SECRET = "client-secret-for-tests"
PUBLIC = "https://hooks.example.com"
FORM_SECRET = "form-secret-for-tests"
RULES = """\
sources:
  workflow:
    auth: {type: signature}
  forms:
    demo:
      auth: {type: hmac, header: X-Signature, secret_env: TEST_FORM_SECRET, encoding: hex, prefix: "sha256="}
      id_field: submission_id
    tokened:
      auth: {type: token, header: X-Form-Token, token_env: TEST_FORM_SECRET}
rules:
  - name: deal-created
    source: hubspot
    when: {subscriptionType: deal.creation}
    associations:
      - from: {objectType: deals, id: "objectId"}
        to: {objectType: contacts, id: "to_contact"}
  - name: workflow-links
    source: workflow
    associations:
      - from: {objectType: deals, id: "objectId"}
        to: {objectType: contacts, id: "contact_id"}
  - name: form-links
    source: "forms:*"
    associations:
      - from: {objectType: contacts, id: "contact_id"}
        to: {objectType: companies, id: "company_id"}
"""


def hubspot_event(event_id: int = 1, object_id: int = 5001, **extra: Any) -> dict[str, Any]:
    """One app webhook event."""
    return {
        "eventId": event_id,
        "subscriptionId": 7,
        "portalId": 62515,
        "appId": 1,
        "occurredAt": 1764331200000,
        "subscriptionType": "deal.creation",
        "attemptNumber": 0,
        "objectId": object_id,
        "changeSource": "CRM",
        "to_contact": 7001,
        **extra,
    }


def signed(
    body: bytes, *, uri: str = PUBLIC + "/webhooks/hubspot", secret: str = SECRET, ts_ms: int | None = None
) -> dict[str, str]:
    """v3 headers for ``body``."""
    ts = int(time.time() * 1000) if ts_ms is None else ts_ms
    return {
        "X-HubSpot-Signature-v3": signatures.sign_v3(secret, "POST", uri, body, ts),
        "X-HubSpot-Request-Timestamp": str(ts),
        "Content-Type": "application/json",
    }


@pytest.fixture
def rules_file(tmp_path: Path) -> str:
    """The rules above, on disk."""
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return str(path)


@pytest.fixture
def hook_settings(make_settings: Callable[..., Settings], redis_url: str, rules_file: str) -> Settings:
    """Settings with a client secret, a public URL and the rules."""
    return make_settings(redis_url=redis_url, hubspot_client_secret=SECRET, public_url=PUBLIC, rules_file=rules_file)


@pytest.fixture
def client(hook_settings: Settings) -> Iterator[FlaskClient]:
    """A test client."""
    app: Flask = create_app(hook_settings, environ={"TEST_FORM_SECRET": FORM_SECRET})
    with app.test_client() as c:
        yield c


@pytest.fixture
def expand(hook_settings: Settings) -> Callable[[], list[IntakeReport]]:
    """Run a worker's expander until the inbox is empty; return its reports, one per entry."""
    expander = make_expander(hook_settings)
    return lambda: expand_all(expander)


def work_keys(redis: redis_lib.Redis) -> set[str]:
    """Keys that would mean work was stored."""
    return {k.decode() for k in redis.keys("*") if not k.decode().startswith("hl:m:")}


class TestHubSpotWebhooks:
    """/webhooks/hubspot."""

    def test_a_signed_batch_is_accepted_into_the_inbox_and_expanded_by_a_worker(
        self, client: FlaskClient, redis_client: redis_lib.Redis, expand: Callable[[], list[IntakeReport]]
    ) -> None:
        """A v3-signed batch of two events answers 200 with its inbox entry; the expander stores two associations."""
        body = json.dumps([hubspot_event(1, 5001), hubspot_event(2, 5002)]).encode()
        response = client.post("/webhooks/hubspot", data=body, headers=signed(body))
        assert response.status_code == 200, response.get_json()
        answer = response.get_json()
        assert answer["received"] == 2
        assert [e[0].decode() for e in redis_client.xrange("hl:inbox")] == [answer["entry"]]
        assert len(waiting(redis_client, "62515|deals|contacts")) == 0  # the rules run in the worker
        [report] = expand()
        assert report.as_dict() == {
            "received": 2,
            "unusable": 0,
            "duplicates": 0,
            "unmatched": 0,
            "associations": 2,
            "lookups": 0,
            "problems": [],
        }
        assert len(waiting(redis_client, "62515|deals|contacts")) == 2
        assert redis_client.xlen("hl:inbox") == 0  # acknowledged and deleted with the work it became

    @pytest.mark.parametrize(
        ("change", "reason"),
        [
            ("body", "mismatch"),
            ("uri", "mismatch"),
            ("secret", "mismatch"),
            ("stale", "stale"),
            ("future", "future"),
            ("missing", "missing"),
        ],
    )
    def test_any_change_is_refused_and_stores_nothing(
        self, client: FlaskClient, redis_client: redis_lib.Redis, change: str, reason: str
    ) -> None:
        """Changing body, URI, secret or timestamp (or dropping the signature) is a 401 with its reason."""
        body = json.dumps([hubspot_event()]).encode()
        now = int(time.time() * 1000)
        headers = {
            "body": signed(body + b" "),
            "uri": signed(body, uri=PUBLIC + "/webhooks/other"),
            "secret": signed(body, secret="not-the-secret"),
            "stale": signed(body, ts_ms=now - 301_000),
            "future": signed(body, ts_ms=now + 301_000),
            "missing": {"Content-Type": "application/json"},
        }[change]
        response = client.post("/webhooks/hubspot", data=body, headers=headers)
        assert response.status_code == 401
        assert response.get_json()["error"]["details"]["reason"] == reason
        assert not work_keys(redis_client)

    def test_a_redelivered_batch_is_acknowledged_but_not_stored_again(
        self, client: FlaskClient, redis_client: redis_lib.Redis, expand: Callable[[], list[IntakeReport]]
    ) -> None:
        """The same batch twice: both answer 200; the second expansion counts a duplicate and adds nothing."""
        body = json.dumps([hubspot_event(1, 5001)]).encode()
        assert client.post("/webhooks/hubspot", data=body, headers=signed(body)).status_code == 200
        [first] = expand()
        assert client.post("/webhooks/hubspot", data=body, headers=signed(body)).status_code == 200
        [again] = expand()
        assert (first.associations, first.duplicates) == (1, 0)
        assert (again.associations, again.duplicates) == (0, 1)
        assert len(waiting(redis_client, "62515|deals|contacts")) == 1

    def test_unknown_event_types_are_acknowledged_and_counted(
        self, client: FlaskClient, redis_client: redis_lib.Redis, expand: Callable[[], list[IntakeReport]]
    ) -> None:
        """An event no rule matches answers 200, and its expansion counts it as unmatched."""
        body = json.dumps([hubspot_event(subscriptionType="contact.creation")]).encode()
        assert client.post("/webhooks/hubspot", data=body, headers=signed(body)).status_code == 200
        [report] = expand()
        assert report.unmatched == 1
        assert report.associations == 0
        assert redis_client.xlen("hl:inbox") == 0
        counts = redis_client.hgetall("hl:m:events_received")
        assert counts[b"source=hubspot,outcome=unmatched"] == b"1"

    def test_an_odd_payload_is_a_recorded_problem_not_a_500(
        self, client: FlaskClient, redis_client: redis_lib.Redis, expand: Callable[[], list[IntakeReport]]
    ) -> None:
        """A matching event without the id the rule reads answers 200; its expansion names the problem."""
        body = json.dumps([hubspot_event(to_contact=None)]).encode()
        assert client.post("/webhooks/hubspot", data=body, headers=signed(body)).status_code == 200
        [report] = expand()
        assert report.problems == ("rule 'deal-created': associations[0].to.id: expression 'to_contact' found nothing",)
        assert redis_client.hgetall("hl:m:rule_problems") == {b"rule=deal-created": b"1"}

    def test_a_genuine_batch_is_never_refused_for_one_event(
        self, client: FlaskClient, redis_client: redis_lib.Redis, expand: Callable[[], list[IntakeReport]]
    ) -> None:
        """A deal.creation, a real-shaped deal.associationChange and a broken event: 200, the creation's rule
        runs, the association change is an event too, and the broken one is set aside with its reason."""
        change = {
            "eventId": 3781247215,
            "portalId": 62515,
            "occurredAt": 1764331200123,
            "subscriptionType": "deal.associationChange",
            "associationType": "DEAL_TO_CONTACT",
            "fromObjectId": 9876543210,
            "toObjectId": 1234567,
            "associationRemoved": False,
            "isPrimaryAssociation": False,
        }
        broken = {"eventId": "x"}
        body = json.dumps([hubspot_event(1, 5001), change, broken]).encode()
        response = client.post("/webhooks/hubspot", data=body, headers=signed(body))
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["received"] == 3 and response.get_json()["unusable"] == 1
        [report] = expand()
        assert (report.received, report.unusable, report.associations) == (3, 1, 1)
        assert len(waiting(redis_client, "62515|deals|contacts")) == 1
        [(_, aside)] = redis_client.xrange("hl:inbox:failed")
        assert json.loads(aside[b"body"]) == [broken]
        assert aside[b"reason"].startswith(b"unusable events: #2: ")
        assert redis_client.hget("hl:m:events_received", "source=hubspot,outcome=unusable") == b"1"

    @pytest.mark.parametrize(
        ("raw", "content_type", "status"),
        [
            (b"[{", "application/json", 400),
            (b"[]", "text/plain", 415),
            (b'{"not": "a list"}', "application/json", 422),
            (json.dumps([hubspot_event()] * 101).encode(), "application/json", 422),
        ],
    )
    def test_bad_bodies_are_precise_4xx(
        self, client: FlaskClient, redis_client: redis_lib.Redis, raw: bytes, content_type: str, status: int
    ) -> None:
        """Malformed JSON 400, wrong type 415, not an array of at most 100 items 422; nothing stored."""
        headers = signed(raw) | {"Content-Type": content_type}
        assert client.post("/webhooks/hubspot", data=raw, headers=headers).status_code == status
        assert not work_keys(redis_client)

    def test_legacy_signatures_only_when_enabled(
        self, make_settings: Callable[..., Settings], redis_url: str, rules_file: str
    ) -> None:
        """A v1-signed delivery is refused by default and accepted with HUBSPOT_ACCEPT_LEGACY_SIGNATURES."""
        body = json.dumps([hubspot_event()]).encode()
        headers = {
            "X-HubSpot-Signature": signatures.sign_v1(SECRET, body),
            "X-HubSpot-Signature-Version": "v1",
            "Content-Type": "application/json",
        }
        for legacy, expected in ((False, 401), (True, 200)):
            app = create_app(
                make_settings(
                    redis_url=redis_url,
                    hubspot_client_secret=SECRET,
                    public_url=PUBLIC,
                    rules_file=rules_file,
                    accept_legacy_signatures=legacy,
                ),
                environ={"TEST_FORM_SECRET": FORM_SECRET},
            )
            assert app.test_client().post("/webhooks/hubspot", data=body, headers=headers).status_code == expected


class TestWorkflowAndForms:
    """/webhooks/workflow and /webhooks/forms/<source>."""

    def test_workflow_v2_signature(
        self, client: FlaskClient, redis_client: redis_lib.Redis, expand: Callable[[], list[IntakeReport]]
    ) -> None:
        """A workflow body with a v2 signature over the public URI is accepted; a wrong one is 401."""
        body = json.dumps({"objectId": 5001, "contact_id": "7001"}).encode()
        uri = PUBLIC + "/webhooks/workflow"
        good = {
            "X-HubSpot-Signature": signatures.sign_v2(SECRET, "POST", uri, body),
            "X-HubSpot-Signature-Version": "v2",
            "Content-Type": "application/json",
        }
        assert client.post("/webhooks/workflow", data=body, headers=good).status_code == 200
        bad = good | {"X-HubSpot-Signature": "0" * 64}
        assert client.post("/webhooks/workflow", data=body, headers=bad).status_code == 401
        assert [r.associations for r in expand()] == [1]
        assert len(waiting(redis_client, "_|deals|contacts")) == 1

    def test_form_hmac_json_and_urlencoded(
        self, client: FlaskClient, redis_client: redis_lib.Redis, expand: Callable[[], list[IntakeReport]]
    ) -> None:
        """A form signed with its HMAC is accepted as JSON or urlencoded; a resubmission is a duplicate."""
        json_body = json.dumps({"submission_id": "s1", "contact_id": "11", "company_id": "22"}).encode()
        form_body = b"submission_id=s2&contact_id=12&company_id=22"
        for body, ctype in ((json_body, "application/json"), (form_body, "application/x-www-form-urlencoded")):
            headers = {
                "X-Signature": "sha256=" + signatures.sign_hmac_sha256(FORM_SECRET, body, "hex"),
                "Content-Type": ctype,
            }
            assert client.post("/webhooks/forms/demo", data=body, headers=headers).get_json()["received"] == 1
        assert [r.associations for r in expand()] == [1, 1]
        headers = {
            "X-Signature": "sha256=" + signatures.sign_hmac_sha256(FORM_SECRET, json_body, "hex"),
            "Content-Type": "application/json",
        }
        assert client.post("/webhooks/forms/demo", data=json_body, headers=headers).status_code == 200
        assert [r.duplicates for r in expand()] == [1]
        assert len(waiting(redis_client, "_|contacts|companies")) == 2

    def test_a_verified_delivery_with_a_bad_field_is_kept_not_refused(
        self, client: FlaskClient, redis_client: redis_lib.Redis, expand: Callable[[], list[IntakeReport]]
    ) -> None:
        """A signed workflow body whose portalId is not a portal id: 200, kept in inbox:failed with the reason,
        counted as unusable, nothing queued; replayed, it is set aside again (it still cannot be used)."""
        body = json.dumps({"objectId": 5001, "contact_id": "7001", "portalId": "not-a-portal"}).encode()
        uri = PUBLIC + "/webhooks/workflow"
        headers = {
            "X-HubSpot-Signature": signatures.sign_v2(SECRET, "POST", uri, body),
            "X-HubSpot-Signature-Version": "v2",
            "Content-Type": "application/json",
        }
        response = client.post("/webhooks/workflow", data=body, headers=headers)
        assert response.status_code == 200 and response.get_json()["unusable"] == 1
        [(failed_id, kept)] = redis_client.xrange("hl:inbox:failed")
        assert failed_id.decode() == response.get_json()["entry"]
        assert kept[b"kind"] == b"delivery" and kept[b"reason"].startswith(b"portalId: expected a positive")
        assert json.loads(kept[b"body"])["body"]["contact_id"] == "7001"
        assert redis_client.hget("hl:m:events_received", "source=workflow,outcome=unusable") == b"1"
        assert work_keys(redis_client) == {"hl:inbox:failed"}  # nothing queued
        runner = client.application.test_cli_runner()
        assert runner.invoke(args=["inbox", "replay", "--all"]).exit_code == 0
        assert expand() == []  # read again, still unusable: set aside again with its reason
        [(_, again)] = redis_client.xrange("hl:inbox:failed")
        assert again[b"reason"].startswith(b"cannot be read: ")

    def test_form_refusals(self, client: FlaskClient, redis_client: redis_lib.Redis) -> None:
        """Unknown source 404; bad HMAC 401; token source needs its token."""
        body = b'{"contact_id": "1", "company_id": "2"}'
        assert client.post("/webhooks/forms/nope", data=body, content_type="application/json").status_code == 404
        bad = {"X-Signature": "sha256=" + "0" * 64, "Content-Type": "application/json"}
        assert client.post("/webhooks/forms/demo", data=body, headers=bad).status_code == 401
        assert client.post("/webhooks/forms/tokened", data=body, content_type="application/json").status_code == 401
        ok = {"X-Form-Token": FORM_SECRET, "Content-Type": "application/json"}
        assert client.post("/webhooks/forms/tokened", data=body, headers=ok).status_code == 200


class TestRedeliveryEndToEnd:
    """Through gunicorn, a worker and the simulator."""

    def test_a_redelivered_batch_produces_no_second_hubspot_call(self, stack: Stack, sim: Sim, rules_file: str) -> None:
        """The same signed batch delivered twice makes exactly one association call."""
        import requests

        stack.settings = replace(stack.settings, hubspot_client_secret=SECRET, rules_file=rules_file)
        stack.worker()
        url = stack.gunicorn(HUBSPOT_CLIENT_SECRET=SECRET, HUBLINK_RULES_FILE=rules_file, TEST_FORM_SECRET=FORM_SECRET)
        body = json.dumps([hubspot_event(9, 5009)]).encode()
        for _ in range(2):
            headers = signed(body, uri=f"{url}/webhooks/hubspot")
            response = requests.post(f"{url}/webhooks/hubspot", data=body, headers=headers, timeout=5)
            assert response.status_code == 200, response.text
        wait_for(lambda: ("deals", "5009", "contacts", "7001") in sim.pairs(), timeout=15, what="the association")
        redis = redis_lib.Redis.from_url(stack.settings.redis_url)
        wait_settled(redis, timeout=15)  # both deliveries expanded (the second as a duplicate), nothing pending
        assert sim.get("/_sim/requests")["inputs_total"] == 1


class TestProxyAndRulesCli:
    """The public URI behind a proxy, and the rules commands."""

    def test_signature_over_the_forwarded_public_uri(
        self, make_settings: Callable[..., Settings], redis_url: str, rules_file: str
    ) -> None:
        """With HUBLINK_TRUST_PROXY, a signature over the proxy's public https URI verifies."""
        app = create_app(
            make_settings(redis_url=redis_url, hubspot_client_secret=SECRET, rules_file=rules_file, trust_proxy=True),
            environ={"TEST_FORM_SECRET": FORM_SECRET},
        )
        body = json.dumps([hubspot_event()]).encode()
        headers = signed(body, uri="https://public.example.com/webhooks/hubspot") | {
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "public.example.com",
        }
        assert app.test_client().post("/webhooks/hubspot", data=body, headers=headers).status_code == 200
        untrusted = create_app(
            make_settings(redis_url=redis_url, hubspot_client_secret=SECRET, rules_file=rules_file),
            environ={"TEST_FORM_SECRET": FORM_SECRET},
        )
        assert untrusted.test_client().post("/webhooks/hubspot", data=body, headers=headers).status_code == 401

    def test_rules_check_and_try(self, hook_settings: Settings, tmp_path: Path) -> None:
        """rules check accepts a good file and names file:line for a bad one; rules try prints the plan."""
        app = create_app(hook_settings, environ={"TEST_FORM_SECRET": FORM_SECRET})
        runner = app.test_cli_runner(env={"TEST_FORM_SECRET": FORM_SECRET, "DEMO_FORM_SECRET": "x"})
        examples = Path(__file__).resolve().parents[2] / "examples"
        ok = runner.invoke(args=["rules", "check", str(examples / "deal-workflow" / "rules.yaml")])
        assert ok.exit_code == 0
        assert "1 rule(s) OK" in ok.output
        bad = tmp_path / "bad.yaml"
        bad.write_text(RULES.replace('objectType: contacts, id: "to_contact"', "objectType: people, id: x"))
        refused = runner.invoke(args=["rules", "check", str(bad)])
        assert refused.exit_code == 1
        assert f"{bad}:" in refused.output
        assert "rule 'deal-created': associations[0].to.objectType" in refused.output
        tried = runner.invoke(
            args=[
                "rules",
                "try",
                str(examples / "demo-request-form" / "rules.yaml"),
                "--source",
                "forms:demo-request",
                "--event",
                str(examples / "demo-request-form" / "event.json"),
            ]
        )
        assert tried.exit_code == 0, tried.output
        assert "lookup  [demo-request-contact-to-company] contacts where email = 'ada@acme.example'" in tried.output

    def test_start_up_refuses_an_invalid_rules_file(
        self, make_settings: Callable[..., Settings], redis_url: str, tmp_path: Path
    ) -> None:
        """create_app refuses a broken rules file with the same file:line messages."""
        from hublink.domain.rules import RulesError

        bad = tmp_path / "bad.yaml"
        bad.write_text("rules:\n  - name: x\n    source: hubspot\n    associations: []\n")
        with pytest.raises(RulesError, match=f"{bad}:4: rule 'x': associations"):
            create_app(make_settings(redis_url=redis_url, rules_file=str(bad)))
