"""HubSpotClient's parsing of HubSpot's answers, on a stubbed transport (the rest is the integration tier)."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import responses
from hypothesis import example, given

from hublink.delivery.hubspot import HubSpotClient, error_for_entry, parse_rate_headers, parse_retry_after
from hublink.domain.errors import (
    AuthError,
    ConnectionFailedError,
    DeliveryError,
    ForbiddenError,
    HubSpotTimeoutError,
    NotFoundError,
    RateHeaders,
    RateLimitedError,
    ServerError,
    TransientError,
    ValidationRejectedError,
)
from tests.unit.strategies import association_answer_bodies

BASE = "https://api.hubapi.test"
TOKEN = "pat-na1-0f0f0f0f-1234-5678-9abc-def012345678"
SINGLE = f"{BASE}/crm/objects/2026-03/deals/1/associations/default/contacts/2"
BATCH = f"{BASE}/crm/associations/2026-03/deals/contacts/batch/associate/default"
READ = f"{BASE}/crm/objects/2026-03/deals/1"
SEARCH = f"{BASE}/crm/objects/2026-03/contacts/search"
OAUTH = f"{BASE}/oauth/2026-03/token"
LEGACY_OAUTH = f"{BASE}/oauth/v1/token"
CONNECT_TIMEOUT_S, READ_TIMEOUT_S = 1.5, 4.0
RATE_HEADERS = {
    "X-HubSpot-RateLimit-Max": "190",
    "X-HubSpot-RateLimit-Remaining": "42",
    "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
}
#: HubSpot's invalid-id entry (docs/reference/hubspot.md §3.1), naming deal 666.
INVALID_DEAL_666 = {
    "status": "error",
    "category": "VALIDATION_ERROR",
    "message": "One or more associations are invalid",
    "context": {"INVALID_OBJECT_IDS": ["DEAL=666 is not valid"], "objectId": ["666"], "objectType": ["DEAL"]},
}


def answer(pairs: list[tuple[Any, Any]], errors: list[Any] | None = None) -> dict[str, Any]:
    """A BatchResponsePublicDefaultAssociation body (docs/reference/hubspot.md §1.2) linking ``pairs``."""
    body: dict[str, Any] = {
        "status": "COMPLETE",
        "startedAt": "2026-04-01T00:00:00Z",
        "completedAt": "2026-04-01T00:00:01Z",
        "results": [
            {
                "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3},
                "from": {"id": f},
                "to": {"id": t},
            }
            for f, t in pairs
        ],
    }
    if errors is not None:
        body["errors"] = errors
        body["numErrors"] = len(errors)
    return body


class RecordingSession(requests.Session):
    """A Session that remembers the keyword arguments of every request it is asked to make."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[dict[str, Any]] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        """Record the keyword arguments, then send as usual."""
        self.calls.append(kwargs)
        return super().request(method, url, *args, **kwargs)


@pytest.fixture
def session() -> RecordingSession:
    """A fresh recording session."""
    return RecordingSession()


@pytest.fixture
def client(session: RecordingSession) -> HubSpotClient:
    """A client on the recording session with short, distinct timeouts."""
    return HubSpotClient(BASE, connect_timeout_s=CONNECT_TIMEOUT_S, read_timeout_s=READ_TIMEOUT_S, session=session)


def associate_one(client: HubSpotClient) -> Any:
    """Associate deal 1 with contact 2 through the single PUT."""
    return client.associate_default(TOKEN, "deals", "1", "contacts", "2")


def raised_by(client: HubSpotClient, call: Callable[[HubSpotClient], Any] = associate_one) -> DeliveryError:
    """The DeliveryError that ``call`` raises."""
    with pytest.raises(DeliveryError) as info:
        call(client)
    return info.value


class TestSingleAssociation:
    """The single PUT: one pair, one answer."""

    @responses.activate
    def test_a_success_links_the_pair(self, client: HubSpotClient) -> None:
        """A 200 naming the pair in results[] links it, with the rate headers and correlation id read."""
        responses.put(SINGLE, json=answer([("1", "2")]), headers={**RATE_HEADERS, "X-HubSpot-Correlation-Id": "c-77"})
        result = associate_one(client)
        assert result.linked == {("1", "2")}
        assert result.failed == {}
        assert result.rate == RateHeaders(190, 42, 10000)
        assert result.correlation_id == "c-77"

    @responses.activate
    def test_the_request_is_a_bodiless_put_to_the_documented_path(self, client: HubSpotClient) -> None:
        """The call is PUT /crm/objects/2026-03/deals/1/associations/default/contacts/2 with no body."""
        responses.put(SINGLE, json=answer([("1", "2")]))
        associate_one(client)
        sent = responses.calls[0].request
        assert (sent.method, sent.url, sent.body) == ("PUT", SINGLE, None)

    @responses.activate
    @pytest.mark.parametrize(
        ("entry", "expected"),
        [
            (
                {**INVALID_DEAL_666, "context": {"INVALID_OBJECT_IDS": ["CONTACT=2 is not valid"]}},
                ValidationRejectedError,
            ),
            ({"category": "OBJECT_NOT_FOUND", "message": "gone"}, NotFoundError),
            ({"category": "MISSING_SCOPES", "context": {"missingScopes": ["crm.objects.deals.write"]}}, ForbiddenError),
            ({"category": "RATE_LIMIT", "message": "slow down"}, RateLimitedError),
            ({"category": "SOMETHING_NEW", "message": "?"}, TransientError),
        ],
        ids=["invalid-ids", "not-found", "missing-scopes", "rate-limit", "unexplained"],
    )
    def test_a_200_with_errors_raises_the_class_of_its_entry(
        self, client: HubSpotClient, entry: dict[str, Any], expected: type[DeliveryError]
    ) -> None:
        """A 200 with numErrors > 0 and an errors[] entry raises that entry's class, not success."""
        responses.put(SINGLE, json=answer([], [entry]))
        assert type(raised_by(client)) is expected

    @responses.activate
    def test_an_invalid_ids_entry_names_the_ids(self, client: HubSpotClient) -> None:
        """A 200 whose entry calls contact 2 invalid raises a ValidationRejectedError naming id 2."""
        entry = {**INVALID_DEAL_666, "context": {"INVALID_OBJECT_IDS": ["CONTACT=2 is not valid"], "objectId": ["2"]}}
        responses.put(SINGLE, json=answer([], [entry]))
        error = raised_by(client)
        assert isinstance(error, ValidationRejectedError)
        assert error.invalid_object_ids == ("2",)

    @responses.activate
    def test_a_200_that_does_not_name_the_pair_is_transient(self, client: HubSpotClient) -> None:
        """A 200 with neither a result nor an error for the pair is retried, not taken as success."""
        responses.put(SINGLE, json={"status": "PENDING", "results": []})
        error = raised_by(client)
        assert type(error) is TransientError
        assert "missing" in str(error)

    @responses.activate
    def test_a_non_json_200_is_a_server_error(self, client: HubSpotClient) -> None:
        """A 200 whose body is not JSON is a ServerError, not a success."""
        responses.put(SINGLE, body="<html>OK</html>", status=200)
        assert type(raised_by(client)) is ServerError

    @responses.activate
    def test_a_success_in_both_directions_counts_once(self, client: HubSpotClient) -> None:
        """HubSpot answering with both directions links the asked pair and nothing else."""
        responses.put(SINGLE, json=answer([("1", "2"), ("2", "1")]))
        assert associate_one(client).linked == {("1", "2")}


