"""The rules API on a real Redis: read, check, publish, roll back; scopes, refusals and the audit log."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from flask.testing import FlaskClient

from hublink.config.settings import Settings
from tests.conftest import ADMIN_TOKEN, API_TOKEN
from web import create_app

pytestmark = pytest.mark.integration

V1 = """\
rules:
  - name: deal-contact
    source: hubspot
    when: {subscriptionType: deal.creation}
    associations:
      - from: {objectType: deals, id: objectId}
        to: {objectType: contacts, id: contactId}
"""
V2 = (
    V1
    + """\
  - name: company-contact
    source: hubspot
    when: {subscriptionType: company.creation}
    associations:
      - from: {objectType: companies, id: objectId}
        to: {objectType: contacts, id: contactId}
"""
)
# Line 3 names a source HubLink does not know, line 7 an object type HubSpot does not have.
BROKEN = V1.replace("source: hubspot", "source: carrier-pigeon").replace("objectType: contacts", "objectType: ghosts")

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def make_client(settings: Settings) -> Iterator[FlaskClient]:
    """A test client of an app built from ``settings``."""
    with create_app(settings).test_client() as client:
        yield client


@pytest.fixture
def client(make_settings: Callable[..., Settings], redis_url: str) -> Iterator[FlaskClient]:
    """An app whose rules live in Redis (no rules file)."""
    yield from make_client(make_settings(redis_url=redis_url, rules_source="redis", max_body_bytes=65536))


@pytest.fixture
def file_client(make_settings: Callable[..., Settings], redis_url: str, tmp_path: Path) -> Iterator[FlaskClient]:
    """An app reading the rules file (HUBLINK_RULES_SOURCE=file, the default)."""
    path = tmp_path / "rules.yaml"
    path.write_text(V1)
    yield from make_client(make_settings(redis_url=redis_url, rules_file=str(path)))


def publish(client: FlaskClient, text: str, comment: str = "") -> Any:
    """POST /api/rules/publish as the admin."""
    return client.post("/api/rules/publish", json={"text": text, "comment": comment}, headers=ADMIN)


def audit_entries(redis_client: redis_lib.Redis) -> list[dict[str, str]]:
    """The audit log's entries, oldest first."""
    entries = redis_client.xrange("hl:audit") or []
    return [{k.decode(): v.decode() for k, v in (fields or {}).items()} for _, fields in entries]


class TestAuth:
    """Every rules route needs the admin token (or a client holding the rules scopes)."""

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("GET", "/api/rules"),
            ("GET", "/api/rules/versions"),
            ("GET", "/api/rules/versions/1"),
            ("POST", "/api/rules/check"),
            ("POST", "/api/rules/publish"),
            ("POST", "/api/rules/rollback"),
        ],
    )
    def test_no_token_and_the_api_token_are_refused(self, client: FlaskClient, method: str, path: str) -> None:
        """Without a token 401; the direct API's token (a caller without the rules scopes) 403 naming the scope."""
        response = client.open(path, method=method, json={"text": V1})
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "unauthorized"
        response = client.open(path, method=method, json={"text": V1}, headers={"Authorization": f"Bearer {API_TOKEN}"})
        assert response.status_code == 403
        error = response.get_json()["error"]
        assert error["code"] == "forbidden"
        assert error["details"]["scope"] == (
            "rules:read" if method == "GET" or path.endswith("/check") else "rules:write"
        )


class TestReading:
    """The published version, the list and one version."""

    def test_nothing_published_is_a_404(self, client: FlaskClient) -> None:
        """No rules file and no version: 404 not_found."""
        response = client.get("/api/rules", headers=ADMIN)
        assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
        assert client.get("/api/rules/versions", headers=ADMIN).get_json() == {"items": []}

    def test_the_published_version_the_list_and_one_version(self, client: FlaskClient) -> None:
        """After two publishes: the second is the rules, both are listed newest first, each readable with its diff."""
        assert publish(client, V1, "first").status_code == 201
        assert publish(client, V2, "second").status_code == 201
        rules = client.get("/api/rules", headers=ADMIN).get_json()
        assert {k: rules[k] for k in ("version", "text", "author", "comment", "source")} == {
            "version": 2,
            "text": V2,
            "author": "admin",
            "comment": "second",
            "source": "redis",
        }
        assert isinstance(rules["publishedAt"], int)
        items = client.get("/api/rules/versions", headers=ADMIN).get_json()["items"]
        assert [(i["version"], i["comment"]) for i in items] == [(2, "second"), (1, "first")]
        assert all("text" not in i for i in items)
        second = client.get("/api/rules/versions/2", headers=ADMIN).get_json()
        assert second["text"] == V2 and "+  - name: company-contact" in second["diff"]
        assert client.get("/api/rules/versions/1", headers=ADMIN).get_json()["diff"] == ""

    def test_an_unknown_version_is_a_404(self, client: FlaskClient) -> None:
        """Version 7 does not exist: 404 not_found naming it."""
        response = client.get("/api/rules/versions/7", headers=ADMIN)
        assert response.status_code == 404 and "7" in response.get_json()["error"]["message"]

    def test_a_bad_limit_is_a_400(self, client: FlaskClient) -> None:
        """limit must be 1..500."""
        for limit in ("0", "501", "x"):
            response = client.get(f"/api/rules/versions?limit={limit}", headers=ADMIN)
            assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_parameter"

    def test_the_file_source_answers_the_file_as_version_zero(self, file_client: FlaskClient) -> None:
        """With HUBLINK_RULES_SOURCE=file, GET /api/rules is the file's text as version 0."""
        rules = file_client.get("/api/rules", headers=ADMIN).get_json()
        assert (rules["version"], rules["text"], rules["source"], rules["publishedAt"]) == (0, V1, "file", None)


