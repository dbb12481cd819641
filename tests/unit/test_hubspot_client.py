"""HubSpotClient's parsing of HubSpot's answers (narrow tests on a stubbed transport; the rest is integration)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
import responses

from hublink.domain.errors import (
    ConnectionFailedError,
    HubSpotTimeoutError,
    RateLimitedError,
    ServerError,
    TransientError,
    ValidationRejectedError,
)
from hublink.hubspot import HubSpotClient, parse_rate_headers, parse_retry_after

BASE = "https://api.hubapi.test"
TOKEN = "pat-na1-unit-token"
SINGLE = f"{BASE}/crm/objects/2026-03/deals/1/associations/default/contacts/2"
BATCH = f"{BASE}/crm/associations/2026-03/deals/contacts/batch/associate/default"


def ok(pairs: list[tuple[str, str]], errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A batch-shaped success body."""
    body: dict[str, Any] = {
        "status": "COMPLETE",
        "startedAt": "2026-01-01T00:00:00Z",
        "completedAt": "2026-01-01T00:00:01Z",
        "results": [
            {
                "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3},
                "from": {"id": f},
                "to": {"id": t},
            }
            for f, t in pairs
        ],
    }
    if errors:
        body["errors"] = errors
        body["numErrors"] = len(errors)
    return body


class RecordingSession(requests.Session):
    """A Session that remembers the keyword arguments of every request."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[dict[str, Any]] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        """Record, then send."""
        self.calls.append(kwargs)
        return super().request(method, url, *args, **kwargs)


@pytest.fixture
def session() -> RecordingSession:
    """A recording session."""
    return RecordingSession()


@pytest.fixture
def client(session: RecordingSession) -> HubSpotClient:
    """A client with short timeouts."""
    return HubSpotClient(BASE, connect_timeout_s=1.5, read_timeout_s=4.0, session=session)


class TestSingle:
    """The seed's single PUT."""

    @responses.activate
    def test_success_is_parsed(self, client: HubSpotClient) -> None:
        """A 200 naming the pair links it."""
        responses.put(SINGLE, json=ok([("1", "2")]))
        assert client.associate_default(TOKEN, "deals", "1", "contacts", "2").linked == {("1", "2")}

    @responses.activate
    def test_every_call_carries_token_user_agent_and_timeouts(
        self, client: HubSpotClient, session: RecordingSession
    ) -> None:
        """The request has the bearer token, a HubLink User-Agent, and both timeouts."""
        responses.put(SINGLE, json=ok([("1", "2")]))
        client.associate_default(TOKEN, "deals", "1", "contacts", "2")
        sent = responses.calls[0].request
        assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
        assert sent.headers["User-Agent"].startswith("HubLink/")
        assert session.calls[0]["timeout"] == (1.5, 4.0)

    @responses.activate
    def test_a_200_with_errors_is_a_failure(self, client: HubSpotClient) -> None:
        """A 200 with numErrors > 0 raises the error of its entry."""
        entry = {
            "status": "error",
            "category": "VALIDATION_ERROR",
            "message": "One or more associations are invalid",
            "context": {"INVALID_OBJECT_IDS": ["CONTACT=2 is not valid"], "objectId": ["2"]},
        }
        responses.put(SINGLE, json=ok([], [entry]))
        with pytest.raises(ValidationRejectedError) as info:
            client.associate_default(TOKEN, "deals", "1", "contacts", "2")
        assert info.value.invalid_object_ids == ("2",)

    @responses.activate
    def test_daily_429(self, client: HubSpotClient) -> None:
        """A 429 with policyName DAILY is a RateLimitedError with policy DAILY."""
        responses.put(
            SINGLE,
            status=429,
            json={
                "status": "error",
                "errorType": "RATE_LIMIT",
                "policyName": "DAILY",
                "message": "You have reached your daily limit.",
            },
        )
        with pytest.raises(RateLimitedError) as info:
            client.associate_default(TOKEN, "deals", "1", "contacts", "2")
        assert info.value.policy == "DAILY"

    @responses.activate
    def test_non_json_502(self, client: HubSpotClient) -> None:
        """A 502 with an HTML body is a ServerError whose message comes from the text."""
        responses.put(SINGLE, status=502, body="<html>Bad Gateway</html>")
        with pytest.raises(ServerError) as info:
            client.associate_default(TOKEN, "deals", "1", "contacts", "2")
        assert "Bad Gateway" in str(info.value)
        assert TOKEN not in str(info.value) + repr(info.value)

    @responses.activate
    def test_timeouts_and_connection_errors(self, client: HubSpotClient) -> None:
        """A connect timeout and a refused connection map to their transient classes."""
        responses.put(SINGLE, body=requests.ConnectTimeout("slow"))
        with pytest.raises(HubSpotTimeoutError):
            client.associate_default(TOKEN, "deals", "1", "contacts", "2")
        responses.replace(responses.PUT, SINGLE, body=requests.ConnectionError("refused"))
        with pytest.raises(ConnectionFailedError):
            client.associate_default(TOKEN, "deals", "1", "contacts", "2")


class TestBatch:
    """The batch endpoint and per-input outcomes."""

    @responses.activate
    def test_mixed_outcomes_map_to_each_pair(self, client: HubSpotClient) -> None:
        """One pair linked, one named by an error, one missing from the answer: each gets its own outcome."""
        entry = {
            "status": "error",
            "category": "VALIDATION_ERROR",
            "message": "One or more associations are invalid",
            "context": {"INVALID_OBJECT_IDS": ["DEAL=666 is not valid"], "objectId": ["666"]},
        }
        responses.post(BATCH, json=ok([("1", "2")], [entry]))
        result = client.associate_default_batch(TOKEN, "deals", "contacts", [("1", "2"), ("666", "2"), ("3", "2")])
        assert result.linked == {("1", "2")}
        assert isinstance(result.failed[("666", "2")], ValidationRejectedError)
        assert type(result.failed[("3", "2")]) is TransientError
        body = json.loads(responses.calls[0].request.body)
        assert body == {"inputs": [{"from": {"id": f}, "to": {"id": "2"}} for f in ("1", "666", "3")]}


class TestHeaders:
    """Retry-After and the rate-limit headers."""

    def test_retry_after_seconds_and_http_date(self) -> None:
        """Retry-After is read as seconds or as an HTTP date relative to now."""
        assert parse_retry_after("7", now=0) == 7.0
        assert parse_retry_after("Thu, 01 Jan 1970 00:00:30 GMT", now=10.0) == 20.0
        assert parse_retry_after("soon", now=0) is None
        assert parse_retry_after(None, now=0) is None

    def test_rate_headers(self) -> None:
        """The three rate-limit headers parse together, or not at all."""
        headers = {
            "X-HubSpot-RateLimit-Max": "100",
            "X-HubSpot-RateLimit-Remaining": "42",
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
        }
        parsed = parse_rate_headers(headers)
        assert parsed is not None
        assert (parsed.max, parsed.remaining, parsed.interval_ms) == (100, 42, 10000)
        assert parse_rate_headers({"X-HubSpot-RateLimit-Max": "100"}) is None
