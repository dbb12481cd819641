"""The simulator's webhook sender without sockets: signatures, validation, and HubSpot's retry schedule.

The POST, the waits and the threads are injected: deliveries run inline and "wait" by recording how long.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from hubspot_sim.signatures import sign_v1, sign_v2, sign_v3, v3_uri
from hubspot_sim.webhook_sender import (
    MAX_ATTEMPTS,
    RETRY_DELAYS_S,
    DeliveryRequest,
    WebhookSender,
    is_loopback_url,
)

SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
URL = "http://127.0.0.1:9/hooks/hubspot?portal=1"


class Receiver:
    """A fake POST: answers from a list (an int status, or an exception to raise) and records each call."""

    def __init__(self, *answers: int | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, bytes, dict[str, str], float]] = []

    def __call__(self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> int:
        """Record the call; answer the next scripted outcome (the last one repeats)."""
        self.calls.append((url, body, dict(headers), timeout_s))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def sender(receiver: Receiver, waits: list[float], seen: list[Any] | None = None) -> WebhookSender:
    """A sender that posts to ``receiver``, runs inline and records its waits instead of waiting."""

    def wait(seconds: float) -> bool:
        """Record the wait; never stopping."""
        waits.append(seconds)
        return False

    def spawn(target: Callable[[], None]) -> None:
        """Run at once, on this thread."""
        target()

    on_sent = (lambda events: seen.append(events)) if seen is not None else None
    return WebhookSender(clock=lambda: 1_700_000_000.0, post=receiver, wait=wait, spawn=spawn, on_sent=on_sent)


def request(**overrides: Any) -> DeliveryRequest:
    """A valid deliver body with ``overrides`` applied, parsed."""
    body = {"url": URL, "clientSecret": SECRET, "events": [{"eventId": 1, "objectId": 5}], **overrides}
    return DeliveryRequest.parse(body)


class TestSignatures:
    """HubSpot's documented test vectors (docs/reference/hubspot.md §4.5)."""

    def test_v3_vector(self) -> None:
        """The official SDK's v3 vector."""
        body = b"{'example_field':'example_value'}"
        expected = "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y="
        assert sign_v3(SECRET, "POST", "https://www.example.com/webhook_uri", body, 1693657560000) == expected

    def test_v1_vector(self) -> None:
        """The documented v1 example."""
        body = (
            b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
            b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM",'
            b'"changeFlag":"NEW","appId":54321}]'
        )
        assert sign_v1(SECRET, body) == "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"

    def test_v2_vector(self) -> None:
        """The documented v2 example (a GET without a body)."""
        expected = "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
        assert sign_v2(SECRET, "GET", "https://www.example.com/webhook_uri", b"") == expected

    def test_only_the_listed_escapes_are_decoded_for_v3(self) -> None:
        """%3A and %2f decode; %20 and %26 stay."""
        assert v3_uri("http://h/a%3Ab%2fc?x=%20%26") == "http://h/a:b/c?x=%20%26"


class TestDeliveryRequest:
    """What POST /_sim/webhooks/deliver accepts."""

    @pytest.mark.parametrize(
        "url",
        [
            "http://10.0.0.1/hook",
            "http://example.com/hook",
            "https://api.hubapi.com/",
            "ftp://127.0.0.1/x",
            "http:///nohost",
            "http://[2001:db8::1]/",
        ],
    )
    def test_only_loopback_targets(self, url: str) -> None:
        """Anything but a loopback http(s) URL is refused, naming url."""
        assert not is_loopback_url(url)
        with pytest.raises(ValueError, match="url"):
            request(url=url)

    @pytest.mark.parametrize("url", ["http://127.0.0.1:8000/h", "https://127.5.5.5/h", "http://[::1]:9/h"])
    def test_loopback_addresses_are_accepted(self, url: str) -> None:
        """127.0.0.0/8 and ::1 are loopback."""
        assert is_loopback_url(url)

    @pytest.mark.parametrize(
        ("overrides", "named"),
        [
            ({"clientSecret": ""}, "clientSecret"),
            ({"events": []}, "events"),
            ({"events": [{}] * 101}, "events"),
            ({"events": [1]}, "events[0]"),
            ({"retryScale": 2}, "retryScale"),
            ({"retryScale": "fast"}, "retryScale"),
            ({"timeoutMs": 0}, "timeoutMs"),
            ({"signatureVersion": "v9"}, "signatureVersion"),
            ({"target": "x"}, "unknown keys"),
        ],
    )
    def test_bad_bodies_name_the_field(self, overrides: dict[str, Any], named: str) -> None:
        """Each bad field is named in the ValueError."""
        with pytest.raises(ValueError, match=named.replace("[", r"\[")):
            request(**overrides)