class TestCheck:
    """POST /api/rules/check: every problem with its line; stores nothing."""

    def test_a_valid_draft_has_no_problems(self, client: FlaskClient, redis_client: redis_lib.Redis) -> None:
        """200 with an empty list, and nothing written."""
        response = client.post("/api/rules/check", json={"text": V1}, headers=ADMIN)
        assert response.status_code == 200 and response.get_json() == {"problems": []}
        assert redis_client.keys("hl:rules:*") == []

    def test_each_problem_comes_with_its_line(self, client: FlaskClient) -> None:
        """Two problems, on lines 3 and 7, as ``hublink rules check`` reports them."""
        problems = client.post("/api/rules/check", json={"text": BROKEN}, headers=ADMIN).get_json()["problems"]
        assert [p["line"] for p in problems] == [3, 7]
        assert "source" in problems[0]["message"] and "ghosts" in problems[1]["message"]

    def test_yaml_that_does_not_parse_names_its_line(self, client: FlaskClient) -> None:
        """A tab where YAML wants spaces: one problem, with the line."""
        problems = client.post("/api/rules/check", json={"text": "rules:\n\t- x"}, headers=ADMIN).get_json()["problems"]
        assert len(problems) == 1 and problems[0]["line"] == 2 and "YAML" in problems[0]["message"]

    def test_sources_are_checked_against_the_webs_environment(self, client: FlaskClient) -> None:
        """A form source whose token variable the web lacks is a problem at the sources line."""
        text = V1 + "sources:\n  forms:\n    demo:\n      auth: {type: token, header: X-T, token_env: NOT_SET_HERE}\n"
        problems = client.post("/api/rules/check", json={"text": text}, headers=ADMIN).get_json()["problems"]
        message = "sources.forms.demo.auth: token_env: environment variable NOT_SET_HERE is not set"
        assert problems == [{"line": 8, "message": message}]

    @pytest.mark.parametrize(
        ("body", "code"),
        [({}, "invalid_parameter"), ({"text": 5}, "invalid_parameter"), ([], "malformed_json")],
    )
    def test_a_bad_body_is_a_400(self, client: FlaskClient, body: Any, code: str) -> None:
        """No text, a text that is not a string, or not an object: 400 with the code."""
        response = client.post("/api/rules/check", json=body, headers=ADMIN)
        assert response.status_code == 400 and response.get_json()["error"]["code"] == code

    def test_a_body_that_is_not_json_is_a_415(self, client: FlaskClient) -> None:
        """A form body is refused as not JSON."""
        response = client.post("/api/rules/check", data={"text": V1}, headers=ADMIN)
        assert response.status_code == 415


