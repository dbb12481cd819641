"""The simulator over real HTTP: HubSpot's contract, checked against its OpenAPI specs, and the control API.

The server runs in-process on a free port. The specs' schemas are in ``tests/contracts/``.
"""

from __future__ import annotations

import json
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests
from jsonschema import Draft4Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from hubspot_sim import SimServer, SimState
from tests.support.processes import REPO, wait_for

pytestmark = pytest.mark.integration

TOKEN = "pat-na1-simulator-test-token-0001"
OTHER_TOKEN = "pat-na1-simulator-test-token-0002"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SPECS = REPO / "tests" / "contracts"  # HubSpot's component schemas (tests/contracts/README.md)
ISO_MS_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
SINGLE = "/crm/objects/2026-03/deals/{}/associations/default/contacts/{}"
BATCH = "/crm/associations/2026-03/deals/contacts/batch/associate/default"
ASSOCIATIONS = "crm-associations-2026-03.json"
OBJECTS = "crm-objects-2026-03.json"
OAUTH = "oauth-2026-03.json"
INVALID_MESSAGE = "One or more associations are invalid"


@cache
def _validator(spec_file: str, schema: str) -> Draft4Validator:
    """A validator for one component schema, resolving the spec's ``#/components/...`` references.

    OpenAPI 3.0 schemas are JSON Schema draft 4 plus keywords that validators ignore (``example``).
    """
    spec = json.loads((SPECS / spec_file).read_text(encoding="utf-8"))
    registry = Registry().with_resource("spec", Resource.from_contents(spec, default_specification=DRAFT4))
    return Draft4Validator(
        {"$ref": f"spec#/components/schemas/{schema}"}, registry=registry, format_checker=FormatChecker()
    )


@pytest.fixture
def schemas() -> Any:
    """``check(spec_file, schema, body)``: fails listing every violation."""

    def check(spec_file: str, schema: str, body: Any) -> None:
        """Fail with every schema violation of ``body`` listed."""
        problems = sorted(_validator(spec_file, schema).iter_errors(body), key=str)
        assert not problems, "\n".join(f"{list(e.path)}: {e.message}" for e in problems)

    return check


class Client:
    """Talks to one running simulator: HubSpot's API with a token, and the control API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def api(self, method: str, path: str, token: str | None = TOKEN, **kwargs: Any) -> requests.Response:
        """Call an API path with a bearer token (none if ``token`` is None)."""
        headers = {**kwargs.pop("headers", {}), **({"Authorization": f"Bearer {token}"} if token else {})}
        timeout = kwargs.pop("timeout", 10)
        return requests.request(method, self.url + path, headers=headers, timeout=timeout, **kwargs)

    def put_pair(self, from_id: str = "1", to_id: str = "2", **kwargs: Any) -> requests.Response:
        """The single default association deal → contact."""
        return self.api("PUT", SINGLE.format(from_id, to_id), **kwargs)

    def batch(self, pairs: list[tuple[str, str]], path: str = BATCH) -> requests.Response:
        """A batch default association of deal → contact pairs."""
        inputs = [{"from": {"id": f}, "to": {"id": t}} for f, t in pairs]
        return self.api("POST", path, json={"inputs": inputs})

    def control(self, method: str, path: str, body: Any = None) -> Any:
        """Call the control API; fails on a non-2xx answer and returns the JSON."""
        response = requests.request(method, f"{self.url}/_sim/{path}", json=body, timeout=10)
        assert response.ok, response.text
        return response.json()

    def pairs(self) -> list[tuple[str, str, str, str]]:
        """The recorded associations in first-seen order."""
        listed = self.control("GET", "associations")["associations"]
        return [(a["fromObjectType"], a["fromObjectId"], a["toObjectType"], a["toObjectId"]) for a in listed]


@pytest.fixture(scope="module")
def server() -> Iterator[SimServer]:
    """One in-process simulator for the module, accepting two tokens."""
    with SimServer(SimState(tokens=[TOKEN, OTHER_TOKEN])) as running:
        yield running


@pytest.fixture
def sim(server: SimServer) -> Client:
    """The module's simulator, reset to its start-up state for this test."""
    server.state.reset()
    return Client(server.url)