class TestDelivery:
    """One delivery: signed, retried on failure on the schedule, then delivered or failed."""

    def test_a_2xx_delivers_at_the_first_attempt_with_every_signature(self) -> None:
        """One POST, signed v3 over method + full URI + body + timestamp, and v1; attemptNumber 0."""
        receiver, waits = Receiver(204), []
        sent = sender(receiver, waits)
        delivery_id = sent.deliver(request())
        url, body, headers, timeout_s = receiver.calls[0]
        timestamp = int(headers["X-HubSpot-Request-Timestamp"])
        assert (url, timeout_s, waits) == (URL, 5.0, [])
        assert json.loads(body) == [{"eventId": 1, "objectId": 5, "attemptNumber": 0}]
        assert timestamp == 1_700_000_000_000
        assert headers["X-HubSpot-Signature-v3"] == sign_v3(SECRET, "POST", URL, body, timestamp)
        assert (headers["X-HubSpot-Signature"], headers["X-HubSpot-Signature-Version"]) == (sign_v1(SECRET, body), "v1")
        assert headers["Content-Type"] == "application/json"
        listed = sent.deliveries_json()["deliveries"]
        assert listed == [
            {
                "id": delivery_id,
                "url": URL,
                "events": 1,
                "state": "delivered",
                "attempts": [{"at": 1_700_000_000.0, "status": 204}],
                "nextAttemptAt": None,
            }
        ]

    def test_v2_on_request(self) -> None:
        """signatureVersion v2 puts the v2 signature in the legacy header."""
        receiver = Receiver(200)
        sender(receiver, []).deliver(request(signatureVersion="v2"))
        _, body, headers, _ = receiver.calls[0]
        assert (headers["X-HubSpot-Signature"], headers["X-HubSpot-Signature-Version"]) == (
            sign_v2(SECRET, "POST", URL, body),
            "v2",
        )

    def test_failures_are_retried_on_the_scaled_schedule_until_a_2xx(self) -> None:
        """A 500, a timeout and a refused connection are retried after 60, 300, 900 s (scaled); then 200."""
        receiver, waits = Receiver(500, TimeoutError(), ConnectionRefusedError("refused"), 200), []
        sent = sender(receiver, waits)
        sent.deliver(request(retryScale=0.5))
        assert waits == [30.0, 150.0, 450.0]
        attempts = sent.deliveries_json()["deliveries"][0]["attempts"]
        assert [a.get("status") or a["error"] for a in attempts] == [
            500,
            "timeout",
            "ConnectionRefusedError: refused",
            200,
        ]
        assert [json.loads(call[1])[0]["attemptNumber"] for call in receiver.calls] == [0, 1, 2, 3]
        assert sent.deliveries_json()["deliveries"][0]["state"] == "delivered"

    def test_4xx_is_retried_too(self) -> None:
        """HubSpot retries any 4xx (docs/reference/hubspot.md §4.4)."""
        receiver = Receiver(400, 200)
        sender(receiver, []).deliver(request())
        assert len(receiver.calls) == 2

    def test_it_gives_up_after_ten_retries_over_24_hours(self) -> None:
        """Eleven attempts in all, ten waits adding up to 24 hours; the delivery ends failed."""
        receiver, waits = Receiver(503), []
        sent = sender(receiver, waits)
        sent.deliver(request())
        assert MAX_ATTEMPTS == 11
        assert len(receiver.calls) == 11
        assert waits == list(RETRY_DELAYS_S)
        assert sum(waits) == 24 * 3600
        assert waits == sorted(waits)
        assert sent.deliveries_json()["deliveries"][0]["state"] == "failed"

    def test_each_attempt_is_signed_afresh(self) -> None:
        """Each retry's v3 signature matches its own body (a new attemptNumber)."""
        receiver = Receiver(500, 200)
        sender(receiver, []).deliver(request())
        for _, body, headers, _ in receiver.calls:
            timestamp = int(headers["X-HubSpot-Request-Timestamp"])
            assert headers["X-HubSpot-Signature-v3"] == sign_v3(SECRET, "POST", URL, body, timestamp)

    def test_events_are_handed_to_on_sent_once(self) -> None:
        """The journal hook sees a delivery's events once, however many attempts it takes."""
        seen: list[Any] = []
        sender(Receiver(500, 200), [], seen).deliver(request())
        assert seen == [({"eventId": 1, "objectId": 5},)]

    def test_clear_forgets_deliveries(self) -> None:
        """After clear() nothing is listed."""
        sent = sender(Receiver(200), [])
        sent.deliver(request())
        sent.clear()
        assert sent.deliveries_json() == {"deliveries": []}