class TestHttpErrors:
    """Non-2xx answers become the error class of their status, with HubSpot's details."""

    @responses.activate
    def test_401_is_an_auth_error(self, client: HubSpotClient) -> None:
        """A 401 raises AuthError with HubSpot's message and correlation id."""
        body = {"status": "error", "message": "Authentication credentials not found.", "correlationId": "c-401"}
        responses.put(SINGLE, status=401, json=body)
        error = raised_by(client)
        assert type(error) is AuthError
        assert (error.status, error.correlation_id) == (401, "c-401")

    @responses.activate
    def test_403_names_the_missing_scopes(self, client: HubSpotClient) -> None:
        """A 403 raises ForbiddenError carrying context.missingScopes."""
        body = {"category": "MISSING_SCOPES", "context": {"missingScopes": ["crm.objects.contacts.write"]}}
        responses.put(SINGLE, status=403, json=body)
        error = raised_by(client)
        assert isinstance(error, ForbiddenError)
        assert error.detail.missing_scopes == ("crm.objects.contacts.write",)

    @responses.activate
    def test_a_daily_429_names_its_policy(self, client: HubSpotClient) -> None:
        """A 429 with policyName DAILY (docs/reference/hubspot.md §2.3) raises RateLimitedError, policy DAILY."""
        body = {
            "status": "error",
            "message": "You have reached your daily limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": "c-429",
            "policyName": "DAILY",
            "requestId": "r-1",
        }
        responses.put(SINGLE, status=429, json=body, headers=RATE_HEADERS)
        error = raised_by(client)
        assert isinstance(error, RateLimitedError)
        assert (error.policy, error.category, error.retry_after_s) == ("DAILY", "RATE_LIMIT", None)
        assert error.detail.rate == RateHeaders(190, 42, 10000)

    @responses.activate
    def test_a_429_retry_after_in_seconds_is_read(self, client: HubSpotClient) -> None:
        """A 429 with Retry-After: 3 carries retry_after_s 3.0."""
        responses.put(SINGLE, status=429, json={"policyName": "TEN_SECONDLY_ROLLING"}, headers={"Retry-After": "3"})
        error = raised_by(client)
        assert isinstance(error, RateLimitedError)
        assert (error.policy, error.retry_after_s) == ("TEN_SECONDLY_ROLLING", 3.0)

    @responses.activate
    def test_a_429_retry_after_as_an_http_date_is_read(self, client: HubSpotClient) -> None:
        """A 429 with Retry-After as an HTTP date two minutes ahead carries about 120 s."""
        when = email.utils.formatdate(time.time() + 120, usegmt=True)
        responses.put(SINGLE, status=429, json={}, headers={"Retry-After": when})
        error = raised_by(client)
        assert isinstance(error, RateLimitedError)
        assert error.retry_after_s is not None
        assert 100.0 <= error.retry_after_s <= 121.0

    @responses.activate
    def test_a_non_json_502_is_a_server_error_with_the_text(self, client: HubSpotClient) -> None:
        """A 502 with an HTML body raises ServerError whose message comes from the text."""
        responses.put(SINGLE, status=502, body="<html><h1>502 Bad Gateway</h1></html>")
        error = raised_by(client)
        assert type(error) is ServerError
        assert error.status == 502
        assert "502 Bad Gateway" in str(error)

    @responses.activate
    def test_a_huge_non_json_body_is_cut_short(self, client: HubSpotClient) -> None:
        """A 503 with a megabyte of HTML gives a message of at most 200 characters."""
        responses.put(SINGLE, status=503, body="x" * 1_000_000)
        assert len(str(raised_by(client))) <= 200

    @responses.activate
    def test_477_carries_its_retry_after(self, client: HubSpotClient) -> None:
        """A 477 (migration in progress) raises ServerError with Retry-After as its hint."""
        responses.put(SINGLE, status=477, json={"message": "Migration in progress"}, headers={"Retry-After": "600"})
        error = raised_by(client)
        assert isinstance(error, ServerError)
        assert error.retry_after_s == 600.0