class TestSingleAssociation:
    """PUT .../associations/default/... records one association."""

    def test_put_records_the_association_in_the_documented_shape(self, sim: Client, schemas: Any) -> None:
        """The answer is a BatchResponsePublicDefaultAssociation with type id 3 and millisecond UTC times."""
        response = sim.put_pair("101", "202")
        body = response.json()
        schemas(ASSOCIATIONS, "BatchResponsePublicDefaultAssociation", body)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/json;charset=utf-8"
        assert int(response.headers["Content-Length"]) == len(response.content)
        assert UUID.fullmatch(response.headers["X-HubSpot-Correlation-Id"])
        assert body["status"] == "COMPLETE"
        assert body["results"] == [
            {
                "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3},
                "from": {"id": "101"},
                "to": {"id": "202"},
            }
        ]
        assert ISO_MS_UTC.fullmatch(body["startedAt"]) and ISO_MS_UTC.fullmatch(body["completedAt"])
        listed = sim.control("GET", "associations")
        assert listed["total"] == 1
        assert listed["associations"][0]["received_at"] == pytest.approx(time.time(), abs=60)
        assert sim.pairs() == [("deals", "101", "contacts", "202")]

    def test_v4_twin_and_type_ids_are_recorded_as_the_path_spelled_them(self, sim: Client) -> None:
        """The v4 path with type ids and singular names answers deal→contact's id and records the spelling."""
        body = sim.api("PUT", "/crm/v4/objects/0-3/7/associations/default/contact/8").json()
        assert body["results"][0]["associationSpec"]["associationTypeId"] == 3
        assert sim.pairs() == [("0-3", "7", "contact", "8")]

    @pytest.mark.parametrize(
        ("from_type", "to_type", "type_id"),
        [
            ("contacts", "deals", 4),
            ("deals", "companies", 341),
            ("companies", "deals", 342),
            ("contacts", "companies", 279),
            ("companies", "contacts", 280),
            ("deals", "tickets", 27),
            ("tickets", "deals", 28),
            ("contacts", "tickets", 15),
            ("tickets", "contacts", 16),
            ("deals", "line_items", 19),
            ("line_items", "deals", 20),
            ("deals", "deals", 451),
        ],
    )
    def test_documented_type_ids(self, sim: Client, from_type: str, to_type: str, type_id: int) -> None:
        """Each documented pair answers its HubSpot-defined default type id (docs/reference/hubspot.md §1.2)."""
        path = f"/crm/objects/2026-03/{from_type}/1/associations/default/{to_type}/2"
        assert sim.api("PUT", path).json()["results"][0]["associationSpec"]["associationTypeId"] == type_id

    def test_declared_custom_pairs_get_a_stable_id_per_direction(self, sim: Client) -> None:
        """A declared custom type's pair gets a made-up id that repeats and differs from the reverse direction."""
        sim.control("POST", "object-types", {"objectTypes": ["2-1234"]})

        def type_id(from_type: str, to_type: str) -> int:
            """The type id answered for one direction."""
            path = f"/crm/objects/2026-03/{from_type}/1/associations/default/{to_type}/2"
            return int(sim.api("PUT", path).json()["results"][0]["associationSpec"]["associationTypeId"])

        assert type_id("notes", "2-1234") == type_id("0-46", "2-1234") != type_id("2-1234", "notes")

    def test_reassociating_is_an_idempotent_success(self, sim: Client) -> None:
        """The same pair twice answers 200 twice and is held once."""
        assert [sim.put_pair().status_code for _ in range(2)] == [200, 200]
        assert sim.pairs() == [("deals", "1", "contacts", "2")]

    @pytest.mark.parametrize(
        "path",
        [
            "/crm/objects/2026-03/deals/0123/associations/default/contacts/2",
            "/crm/objects/2026-03/deals/12a/associations/default/contacts/2",
            "/crm/objects/2026-03/deals/1/associations/default/contacts/123456789012345678901",
            "/crm/objects/2026-03/widgets/1/associations/default/contacts/2",
            "/crm/v4/objects/deals/1/associations/default/0-999/2",
        ],
    )
    def test_bad_ids_and_types_answer_400(self, sim: Client, schemas: Any, path: str) -> None:
        """A malformed id or an unknown type is a VALIDATION_ERROR naming the field, and records nothing."""
        response = sim.api("PUT", path)
        body = response.json()
        schemas(ASSOCIATIONS, "Error", body)
        assert (response.status_code, body["category"]) == (400, "VALIDATION_ERROR")
        assert re.search(r"(from|to)Object(Id|Type)", body["message"])
        assert sim.pairs() == []

    def test_an_invalid_id_answers_invalid_object_ids(self, sim: Client, schemas: Any) -> None:
        """An id listed as invalid answers 400 with HubSpot's INVALID_OBJECT_IDS context."""
        sim.control("POST", "invalid-ids", {"ids": ["38374264688"], "status": 400})
        response = sim.put_pair("1", "38374264688")
        body = response.json()
        schemas(ASSOCIATIONS, "Error", body)
        assert response.status_code == 400
        assert (body["category"], body["message"]) == ("VALIDATION_ERROR", INVALID_MESSAGE)
        assert body["context"] == {
            "INVALID_OBJECT_IDS": ["CONTACT=38374264688 is not valid"],
            "objectId": ["38374264688"],
            "objectType": ["CONTACT"],
        }
        assert sim.pairs() == []

    def test_a_missing_id_answers_404_until_it_is_visible(self, sim: Client, schemas: Any) -> None:
        """An id listed as not found for one request answers 404 once, then associates."""
        sim.control("POST", "invalid-ids", {"ids": ["5"], "status": 404, "ttl_requests": 1})
        first = sim.put_pair("5", "2")
        schemas(ASSOCIATIONS, "Error", first.json())
        assert (first.status_code, first.json()["category"], first.json()["context"]["objectId"]) == (
            404,
            "OBJECT_NOT_FOUND",
            ["5"],
        )
        assert sim.put_pair("5", "2").status_code == 200


