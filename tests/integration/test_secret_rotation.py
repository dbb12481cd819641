"""Secrets that rotate without a refused request: HubSpot's client secret (``HUBSPOT_CLIENT_SECRET_PREVIOUS``)
for v3, v2 and v1 signatures, and the sources' secrets (``*_previous_env``), with the metric of which matched."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from flask import Flask

from hublink.config.settings import Settings
from hublink.domain import signatures
from hublink.domain.errors import InvalidSignatureError
from hublink.domain.sources import Sources
from hublink.ops.metrics import Metrics
from hublink.store.keys import Keys
from web import create_app
from web.webhooks import secret_use as secret_use_module
from web.webhooks.secret_use import FLUSH_EVERY_S, SecretUse

pytestmark = pytest.mark.integration

NEW, OLD, OTHER = "client-secret-new", "client-secret-old", "client-secret-unknown"
PUBLIC = "https://hooks.example.com"
RULES = """\
sources:
  workflow:
    auth: {type: api_key, name: X-HubLink-Key, in: header, key_env: WF_KEY, key_previous_env: WF_KEY_PREVIOUS}
  forms:
    demo:
      auth: {type: hmac, header: X-Signature, secret_env: FORM_SECRET, secret_previous_env: FORM_SECRET_PREVIOUS}
    tokened:
      auth: {type: token, header: X-Form-Token, token_env: FORM_SECRET, token_previous_env: FORM_SECRET_PREVIOUS}
rules:
  - name: form-links
    source: "forms:*"
    associations:
      - from: {objectType: contacts, id: "contact_id"}
        to: {objectType: companies, id: "company_id"}
"""
ENVIRON = {
    "WF_KEY": "wf-new",
    "WF_KEY_PREVIOUS": "wf-old",
    "FORM_SECRET": "form-new",
    "FORM_SECRET_PREVIOUS": "form-old",
}
METRIC = "hl:m:signature_secret_matched"


def event_body(event_id: int) -> bytes:
    """A one-event app webhook batch."""
    return json.dumps(
        [
            {
                "eventId": event_id,
                "subscriptionId": 7,
                "portalId": 62515,
                "appId": 1,
                "occurredAt": 1764331200000,
                "subscriptionType": "deal.creation",
                "attemptNumber": 0,
                "objectId": 5000 + event_id,
            }
        ]
    ).encode()


def hubspot_headers(version: str, secret: str, body: bytes) -> dict[str, str]:
    """HubSpot's headers for ``version`` (v3, v2 or v1), signed with ``secret``."""
    uri = PUBLIC + "/webhooks/hubspot"
    if version == "v3":
        ts = int(time.time() * 1000)
        signed = {
            "X-HubSpot-Signature-v3": signatures.sign_v3(secret, "POST", uri, body, ts),
            "X-HubSpot-Request-Timestamp": str(ts),
        }
    else:
        value = signatures.sign_v1(secret, body) if version == "v1" else signatures.sign_v2(secret, "POST", uri, body)
        signed = {"X-HubSpot-Signature": value, "X-HubSpot-Signature-Version": version}
    return {**signed, "Content-Type": "application/json"}


def matched(redis_client: redis_lib.Redis) -> dict[str, int]:
    """The metric's counts by label set."""
    return {k.decode(): int(v) for k, v in redis_client.hgetall(METRIC).items()}  # type: ignore[union-attr]


@pytest.fixture
def make_app(make_settings: Callable[..., Settings], redis_url: str, tmp_path: Path) -> Callable[..., Flask]:
    """An app whose secrets are given by the test."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)

    def make(**overrides: Any) -> Flask:
        """The app with ``overrides`` applied to its settings."""
        settings = make_settings(
            redis_url=redis_url, public_url=PUBLIC, rules_file=str(rules), accept_legacy_signatures=True, **overrides
        )
        return create_app(settings, environ=ENVIRON)

    return make


class FakeClock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        """The current fake time."""
        return self.now


class TestVerifyEither:
    """The pure rule: the previous secret is tried only after a mismatch, and only when set."""

    def test_which_secret_matched(self) -> None:
        """current first; previous on a mismatch; both failing raises the current secret's error."""
        body = b"{}"

        def check(signature: str) -> Callable[[str], None]:
            """A verification of ``signature`` over the body, given a secret."""
            return lambda secret: signatures.verify_hmac(secret, body, signature, encoding="hex")

        assert signatures.verify_either(check(signatures.sign_hmac_sha256("a", body, "hex")), "a", "b") == "current"
        assert signatures.verify_either(check(signatures.sign_hmac_sha256("b", body, "hex")), "a", "b") == "previous"
        with pytest.raises(InvalidSignatureError) as refused:
            signatures.verify_either(check(signatures.sign_hmac_sha256("c", body, "hex")), "a", "b")
        assert refused.value.reason == "mismatch"
        with pytest.raises(InvalidSignatureError):
            signatures.verify_either(check(signatures.sign_hmac_sha256("b", body, "hex")), "a", None)

    def test_only_a_mismatch_tries_the_previous_secret(self) -> None:
        """A missing signature is refused as missing, without a second try."""
        tried: list[str] = []

        def verify(secret: str) -> None:
            """Note the secret tried; always a missing signature."""
            tried.append(secret)
            raise InvalidSignatureError("missing", "no header")

        with pytest.raises(InvalidSignatureError):
            signatures.verify_either(verify, "a", "b")
        assert tried == ["a"]

    def test_an_unset_previous_variable_is_no_previous_value(self) -> None:
        """``secret_previous_env`` naming an unset variable loads (the rotation has ended); its value is None."""
        doc = {"sources": {"forms": {"demo": {"auth": {"type": "token", "header": "X", "token_env": "T",
                                                         "token_previous_env": "T_OLD"}}}}}  # fmt: skip
        sources = Sources.load(doc, {"T": "new"})
        assert sources.forms["demo"].auth.token_previous is None  # type: ignore[union-attr]
        assert Sources.load(doc, {"T": "new", "T_OLD": "old"}).secrets == ("new", "old")

    def test_the_variable_named_with_previous_appended_is_the_default(self) -> None:
        """Without ``*_previous_env``, ``<VAR>_PREVIOUS`` of the variable ``*_env`` names is the previous value."""
        doc = {"sources": {"forms": {"demo": {"auth": {"type": "hmac", "header": "X", "secret_env": "S"}}}}}
        assert Sources.load(doc, {"S": "new"}).forms["demo"].auth.secret_previous is None  # type: ignore[union-attr]
        rotating = Sources.load(doc, {"S": "new", "S_PREVIOUS": "old"})
        assert rotating.forms["demo"].auth.secret_previous == "old"  # type: ignore[union-attr]
        assert rotating.secrets == ("new", "old")