class TestTransport:
    """Failures before any answer: timeouts and broken connections."""

    @responses.activate
    @pytest.mark.parametrize(
        ("failure", "expected"),
        [
            (requests.ConnectTimeout("connect timed out"), HubSpotTimeoutError),
            (requests.ReadTimeout("read timed out"), HubSpotTimeoutError),
            (requests.ConnectionError("connection refused"), ConnectionFailedError),
            (requests.exceptions.ChunkedEncodingError("reset"), ConnectionFailedError),
        ],
        ids=["connect-timeout", "read-timeout", "refused", "reset"],
    )
    def test_transport_failures_map_to_transient_classes(
        self, client: HubSpotClient, failure: Exception, expected: type[DeliveryError]
    ) -> None:
        """A timeout is a HubSpotTimeoutError, a refused or reset connection a ConnectionFailedError; no status."""
        responses.put(SINGLE, body=failure)
        error = raised_by(client)
        assert type(error) is expected
        assert error.status is None
        assert str(error).startswith("PUT /crm/objects/2026-03/deals/1/associations/default/contacts/2: ")


class TestBatch:
    """The batch endpoint: per-input outcomes mapped back to each pair."""

    @responses.activate
    def test_mixed_outcomes_map_to_each_pair(self, client: HubSpotClient) -> None:
        """One pair linked, one named by INVALID_OBJECT_IDS, one absent from the answer: each gets its own outcome."""
        responses.post(BATCH, json=answer([("1", "2")], [INVALID_DEAL_666]))
        result = client.associate_default_batch(TOKEN, "deals", "contacts", [("1", "2"), ("666", "2"), ("3", "2")])
        assert result.linked == {("1", "2")}
        assert set(result.failed) == {("666", "2"), ("3", "2")}
        assert type(result.failed[("666", "2")]) is ValidationRejectedError
        assert type(result.failed[("3", "2")]) is TransientError

    @responses.activate
    def test_the_request_body_lists_every_pair_in_order(self, client: HubSpotClient) -> None:
        """The batch is one POST whose inputs are the pairs in order, as {from: {id}, to: {id}}."""
        responses.post(BATCH, json=answer([("1", "2"), ("3", "4")]))
        client.associate_default_batch(TOKEN, "deals", "contacts", [("1", "2"), ("3", "4")])
        sent = responses.calls[0].request
        assert (sent.method, sent.url) == ("POST", BATCH)
        assert json.loads(sent.body) == {
            "inputs": [{"from": {"id": "1"}, "to": {"id": "2"}}, {"from": {"id": "3"}, "to": {"id": "4"}}]
        }

    @responses.activate
    def test_numeric_ids_in_the_answer_still_match(self, client: HubSpotClient) -> None:
        """Results naming ids as JSON numbers link the pairs sent as strings."""
        responses.post(BATCH, json=answer([(1, 2), (3, 4)]))
        assert client.associate_default_batch(TOKEN, "deals", "contacts", [("1", "2"), ("3", "4")]).linked == {
            ("1", "2"),
            ("3", "4"),
        }

    @responses.activate
    def test_an_error_naming_a_shared_id_fails_every_pair_with_it(self, client: HubSpotClient) -> None:
        """An error calling contact 9 invalid fails both pairs that name contact 9, and only those."""
        entry = {**INVALID_DEAL_666, "context": {"INVALID_OBJECT_IDS": ["CONTACT=9 is not valid"], "objectId": ["9"]}}
        responses.post(BATCH, json=answer([("1", "2")], [entry]))
        result = client.associate_default_batch(TOKEN, "deals", "contacts", [("1", "2"), ("3", "9"), ("5", "9")])
        assert result.linked == {("1", "2")}
        assert {pair: type(err) for pair, err in result.failed.items()} == {
            ("3", "9"): ValidationRejectedError,
            ("5", "9"): ValidationRejectedError,
        }

    @responses.activate
    def test_an_error_naming_no_id_blames_no_pair(self, client: HubSpotClient) -> None:
        """In a batch, an errors[] entry naming no id leaves the unlinked pairs transient rather than blamed."""
        responses.post(BATCH, json=answer([("1", "2")], [{"category": "VALIDATION_ERROR", "message": "?"}]))
        result = client.associate_default_batch(TOKEN, "deals", "contacts", [("1", "2"), ("3", "4")])
        assert result.linked == {("1", "2")}
        assert type(result.failed[("3", "4")]) is TransientError

    @responses.activate
    def test_a_207_is_read_like_a_200(self, client: HubSpotClient) -> None:
        """A 207 multi-status answer is parsed per pair, like a 200 (docs/reference/hubspot.md §1.2)."""
        responses.post(BATCH, status=207, json=answer([("1", "2")], [INVALID_DEAL_666]))
        result = client.associate_default_batch(TOKEN, "deals", "contacts", [("1", "2"), ("666", "2")])
        assert result.linked == {("1", "2")}
        assert type(result.failed[("666", "2")]) is ValidationRejectedError

    @responses.activate
    def test_a_failed_call_raises_for_the_whole_batch(self, client: HubSpotClient) -> None:
        """A 401 on the batch call raises AuthError rather than failing pairs one by one."""
        responses.post(BATCH, status=401, json={"message": "expired"})
        with pytest.raises(AuthError):
            client.associate_default_batch(TOKEN, "deals", "contacts", [("1", "2"), ("3", "4")])

    @given(body=association_answer_bodies)
    @example(body={"results": 5})
    @example(body={"errors": [{"category": "VALIDATION_ERROR", "context": {"INVALID_OBJECT_IDS": 7}}]})
    def test_any_2xx_body_gives_each_pair_one_outcome(self, body: object) -> None:
        """Whatever JSON a 2xx carries, each pair is linked or failed (exactly one), or a DeliveryError is raised."""
        pairs = [("1", "2"), ("3", "4")]
        client = HubSpotClient(BASE, connect_timeout_s=1.0, read_timeout_s=1.0, session=requests.Session())
        with responses.RequestsMock() as stub:
            stub.post(BATCH, json=body)
            try:
                result = client.associate_default_batch(TOKEN, "deals", "contacts", pairs)
            except DeliveryError:
                return
        assert result.linked <= set(pairs)
        assert set(result.failed) == set(pairs) - result.linked
        assert all(isinstance(error, DeliveryError) for error in result.failed.values())