class TestBatch:
    """POST .../batch/associate/default associates up to 2,000 pairs."""

    def test_every_input_is_associated(self, sim: Client, schemas: Any) -> None:
        """100 inputs give 100 associations, in order, and 200 results: both directions of each pair."""
        pairs = [(str(1000 + i), str(2000 + i)) for i in range(100)]
        response = sim.batch(pairs)
        body = response.json()
        schemas(ASSOCIATIONS, "BatchResponsePublicDefaultAssociation", body)
        assert response.status_code == 200
        assert [(r["from"]["id"], r["to"]["id"]) for r in body["results"][::2]] == pairs
        assert [(r["to"]["id"], r["from"]["id"]) for r in body["results"][1::2]] == pairs
        assert {r["associationSpec"]["associationTypeId"] for r in body["results"][::2]} == {3}
        assert {r["associationSpec"]["associationTypeId"] for r in body["results"][1::2]} == {4}
        assert "errors" not in body
        assert sim.pairs() == [("deals", f, "contacts", t) for f, t in pairs]

    def test_the_v4_twin_and_two_thousand_inputs(self, sim: Client) -> None:
        """The v4 path takes the 2,000-input maximum."""
        pairs = [(str(i), "9") for i in range(1, 2001)]
        response = sim.batch(pairs, path="/crm/v4/associations/deals/contacts/batch/associate/default")
        assert (response.status_code, len(response.json()["results"])) == (200, 4000)
        assert sim.control("GET", "associations")["total"] == 2000

    def test_failing_inputs_are_listed_in_errors_per_input(self, sim: Client, schemas: Any) -> None:
        """With per-input batch errors, each input naming an invalid or missing id gets an errors[] entry."""
        sim.control("PUT", "config", {"batch_errors": "per-input"})
        sim.control("POST", "invalid-ids", {"ids": ["666"], "status": 400})
        sim.control("POST", "invalid-ids", {"ids": ["777"], "status": 404})
        body = sim.batch([("1", "2"), ("666", "2"), ("3", "777"), ("4", "5")]).json()
        schemas(ASSOCIATIONS, "BatchResponsePublicDefaultAssociation", body)
        assert [(r["from"]["id"], r["to"]["id"]) for r in body["results"][::2]] == [("1", "2"), ("4", "5")]
        assert body["numErrors"] == 2
        invalid, missing = body["errors"]
        assert (invalid["category"], invalid["message"]) == ("VALIDATION_ERROR", INVALID_MESSAGE)
        assert invalid["context"]["INVALID_OBJECT_IDS"] == ["DEAL=666 is not valid"]
        assert (missing["category"], missing["context"]["objectId"]) == ("OBJECT_NOT_FOUND", ["777"])
        assert sim.pairs() == [("deals", "1", "contacts", "2"), ("deals", "4", "contacts", "5")]

    @pytest.mark.parametrize(
        ("body", "named"),
        [
            ({}, "inputs"),
            ({"inputs": []}, "inputs"),
            ({"inputs": [{"from": {"id": "1"}, "to": {"id": "2"}}] * 2001}, "2001"),
            ({"inputs": [{"from": {"id": "1"}, "to": {}}]}, "inputs[0].to.id"),
            ({"inputs": [{"from": {"id": "01"}, "to": {"id": "2"}}]}, "inputs[0].from.id"),
        ],
    )
    def test_malformed_bodies_answer_400(self, sim: Client, schemas: Any, body: Any, named: str) -> None:
        """A body that is not 1 to 2,000 well-formed inputs is refused whole, naming what is wrong."""
        response = sim.api("POST", BATCH, json=body)
        schemas(ASSOCIATIONS, "Error", response.json())
        assert response.status_code == 400
        assert named in response.json()["message"]
        assert sim.pairs() == []

    def test_a_body_that_is_not_json_answers_400(self, sim: Client) -> None:
        """Bytes that are not JSON are a VALIDATION_ERROR."""
        response = sim.api("POST", BATCH, data=b"{inputs:", headers={"Content-Type": "application/json"})
        assert (response.status_code, response.json()["category"]) == (400, "VALIDATION_ERROR")