class TestHubSpotClientSecret:
    """HUBSPOT_CLIENT_SECRET_PREVIOUS on /webhooks/hubspot."""

    @pytest.mark.parametrize("version", ["v3", "v2", "v1"])
    def test_the_previous_secret_is_accepted_until_removed(
        self,
        make_app: Callable[..., Flask],
        redis_client: redis_lib.Redis,
        version: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Signed with the old secret: 200 while it is HUBSPOT_CLIENT_SECRET_PREVIOUS, 401 once removed."""
        monkeypatch.setattr(secret_use_module, "FLUSH_EVERY_S", 0.0)
        rotating = make_app(hubspot_client_secret=NEW, hubspot_client_secret_previous=OLD).test_client()
        for n, secret in enumerate((NEW, OLD)):
            body = event_body(n)
            response = rotating.post("/webhooks/hubspot", data=body, headers=hubspot_headers(version, secret, body))
            assert response.status_code == 200, response.get_json()
        body = event_body(9)
        refused = rotating.post("/webhooks/hubspot", data=body, headers=hubspot_headers(version, OTHER, body))
        assert refused.status_code == 401
        assert matched(redis_client) == {"source=hubspot,which=current": 1, "source=hubspot,which=previous": 1}
        done = make_app(hubspot_client_secret=NEW).test_client()
        body = event_body(10)
        assert done.post("/webhooks/hubspot", data=body, headers=hubspot_headers(version, OLD, body)).status_code == 401

    def test_the_tally_is_written_at_most_once_a_second(self, redis_client: redis_lib.Redis) -> None:
        """The first count is written at once; the next ones wait for the second to end, then go in one write."""
        clock = FakeClock()
        tally = SecretUse(Metrics(redis_client, Keys()), clock=clock)
        tally.count("hubspot", "current")
        assert matched(redis_client) == {"source=hubspot,which=current": 1}
        tally.count("hubspot", "previous")
        tally.count("hubspot", "current")
        assert matched(redis_client) == {"source=hubspot,which=current": 1}
        clock.now += FLUSH_EVERY_S
        tally.count("hubspot", "previous")
        assert matched(redis_client) == {"source=hubspot,which=current": 2, "source=hubspot,which=previous": 2}


class TestSources:
    """The sources' previous secrets: HMAC forms, token forms, workflow API keys."""

    def test_forms_and_workflow_accept_the_previous_value(
        self, make_app: Callable[..., Flask], redis_client: redis_lib.Redis, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Each source takes its current and previous secret, refuses a third, and counts which matched."""
        monkeypatch.setattr(secret_use_module, "FLUSH_EVERY_S", 0.0)  # every count written at once
        client = make_app().test_client()
        body = json.dumps({"contact_id": "1", "company_id": "2"}).encode()
        for secret, status in (("form-new", 200), ("form-old", 200), ("form-other", 401)):
            signature = signatures.sign_hmac_sha256(secret, body, "hex")
            headers = {"X-Signature": signature, "Content-Type": "application/json"}
            assert client.post("/webhooks/forms/demo", data=body, headers=headers).status_code == status
            headers = {"X-Form-Token": secret, "Content-Type": "application/json"}
            assert client.post("/webhooks/forms/tokened", data=body, headers=headers).status_code == status
        workflow = json.dumps({"objectId": 1}).encode()
        for key, status in (("wf-old", 200), ("wf-new", 200), ("wf-other", 401)):
            headers = {"X-HubLink-Key": key, "Content-Type": "application/json"}
            assert client.post("/webhooks/workflow", data=workflow, headers=headers).status_code == status
        assert matched(redis_client) == {
            f"source={source},which={which}": 1
            for source in ("forms.demo", "forms.tokened", "workflow")
            for which in ("current", "previous")
        }