#: Each token-bearing client method: HTTP method, URL, a 200 body for it, and how to call it.
CALLS: dict[str, tuple[str, str, Any, Callable[[HubSpotClient], Any]]] = {
    "associate_default": ("PUT", SINGLE, answer([("1", "2")]), associate_one),
    "associate_default_batch": (
        "POST",
        BATCH,
        answer([("1", "2")]),
        lambda c: c.associate_default_batch(TOKEN, "deals", "contacts", [("1", "2")]),
    ),
    "read_object": (
        "GET",
        READ,
        {"id": "1", "properties": {"x": "1"}},
        lambda c: c.read_object(TOKEN, "deals", "1", ["x"]),
    ),
    "search_ids": (
        "POST",
        SEARCH,
        {"results": [{"id": "7"}]},
        lambda c: c.search_ids(TOKEN, "contacts", "email", "a@b"),
    ),
}


class TestEveryRequest:
    """Every request carries the token, a HubLink User-Agent and both timeouts."""

    @responses.activate
    @pytest.mark.parametrize("name", CALLS)
    def test_each_call_sends_bearer_token_user_agent_and_timeouts(
        self, client: HubSpotClient, session: RecordingSession, name: str
    ) -> None:
        """Each token-bearing call sends Authorization: Bearer <token>, a HubLink/ User-Agent and both timeouts."""
        method, url, body, call = CALLS[name]
        responses.add(method, url, json=body)
        call(client)
        sent = responses.calls[0].request
        assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
        assert sent.headers["User-Agent"].startswith("HubLink/")
        assert sent.headers["Accept"] == "application/json"
        assert [kwargs["timeout"] for kwargs in session.calls] == [(CONNECT_TIMEOUT_S, READ_TIMEOUT_S)]

    @responses.activate
    def test_a_failing_call_also_had_its_timeouts(self, client: HubSpotClient, session: RecordingSession) -> None:
        """A call that ends in a 500 was still made with both timeouts."""
        responses.put(SINGLE, status=500, json={})
        raised_by(client)
        assert session.calls[0]["timeout"] == (CONNECT_TIMEOUT_S, READ_TIMEOUT_S)

    @responses.activate
    def test_the_token_refresh_sends_no_bearer_token(self, client: HubSpotClient, session: RecordingSession) -> None:
        """The OAuth refresh posts a form with no Authorization header, but with the User-Agent and timeouts."""
        responses.post(OAUTH, json={"access_token": "new", "expires_in": 1800})
        assert client.refresh_token("id", "secret", "refresh")["access_token"] == "new"
        sent = responses.calls[0].request
        assert "Authorization" not in sent.headers
        assert sent.headers["User-Agent"].startswith("HubLink/")
        assert parse_qs(sent.body)["grant_type"] == ["refresh_token"]
        assert session.calls[0]["timeout"] == (CONNECT_TIMEOUT_S, READ_TIMEOUT_S)

    @responses.activate
    def test_the_refresh_falls_back_to_v1_only_where_2026_03_is_not_served(self, client: HubSpotClient) -> None:
        """A 404 from /oauth/2026-03/token (a host without it) retries at /oauth/v1/token; nothing else does."""
        responses.post(OAUTH, status=404, json={"status": "error", "message": "not found"})
        responses.post(LEGACY_OAUTH, json={"access_token": "old-path", "expires_in": 1800})
        assert client.refresh_token("id", "secret", "refresh")["access_token"] == "old-path"
        assert [c.request.url for c in responses.calls] == [OAUTH, LEGACY_OAUTH]

    @responses.activate
    def test_a_refused_refresh_does_not_fall_back(self, client: HubSpotClient) -> None:
        """A 400 from the 2026-03 endpoint (a revoked refresh token) is HubSpot's answer: no v1 call."""
        responses.post(OAUTH, status=400, json={"status": "BAD_REFRESH_TOKEN", "message": "revoked"})
        with pytest.raises(DeliveryError):
            client.refresh_token("id", "secret", "refresh")
        assert len(responses.calls) == 1

    @responses.activate
    def test_a_portal_host_overrides_the_base_url(self, client: HubSpotClient) -> None:
        """An EU portal's calls go to its baseUrl."""
        eu = "https://api-eu1.hubapi.test"
        responses.put(SINGLE.replace(BASE, eu), json=answer([("1", "2")]))
        client.associate_default(TOKEN, "deals", "1", "contacts", "2", base_url=eu)
        assert responses.calls[0].request.url.startswith(eu)

    @pytest.mark.parametrize(
        ("headers", "expected"),
        [
            ({"X-HubSpot-RateLimit-Daily": "250000", "X-HubSpot-RateLimit-Daily-Remaining": "12"}, (250000, 12)),
            ({"X-HubSpot-RateLimit-Daily": "250000"}, None),
            ({"X-HubSpot-RateLimit-Daily": "x", "X-HubSpot-RateLimit-Daily-Remaining": "1"}, None),
        ],
    )
    def test_the_daily_headers_are_read_when_both_came(
        self, headers: dict[str, str], expected: tuple[int, int] | None
    ) -> None:
        """X-HubSpot-RateLimit-Daily and -Daily-Remaining are read together, or not at all."""
        rate = parse_rate_headers(headers)
        assert (None if rate is None else (rate.daily, rate.daily_remaining)) == expected

    @responses.activate
    def test_a_client_without_a_session_still_names_itself(self) -> None:
        """A client that makes its own session sends the HubLink User-Agent too."""
        responses.put(SINGLE, json=answer([("1", "2")]))
        associate_one(HubSpotClient(BASE, connect_timeout_s=1.0, read_timeout_s=1.0))
        assert responses.calls[0].request.headers["User-Agent"].startswith("HubLink/")