class TestAuthentication:
    """Bearer tokens."""

    @pytest.mark.parametrize("token", [None, "pat-na1-not-a-known-token"])
    def test_missing_or_unknown_token_answers_401(self, sim: Client, schemas: Any, token: str | None) -> None:
        """No token, or one the simulator was not given, is INVALID_AUTHENTICATION, with nothing recorded."""
        response = sim.put_pair(token=token)
        body = response.json()
        schemas(ASSOCIATIONS, "Error", body)
        assert (response.status_code, body["category"]) == (401, "INVALID_AUTHENTICATION")
        assert body["message"].startswith("Authentication credentials not found")
        assert response.headers["X-HubSpot-Correlation-Id"] == body["correlationId"]
        assert sim.pairs() == []

    def test_any_token_is_accepted_when_none_is_configured(self) -> None:
        """A simulator started without tokens accepts any non-empty bearer token."""
        with SimServer() as open_server:
            assert Client(open_server.url).put_pair(token="whatever-token").status_code == 200


class TestRateLimit:
    """The rolling limit per token, its headers and its 429."""

    def test_headers_count_down_then_429(self, sim: Client, schemas: Any) -> None:
        """Every answer carries the three headers; past the limit HubSpot's TEN_SECONDLY_ROLLING 429 comes."""
        sim.control("PUT", "config", {"rate_limit": "3/10s"})
        answers = [sim.put_pair(str(i), "2") for i in range(1, 5)]
        for answer in answers[:3]:
            schemas(ASSOCIATIONS, "BatchResponsePublicDefaultAssociation", answer.json())
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert [a.headers["X-HubSpot-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
        assert {a.headers["X-HubSpot-RateLimit-Max"] for a in answers} == {"3"}
        assert {a.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] for a in answers} == {"10000"}
        body = answers[-1].json()
        assert set(body) == {"status", "message", "errorType", "category", "correlationId", "policyName", "requestId"}
        assert (body["status"], body["errorType"], body["policyName"]) == (
            "error",
            "RATE_LIMIT",
            "TEN_SECONDLY_ROLLING",
        )
        assert body["message"] == "You have reached your ten_secondly_rolling limit."
        assert UUID.fullmatch(body["correlationId"])
        assert len(sim.pairs()) == 3

    def test_answers_keep_their_bodies_under_a_limit(self, sim: Client, schemas: Any) -> None:
        """With a limit on, batch answers (errors included), reads and refusals still carry their bodies."""
        sim.control("PUT", "config", {"rate_limit": "100/10s", "batch_errors": "per-input"})
        sim.control("POST", "invalid-ids", {"ids": ["666"]})
        batch = sim.batch([("1", "2"), ("666", "2")])
        schemas(ASSOCIATIONS, "BatchResponsePublicDefaultAssociation", batch.json())
        assert (batch.json()["numErrors"], batch.headers["X-HubSpot-RateLimit-Remaining"]) == (1, "99")
        missing = sim.api("GET", "/crm/objects/2026-03/contacts/5")
        schemas(OBJECTS, "Error", missing.json())
        assert missing.headers["X-HubSpot-RateLimit-Remaining"] == "98"

    def test_tokens_have_their_own_windows(self, sim: Client) -> None:
        """One token at its limit does not stop another."""
        sim.control("PUT", "config", {"rate_limit": "1/10s"})
        assert sim.put_pair().status_code == 200
        assert sim.put_pair().status_code == 429
        assert sim.put_pair(token=OTHER_TOKEN).status_code == 200

    def test_the_window_rolls(self, sim: Client) -> None:
        """After the window passes, requests are accepted again (refused ones did not count)."""
        sim.control("PUT", "config", {"rate_limit": "2/300ms"})
        assert [sim.put_pair().status_code for _ in range(3)] == [200, 200, 429]
        wait_for(lambda: sim.put_pair().status_code == 200, timeout=5, what="the window to roll")

    def test_the_limit_can_be_turned_off(self, sim: Client) -> None:
        """rate_limit null removes the limit and the headers."""
        sim.control("PUT", "config", {"rate_limit": "1/10s"})
        sim.control("PUT", "config", {"rate_limit": None})
        answers = [sim.put_pair() for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert not any("X-HubSpot-RateLimit-Max" in a.headers for a in answers)

    def test_search_has_its_own_limit_and_no_headers(self, sim: Client) -> None:
        """Search is limited separately, answers 'secondly limit' past it, and never carries rate headers."""
        sim.control("PUT", "config", {"rate_limit": "100/10s", "search_rate_limit": "2/10s"})
        answers = [sim.api("POST", "/crm/v3/objects/contacts/search", json={}) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert answers[-1].json()["message"] == "You have reached your secondly limit."
        assert answers[-1].json()["policyName"] == "SECONDLY"
        assert not any(h.startswith("X-HubSpot-RateLimit") for a in answers for h in a.headers)
        assert sim.put_pair().headers["X-HubSpot-RateLimit-Remaining"] == "99"


class TestFaults:
    """Injected errors, scripts, hangs and latency."""

    def test_error_rate_one_fails_every_request_until_cleared(self, sim: Client, schemas: Any) -> None:
        """With error_rate 1.0 every call gets error_status with HubSpot's body; DELETE restores service."""
        sim.control("POST", "faults", {"error_rate": 1.0, "error_status": 502})
        answers = [sim.put_pair(), sim.batch([("1", "2")])]
        assert [a.status_code for a in answers] == [502, 502]
        for answer in answers:
            schemas(ASSOCIATIONS, "Error", answer.json())
        sim.control("DELETE", "faults")
        assert sim.put_pair().status_code == 200
        assert sim.pairs() == [("deals", "1", "contacts", "2")]

    def test_a_script_is_answered_in_order_and_records_nothing(self, sim: Client) -> None:
        """Scripted answers come in order, with their headers, before normal processing resumes."""
        script = [{"status": 429, "headers": {"Retry-After": "2"}}, {"status": 503}, {"status": 500}]
        sim.control("POST", "faults", {"script": script})
        answers = [sim.put_pair() for _ in range(4)]
        assert [a.status_code for a in answers] == [429, 503, 500, 200]
        assert answers[0].headers["Retry-After"] == "2"
        assert sim.control("GET", "faults")["script"] == []
        assert sim.pairs() == [("deals", "1", "contacts", "2")]

    def test_daily_policy(self, sim: Client) -> None:
        """A scripted DAILY 429 names the policy and the daily limit."""
        sim.control("POST", "faults", {"script": [{"status": 429, "policy": "DAILY"}]})
        body = sim.put_pair().json()
        assert (body["policyName"], body["message"]) == ("DAILY", "You have reached your daily limit.")

    @pytest.mark.parametrize(
        ("entry", "scopes"),
        [
            ({"status": 403}, ["crm.objects.deals.write"]),
            ({"status": 403, "missing_scopes": ["crm.objects.notes.write"]}, ["crm.objects.notes.write"]),
        ],
    )
    def test_403_names_the_missing_scopes(
        self, sim: Client, schemas: Any, entry: dict[str, Any], scopes: list[str]
    ) -> None:
        """A scripted 403 is MISSING_SCOPES with context.missingScopes."""
        sim.control("POST", "faults", {"script": [entry]})
        body = sim.put_pair().json()
        schemas(ASSOCIATIONS, "Error", body)
        assert (body["category"], body["context"]["missingScopes"]) == ("MISSING_SCOPES", scopes)

    @pytest.mark.parametrize("status", [400, 401, 404, 409, 423, 477, 500, 502, 503, 504, 521, 523, 524])
    def test_scripted_statuses_get_hubspot_error_bodies(self, sim: Client, schemas: Any, status: int) -> None:
        """Each scripted status answers with HubSpot's Error body; 477 also carries Retry-After."""
        sim.control("POST", "faults", {"script": [{"status": status}]})
        response = sim.put_pair()
        schemas(ASSOCIATIONS, "Error", response.json())
        assert response.status_code == status
        assert ("Retry-After" in response.headers) == (status == 477)

    def test_a_hang_outlasts_the_client_and_records_nothing(self, sim: Client) -> None:
        """A hung request times the client out, is logged as 504 once it ends, and associates nothing."""
        sim.control("POST", "faults", {"hang_rate": 1.0, "hang_ms": 1000})
        with pytest.raises(requests.ReadTimeout):
            sim.put_pair(timeout=(2, 0.2))
        sim.control("DELETE", "faults")
        hung = lambda: sim.control("GET", "requests")["by_status"].get("504")  # noqa: E731 - a one-line probe
        wait_for(hung, timeout=10, what="the hang to end")
        assert sim.pairs() == []
        assert sim.put_pair().status_code == 200

    def test_latency_is_added(self, sim: Client) -> None:
        """latency_ms delays the answer by at least that much."""
        sim.control("POST", "faults", {"latency_ms": 150})
        started = time.monotonic()
        assert sim.put_pair().status_code == 200
        assert time.monotonic() - started >= 0.15

    def test_endpoint_filter(self, sim: Client) -> None:
        """Faults limited to the batch endpoint leave the single PUT alone."""
        sim.control("POST", "faults", {"error_rate": 1.0, "endpoints": ["batch_associate_default"]})
        assert sim.put_pair().status_code == 200
        assert sim.batch([("1", "2")]).status_code == 503

    def test_a_dropped_connection(self, sim: Client) -> None:
        """A drop entry closes the connection without an answer."""
        sim.control("POST", "faults", {"script": [{"drop": True}]})
        with pytest.raises(requests.ConnectionError):
            sim.put_pair()
        assert sim.pairs() == []

    def test_bad_faults_are_refused_and_change_nothing(self, sim: Client) -> None:
        """A fault body with a bad key answers 400 naming it and leaves the faults as they were."""
        faults = {"error_rate": 0.5, "hang_rate": 7}
        response = requests.post(f"{sim.url}/_sim/faults", json=faults, timeout=10)
        assert response.status_code == 400
        assert "hang_rate" in response.json()["message"]
        assert sim.control("GET", "faults")["error_rate"] == 0.0


class TestRecords:
    """Record reads and search, for rule lookups."""

    SEED: ClassVar[dict[str, Any]] = {
        "records": [
            {"objectType": "contacts", "id": "101", "properties": {"email": "Ann@Example.com", "name": "A"}},
            {"objectType": "0-1", "id": "102", "properties": {"email": "bob@example.com"}},
            {"objectType": "company", "id": "201", "properties": {"domain": "example.com"}},
        ]
    }

    def test_read_a_seeded_record(self, sim: Client, schemas: Any) -> None:
        """A read answers the record with the requested properties, on both the 2026-03 and v3 paths."""
        assert sim.control("POST", "records", self.SEED) == {"seeded": 3}
        for path in ("/crm/objects/2026-03/contacts/101", "/crm/v3/objects/0-1/101"):
            response = sim.api("GET", path, params={"properties": "email,missing"})
            body = response.json()
            schemas(OBJECTS, "SimplePublicObjectWithAssociations", body)
            assert response.status_code == 200
            assert (body["id"], body["archived"]) == ("101", False)
            assert body["properties"] == {"hs_object_id": "101", "email": "Ann@Example.com"}
            assert ISO_MS_UTC.fullmatch(body["createdAt"])

    def test_an_unknown_record_answers_404(self, sim: Client, schemas: Any) -> None:
        """Reading a record that was not seeded is OBJECT_NOT_FOUND."""
        response = sim.api("GET", "/crm/objects/2026-03/contacts/999")
        schemas(OBJECTS, "Error", response.json())
        assert (response.status_code, response.json()["category"]) == (404, "OBJECT_NOT_FOUND")

    def test_search_by_email_ignores_case(self, sim: Client, schemas: Any) -> None:
        """An EQ search on email finds the record whatever the case, with the total."""
        sim.control("POST", "records", self.SEED)
        wanted = {"propertyName": "email", "operator": "EQ", "value": "ann@EXAMPLE.com"}
        query = {
            "filterGroups": [{"filters": [wanted]}],
            "properties": ["email"],
            "limit": 2,
        }
        for path in ("/crm/objects/2026-03/contacts/search", "/crm/v3/objects/contacts/search"):
            body = sim.api("POST", path, json=query).json()
            schemas(OBJECTS, "CollectionResponseWithTotalSimplePublicObject", body)
            assert (body["total"], [r["id"] for r in body["results"]]) == (1, ["101"])
        domain = {"filterGroups": [{"filters": [{"propertyName": "domain", "value": "EXAMPLE.COM"}]}]}
        assert sim.api("POST", "/crm/v3/objects/companies/search", json=domain).json()["total"] == 1

    def test_a_bad_search_answers_400(self, sim: Client, schemas: Any) -> None:
        """An unknown operator is a VALIDATION_ERROR naming the filter."""
        query = {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "LIKE", "value": "x"}]}]}
        response = sim.api("POST", "/crm/v3/objects/contacts/search", json=query)
        schemas(OBJECTS, "Error", response.json())
        assert response.status_code == 400
        assert "filterGroups[0].filters[0].operator" in response.json()["message"]