class TestPublish:
    """POST /api/rules/publish."""

    def test_a_publish_is_answered_with_its_version_and_audited(
        self, client: FlaskClient, redis_client: redis_lib.Redis
    ) -> None:
        """201 with the version and the subscriptions newly needed; the audit log names the actor and v<n>."""
        first = publish(client, V1, "deals")
        assert first.status_code == 201
        assert first.get_json()["version"] == 1
        assert first.get_json()["subscriptionsNeeded"] == [{"subscription": "deal.creation", "rules": ["deal-contact"]}]
        second = publish(client, V2, "companies").get_json()
        assert second["subscriptionsNeeded"] == [{"subscription": "company.creation", "rules": ["company-contact"]}]
        assert "subscriptions apply --dry-run" in second["subscriptionsHint"]
        entries = [(e["actor"], e["action"], e["target"], e["outcome"]) for e in audit_entries(redis_client)]
        assert entries == [("admin", "rules.publish", "v1", "ok"), ("admin", "rules.publish", "v2", "ok")]

    def test_rules_with_problems_are_refused_with_each_line(
        self, client: FlaskClient, redis_client: redis_lib.Redis
    ) -> None:
        """422 invalid_rules, the problems in details; nothing published, the refusal audited."""
        response = publish(client, BROKEN)
        assert response.status_code == 422
        error = response.get_json()["error"]
        assert error["code"] == "invalid_rules" and [p["line"] for p in error["details"]] == [3, 7]
        assert redis_client.get("hl:rules:published") is None
        assert [(e["action"], e["outcome"]) for e in audit_entries(redis_client)] == [("rules.publish", "refused")]

    def test_the_file_source_refuses_to_publish(self, file_client: FlaskClient, redis_client: redis_lib.Redis) -> None:
        """409 rules_source_file, nothing stored, nothing audited."""
        response = publish(file_client, V2)
        assert response.status_code == 409 and response.get_json()["error"]["code"] == "rules_source_file"
        assert redis_client.keys("hl:rules:*") == [] and audit_entries(redis_client) == []

    def test_a_comment_too_long_is_a_400(self, client: FlaskClient) -> None:
        """501 characters of comment: 400 naming comment."""
        response = publish(client, V1, "x" * 501)
        assert response.status_code == 400 and "comment" in response.get_json()["error"]["message"]

    def test_the_web_uses_a_publish_at_once(self, client: FlaskClient) -> None:
        """The process that published runs the new version for its next request (others within a second)."""
        publish(client, V1)
        publish(client, V2)
        app_rules = client.application.extensions["hublink"].rules
        assert [r.name for r in app_rules.rules] == ["deal-contact", "company-contact"]


class TestRollback:
    """POST /api/rules/rollback."""

    def test_a_rollback_publishes_the_old_text_as_a_new_version(
        self, client: FlaskClient, redis_client: redis_lib.Redis
    ) -> None:
        """v1, v2, rollback to v1: v3 holds v1's text; audited as rules.rollback v3."""
        publish(client, V1)
        publish(client, V2)
        response = client.post("/api/rules/rollback", json={"version": 1}, headers=ADMIN)
        assert response.status_code == 201 and response.get_json()["version"] == 3
        rules = client.get("/api/rules", headers=ADMIN).get_json()
        assert (rules["version"], rules["text"], rules["comment"]) == (3, V1, "rollback to v1")
        assert audit_entries(redis_client)[-1]["action"] == "rules.rollback"
        assert audit_entries(redis_client)[-1]["target"] == "v3"

    @pytest.mark.parametrize("version", [0, -1, "1", True, 1.5, None])
    def test_a_bad_version_is_a_400(self, client: FlaskClient, version: Any) -> None:
        """version must be a positive integer."""
        response = client.post("/api/rules/rollback", json={"version": version}, headers=ADMIN)
        assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_parameter"

    def test_an_unknown_version_is_a_404(self, client: FlaskClient) -> None:
        """Rolling back to a version that does not exist: 404."""
        publish(client, V1)
        response = client.post("/api/rules/rollback", json={"version": 5}, headers=ADMIN)
        assert response.status_code == 404

    def test_the_file_source_refuses_to_roll_back(self, file_client: FlaskClient) -> None:
        """409 rules_source_file."""
        response = file_client.post("/api/rules/rollback", json={"version": 1}, headers=ADMIN)
        assert response.status_code == 409


class TestSourcesFollow:
    """The sources section of a published version is served at once, without a restart."""

    def test_a_published_form_source_takes_submissions_tagged_with_its_version(
        self, make_settings: Callable[..., Settings], redis_url: str, redis_client: redis_lib.Redis
    ) -> None:
        """Before: 404 unknown_source. After publishing v2 with the form: 2xx, the entry tagged v2."""
        settings = make_settings(redis_url=redis_url, rules_source="redis")
        client = create_app(settings, environ={"DEMO_TOKEN": "t0ken-of-demo"}).test_client()
        publish(client, V1)
        submit = {"json": {"email": "a@example.com"}, "headers": {"X-Form-Token": "t0ken-of-demo"}}
        assert client.post("/webhooks/forms/demo", **submit).status_code == 404
        form = "sources:\n  forms:\n    demo:\n      auth: {type: token, header: X-Form-Token, token_env: DEMO_TOKEN}\n"
        assert publish(client, V1 + form).status_code == 201
        response = client.post("/webhooks/forms/demo", **submit)
        assert response.status_code in (200, 202), response.get_data(as_text=True)
        [(_, fields)] = redis_client.xrange("hl:inbox") or []
        assert fields[b"rules"] == b"v2"
        wrong = client.post("/webhooks/forms/demo", json={}, headers={"X-Form-Token": "wrong"})
        assert wrong.status_code == 401