class TestTokenNeverShown:
    """No error the client raises shows the token it was given."""

    @responses.activate
    @pytest.mark.parametrize(
        "stub",
        [
            {"status": 401, "json": {"message": "Authentication credentials not found.", "correlationId": "c"}},
            {"status": 403, "json": {"category": "MISSING_SCOPES", "context": {"missingScopes": ["a"]}}},
            {"status": 429, "json": {"policyName": "DAILY"}, "headers": {"Retry-After": "5"}},
            {"status": 502, "body": "<html>Bad Gateway</html>"},
            {"status": 200, "json": answer([], [INVALID_DEAL_666 | {"context": {"objectId": ["2"]}}])},
            {"status": 200, "body": "not json"},
            {"status": 200, "json": {"status": "COMPLETE", "results": []}},
            {"body": requests.ConnectTimeout("timed out")},
            {"body": requests.ReadTimeout("timed out")},
            {"body": requests.ConnectionError("refused")},
        ],
        ids=[
            "401",
            "403",
            "429",
            "502-html",
            "200-errors",
            "200-not-json",
            "200-missing",
            "connect",
            "read",
            "refused",
        ],
    )
    def test_no_raised_error_shows_the_token(self, client: HubSpotClient, stub: dict[str, Any]) -> None:
        """str() and repr() of every error the client raises are free of the token."""
        responses.put(SINGLE, **stub)
        error = raised_by(client)
        assert TOKEN not in str(error)
        assert TOKEN not in repr(error)
        assert TOKEN not in repr(error.detail)