class TestOAuth:
    """Refreshing OAuth tokens and using them."""

    APP: ClassVar[dict[str, str]] = {
        "client_id": "cid-1",
        "client_secret": "secret-1",
        "refresh_token": "refresh-1",
        "portal_id": "62515",
    }

    def refresh(self, sim: Client, path: str = "/oauth/v1/token", **overrides: str) -> requests.Response:
        """POST a form-encoded refresh for the test app."""
        form = {"grant_type": "refresh_token", **{k: v for k, v in self.APP.items() if k != "portal_id"}}
        return requests.post(sim.url + path, data={**form, **overrides}, timeout=10)

    def test_a_refresh_issues_a_working_token(self, sim: Client, schemas: Any) -> None:
        """Both token paths answer an AccessTokenResponse whose token the API accepts."""
        sim.control("POST", "oauth-apps", self.APP)
        for path in ("/oauth/v1/token", "/oauth/2026-03/token"):
            body = self.refresh(sim, path).json()
            schemas(OAUTH, "AccessTokenResponse", body)
            assert (body["expires_in"], body["token_type"], body["hub_id"]) == (1800, "bearer", 62515)
            assert sim.put_pair(token=body["access_token"]).status_code == 200

    @pytest.mark.parametrize("wrong", [{"client_secret": "nope"}, {"refresh_token": "nope"}])
    def test_wrong_credentials_answer_bad_refresh_token(
        self,
        sim: Client,
        schemas: Any,
        wrong: dict[str, str],
    ) -> None:
        """A wrong client secret or refresh token answers 400 BAD_REFRESH_TOKEN."""
        sim.control("POST", "oauth-apps", self.APP)
        response = self.refresh(sim, **wrong)
        schemas(OAUTH, "Error", response.json())
        assert (response.status_code, response.json()["status"]) == (400, "BAD_REFRESH_TOKEN")

    def test_an_expired_token_answers_401(self, sim: Client, schemas: Any) -> None:
        """A token past oauth_token_ttl_s is refused with EXPIRED_AUTHENTICATION."""
        sim.control("PUT", "config", {"oauth_token_ttl_s": 0.3})
        sim.control("POST", "oauth-apps", self.APP)
        token = self.refresh(sim).json()["access_token"]

        def refused() -> list[requests.Response]:
            """The answer to a call with the token if it is a 401 (a Response itself is falsy for a 4xx)."""
            return [r for r in [sim.put_pair(token=token)] if r.status_code == 401]

        [expired] = wait_for(refused, timeout=10, what="the token to expire")
        schemas(ASSOCIATIONS, "Error", expired.json())
        assert expired.json()["category"] == "EXPIRED_AUTHENTICATION"


class TestControlApi:
    """The control API and the transport around it."""

    def test_requests_are_counted(self, sim: Client) -> None:
        """The log counts by status and endpoint, sums inputs, and shows only a token's last 4 characters."""
        sim.put_pair()
        sim.batch([("1", "2"), ("3", "4")])
        sim.put_pair(token=None)
        sim.api("GET", "/crm/objects/2026-03/contacts/1")
        seen = sim.control("GET", "requests")
        assert (seen["total"], seen["inputs_total"]) == (4, 3)
        assert seen["by_status"] == {"200": 2, "401": 1, "404": 1}
        assert seen["by_endpoint"] == {"associate_default": 2, "batch_associate_default": 1, "read_object": 1}
        assert seen["first_at"] <= seen["last_at"]
        assert [r["inputs"] for r in seen["recent"]][:2] == [1, 2]
        assert seen["recent"][0]["token_hint"] == TOKEN[-4:]
        assert TOKEN not in json.dumps(seen)

    def test_reset_clears_everything_but_the_start_up_configuration(self, sim: Client) -> None:
        """Reset empties associations, log, faults, records, invalid ids and OAuth apps; tokens stay."""
        sim.put_pair()
        sim.control("POST", "faults", {"error_rate": 0.5})
        sim.control("POST", "records", TestRecords.SEED)
        sim.control("POST", "invalid-ids", {"ids": ["9"]})
        sim.control("POST", "oauth-apps", TestOAuth.APP)
        sim.control("PUT", "config", {"tokens": ["another-token-123"]})
        assert sim.control("POST", "reset") == {"ok": True}
        assert sim.pairs() == []
        assert sim.control("GET", "requests")["total"] == 0
        assert sim.control("GET", "faults")["error_rate"] == 0.0
        assert sim.control("GET", "records")["records"] == []
        assert sim.control("GET", "invalid-ids")["ids"] == []
        assert TestOAuth().refresh(sim).json()["status"] == "BAD_CLIENT_ID"
        assert sim.put_pair().status_code == 200

    @pytest.mark.parametrize(
        ("method", "path", "status"),
        [
            ("GET", "/crm/v9/nothing", 404),
            ("GET", "/_sim/nothing", 404),
            ("POST", SINGLE.format(1, 2), 405),
            ("DELETE", "/_sim/associations", 405),
            ("PATCH", "/_sim/faults", 405),
        ],
    )
    def test_unknown_paths_and_wrong_methods(self, sim: Client, method: str, path: str, status: int) -> None:
        """Unknown paths answer 404 and wrong methods 405, in HubSpot's error shape."""
        response = sim.api(method, path)
        assert response.status_code == status
        assert {"status", "message", "correlationId", "category"} <= set(response.json())

    def test_health(self, sim: Client) -> None:
        """GET /_sim/health answers ok."""
        assert sim.control("GET", "health") == {"ok": True}

    def test_a_session_reuses_one_connection(self, sim: Client) -> None:
        """HTTP/1.1 keep-alive: a requests.Session sends 20 calls over one pooled connection."""
        with requests.Session() as session:
            session.headers.update(AUTH)
            answers = [session.put(sim.url + SINGLE.format(i, 2), timeout=10) for i in range(1, 21)]
            statuses = {a.status_code for a in answers}
            pools = session.get_adapter(sim.url).poolmanager.pools
            opened = sum(pools[key].num_connections for key in pools.keys())  # noqa: SIM118 - not a dict
            assert (statuses, opened) == ({200}, 1)

    def test_concurrent_batches_are_all_recorded(self, sim: Client) -> None:
        """Eight threads of 25 batches of 100 inputs record all 20,000 associations."""
        failures: list[int] = []

        def send(worker: int) -> None:
            """One thread's batches over one pooled connection."""
            with requests.Session() as session:
                session.headers.update(AUTH)
                for b in range(25):
                    base = (worker * 25 + b) * 100
                    inputs = [{"from": {"id": str(base + i + 1)}, "to": {"id": "7"}} for i in range(100)]
                    status = session.post(sim.url + BATCH, json={"inputs": inputs}, timeout=30).status_code
                    if status != 200:
                        failures.append(status)

        threads = [threading.Thread(target=send, args=(w,)) for w in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert failures == []
        assert sim.control("GET", "associations")["total"] == 20_000
        assert sim.control("GET", "requests")["inputs_total"] == 20_000


class TestCommandLine:
    """``python -m hubspot_sim`` as a process."""

    def test_serves_from_the_command_line_and_stops_on_sigterm(self, tmp_path: Path) -> None:
        """The CLI prints its URL, loads --seed, enforces --token and exits 0 on SIGTERM."""
        seed = tmp_path / "seed.json"
        seed.write_text(json.dumps(TestRecords.SEED), encoding="utf-8")
        argv = [sys.executable, "-m", "hubspot_sim", "--port", "0", "--token", TOKEN, "--seed", str(seed)]
        process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            ready, _, _ = select.select([process.stdout], [], [], 15)
            assert ready, "the simulator printed nothing within 15 s"
            assert process.stdout is not None
            line = process.stdout.readline().strip()
            match = re.fullmatch(r"hubspot_sim listening on (http://127\.0\.0\.1:\d+)", line)
            assert match, line
            client = Client(match.group(1))
            assert client.api("GET", "/crm/objects/2026-03/contacts/101").status_code == 200
            assert client.put_pair(token=OTHER_TOKEN).status_code == 401
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()

    def test_a_bad_flag_exits_2(self) -> None:
        """A malformed --rate-limit is refused at start with the argparse exit status."""
        argv = [sys.executable, "-m", "hubspot_sim", "--port", "0", "--rate-limit", "fast"]
        done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 2
        assert "rate limit" in done.stderr