class TestErrorForEntry:
    """error_for_entry: one errors[] entry of a 2xx answer to its class."""

    @pytest.mark.parametrize(
        ("category", "expected"),
        [
            ("OBJECT_NOT_FOUND", NotFoundError),
            ("NOT_FOUND", NotFoundError),
            ("VALIDATION_ERROR", ValidationRejectedError),
            ("INVALID_PARAMS", ValidationRejectedError),
            ("CONFLICT", ValidationRejectedError),
            ("MISSING_SCOPES", ForbiddenError),
            ("FORBIDDEN", ForbiddenError),
            ("RATE_LIMIT", RateLimitedError),
            ("RATE_LIMITS", RateLimitedError),
            ("validation_error", ValidationRejectedError),
            ("NEVER_SEEN_BEFORE", TransientError),
            (None, TransientError),
        ],
    )
    def test_categories_map_to_classes(self, category: str | None, expected: type[DeliveryError]) -> None:
        """Each known category (any case) maps to its class, and an unexplained one is retried as transient."""
        assert type(error_for_entry({"category": category}, None)) is expected

    def test_missing_scopes_make_it_forbidden_whatever_the_category(self) -> None:
        """An entry with context.missingScopes is a ForbiddenError even without a category."""
        assert type(error_for_entry({"context": {"missingScopes": ["x"]}}, None)) is ForbiddenError

    @pytest.mark.parametrize("entry", [None, "error", 3, [], {"context": "x", "message": ["m"]}], ids=repr)
    def test_an_odd_entry_is_transient(self, entry: object) -> None:
        """An entry that is not an object, or has odd fields, is a TransientError rather than a crash."""
        assert type(error_for_entry(entry, None)) is TransientError


class TestRetryAfter:
    """parse_retry_after: seconds or an HTTP date, else None."""

    @pytest.mark.parametrize(
        ("value", "now", "expected"),
        [
            ("7", 0.0, 7.0),
            (" 7 ", 0.0, 7.0),
            ("0", 0.0, 0.0),
            ("2.5", 0.0, 2.5),
            ("-5", 0.0, 0.0),
            ("Thu, 01 Jan 1970 00:00:30 GMT", 10.0, 20.0),
            ("Thu, 01 Jan 1970 00:00:30 GMT", 100.0, 0.0),
            ("Wed, 01 Apr 2026 12:00:00 GMT", 1775044800.0 - 60, 60.0),
        ],
    )
    def test_seconds_and_http_dates_are_read(self, value: str, now: float, expected: float) -> None:
        """Seconds are taken as they are and a date as the time until it; nothing is negative."""
        assert parse_retry_after(value, now=now) == expected

    @pytest.mark.parametrize("value", [None, "", "soon", "Thu, 99 Foo 1970", "12 parsecs"])
    def test_anything_else_is_no_hint(self, value: str | None) -> None:
        """A missing, empty or unreadable Retry-After gives no hint."""
        assert parse_retry_after(value, now=0.0) is None

    @pytest.mark.parametrize("value", ["nan", "NaN", "inf", "Infinity", "-inf", "1e400"])
    def test_non_finite_numbers_are_no_hint(self, value: str) -> None:
        """A Retry-After of NaN or infinity gives no hint rather than a delay no scheduler can use."""
        assert parse_retry_after(value, now=0.0) is None


class TestRateHeaders:
    """parse_rate_headers: HubSpot's three rate-limit headers together, or nothing."""

    def test_all_three_headers_parse(self) -> None:
        """Max, Remaining and Interval-Milliseconds become a RateHeaders."""
        assert parse_rate_headers(RATE_HEADERS) == RateHeaders(max=190, remaining=42, interval_ms=10000)

    @pytest.mark.parametrize("missing", sorted(RATE_HEADERS))
    def test_a_missing_header_gives_none(self, missing: str) -> None:
        """Without any one of the three headers there is no rate reading."""
        assert parse_rate_headers({k: v for k, v in RATE_HEADERS.items() if k != missing}) is None

    @pytest.mark.parametrize("value", ["", "ten", "1.5"])
    def test_a_non_integer_header_gives_none(self, value: str) -> None:
        """A header that is not an integer spoils the reading rather than raising."""
        assert parse_rate_headers({**RATE_HEADERS, "X-HubSpot-RateLimit-Remaining": value}) is None

    @responses.activate
    def test_header_names_are_case_insensitive_on_answers(self, client: HubSpotClient) -> None:
        """Headers HubSpot sends in lower case are read from the answer all the same."""
        responses.put(SINGLE, json=answer([("1", "2")]), headers={k.lower(): v for k, v in RATE_HEADERS.items()})
        assert associate_one(client).rate == RateHeaders(190, 42, 10000)
