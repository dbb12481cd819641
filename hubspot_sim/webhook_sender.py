"""The webhook sender: signs a batch of events as HubSpot does and POSTs it, retrying on HubSpot's schedule.

``POST /_sim/webhooks/deliver`` hands it ``{"url", "clientSecret", "events", "retryScale"?}``; each delivery
runs on its own daemon thread and is listed by ``GET /_sim/webhooks/deliveries`` with its attempts.

HubSpot's rules (docs/reference/hubspot.md §4.2, §4.4, §4.5): at most 100 events a POST; a delivery fails when the
connection fails, the receiver takes longer than 5 seconds, or it answers anything but 2xx; a failed
delivery is retried up to 10 times over the next 24 hours. HubSpot does not publish the exact spacing
("varying delays"); ``RETRY_DELAYS_S`` is ours, growing and ending 24 hours after the first attempt, without
HubSpot's per-notification randomisation so that tests are repeatable. ``retryScale`` multiplies it
(0.0001 turns 24 hours into under 9 seconds). Each attempt re-signs the body, since HubSpot sends each
event's ``attemptNumber`` (0 on the first) and a fresh ``X-HubSpot-Request-Timestamp``.

Only loopback targets are accepted (the simulator must never send traffic off the machine), and redirects
are never followed, for the same reason.
"""

from __future__ import annotations

import http.client
import ipaddress
import itertools
import json
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from hubspot_sim.signatures import signed_headers

MAX_EVENTS = 100  # HubSpot sends at most 100 events per request (docs/reference/hubspot.md §4.2)
TIMEOUT_S = 5.0  # past this HubSpot counts the attempt as failed (§4.4)
#: Seconds to wait after each failed attempt before the next: 10 retries, the last 24 h after the first try.
RETRY_DELAYS_S = (60, 300, 900, 1800, 3600, 5400, 7200, 14400, 21600, 31140)
MAX_ATTEMPTS = 1 + len(RETRY_DELAYS_S)
LEGACY_VERSIONS = ("v1", "v2")
USER_AGENT = "HubSpot Connect 2.0 (http://dev.hubspot.com/) (hubspot_sim webhook sender)"
_DELIVER_KEYS = frozenset({"url", "clientSecret", "events", "retryScale", "timeoutMs", "signatureVersion"})

#: Sends one POST: (url, body, headers, timeout_s) -> HTTP status. Raises OSError (incl. timeouts).
Post = Callable[[str, bytes, Mapping[str, str], float], int]


def is_loopback_url(url: str) -> bool:
    """True for an http(s) URL whose host is a loopback address, or ``localhost`` resolving only to one."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    host = parts.hostname
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if host.lower() != "localhost":
        return False  # no other names: resolving one could lead anywhere
    try:
        infos = socket.getaddrinfo(host, parts.port or 80, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def post_http(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> int:
    """POST ``body`` to ``url`` with http.client (which never follows redirects); returns the status."""
    parts = urlsplit(url)
    connection_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_type(parts.hostname or "", parts.port, timeout=timeout_s)
    try:
        path = parts.path or "/"
        connection.request("POST", f"{path}?{parts.query}" if parts.query else path, body, dict(headers))
        response = connection.getresponse()
        response.read()
        return int(response.status)
    finally:
        connection.close()


@dataclass(frozen=True, slots=True)
class DeliveryRequest:
    """A validated ``POST /_sim/webhooks/deliver`` body."""

    url: str
    client_secret: str = field(repr=False)
    events: tuple[Mapping[str, Any], ...]
    retry_scale: float = 1.0
    timeout_s: float = TIMEOUT_S
    legacy_version: str = "v1"

    @classmethod
    def parse(cls, raw: Any) -> DeliveryRequest:
        """Validate a deliver body. Raises ValueError naming the bad field (a non-loopback ``url`` too)."""
        if not isinstance(raw, dict):
            raise ValueError('expected {"url", "clientSecret", "events": [...], "retryScale"?}')
        unknown = sorted(set(raw) - _DELIVER_KEYS)
        if unknown:
            raise ValueError(f"unknown keys {unknown}; expected some of {sorted(_DELIVER_KEYS)}")
        url = raw.get("url")
        if not isinstance(url, str) or not url:
            raise ValueError(f"url: expected an http(s) URL, got {url!r}")
        if not is_loopback_url(url):
            raise ValueError(f"url: only loopback targets (127.0.0.0/8, ::1, localhost) may be sent to, got {url!r}")
        secret = raw.get("clientSecret")
        if not isinstance(secret, str) or not secret:
            raise ValueError("clientSecret: expected a non-empty string")
        events = raw.get("events")
        if not isinstance(events, list) or not 1 <= len(events) <= MAX_EVENTS:
            raise ValueError(f"events: expected a list of 1 to {MAX_EVENTS} events (HubSpot's batch cap)")
        for i, event in enumerate(events):
            if not isinstance(event, dict):
                raise ValueError(f"events[{i}]: expected an object, got {event!r}")
        scale = raw.get("retryScale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not 0 <= scale <= 1:
            raise ValueError(f"retryScale: expected a number from 0 to 1, got {scale!r}")
        timeout_ms = raw.get("timeoutMs", TIMEOUT_S * 1000)
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int | float) or not 0 < timeout_ms <= 60_000:
            raise ValueError(f"timeoutMs: expected milliseconds above 0, at most 60000, got {timeout_ms!r}")
        legacy = raw.get("signatureVersion", "v1")
        if legacy not in LEGACY_VERSIONS:
            raise ValueError(f"signatureVersion: expected one of {list(LEGACY_VERSIONS)}, got {legacy!r}")
        return cls(url, secret, tuple(events), float(scale), float(timeout_ms) / 1000, legacy)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One POST of a delivery: when (epoch seconds), and the status received or the error met."""

    at: float
    status: int | None = None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        """True for a 2xx answer."""
        return self.status is not None and 200 <= self.status < 300

    def as_dict(self) -> dict[str, Any]:
        """JSON form: ``{"at", "status"}`` or ``{"at", "error"}``."""
        if self.status is not None:
            return {"at": self.at, "status": self.status}
        return {"at": self.at, "error": self.error}


@dataclass(slots=True)
class Delivery:
    """One delivery's progress: ``pending`` while attempts remain, then ``delivered`` or ``failed``."""

    delivery_id: str
    request: DeliveryRequest
    attempts: list[Attempt] = field(default_factory=list)
    state: str = "pending"
    next_attempt_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON form for ``GET /_sim/webhooks/deliveries``."""
        return {
            "id": self.delivery_id,
            "url": self.request.url,
            "events": len(self.request.events),
            "state": self.state,
            "attempts": [attempt.as_dict() for attempt in self.attempts],
            "nextAttemptAt": self.next_attempt_at,
        }


class WebhookSender:
    """Runs deliveries on background threads and remembers each one (thread-safe).

    ``post``, ``clock``, ``wait`` (returns True when the sender is stopping) and ``spawn`` are injectable,
    so unit tests deliver without sockets, threads or waiting. ``on_sent`` sees each delivery's events once,
    at its first attempt (the webhooks journal keeps them).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        post: Post = post_http,
        wait: Callable[[float], bool] | None = None,
        spawn: Callable[[Callable[[], None]], None] | None = None,
        on_sent: Callable[[tuple[Mapping[str, Any], ...]], object] | None = None,
    ) -> None:
        self._clock = clock
        self._post = post
        self._stopping = threading.Event()
        self._wait = wait or self._stopping.wait
        self._spawn = spawn or _daemon_thread
        self._on_sent = on_sent
        self._lock = threading.Lock()
        self._deliveries: dict[str, Delivery] = {}
        self._ids = itertools.count(1)
        self._generation = 0

    def deliver(self, request: DeliveryRequest, *, journal: bool = True) -> str:
        """Start delivering; returns the delivery id at once.

        ``journal`` False: ``on_sent`` does not see the events (the caller journals them by its own rule).
        """
        with self._lock:
            delivery = Delivery(f"d{next(self._ids)}", request)
            self._deliveries[delivery.delivery_id] = delivery
            generation = self._generation
        if journal and self._on_sent is not None:
            self._on_sent(request.events)
        self._spawn(lambda: self._run(delivery, generation))
        return delivery.delivery_id

    def deliveries_json(self) -> dict[str, Any]:
        """``GET /_sim/webhooks/deliveries``: every delivery in the order started."""
        with self._lock:
            return {"deliveries": [delivery.as_dict() for delivery in self._deliveries.values()]}

    def clear(self) -> None:
        """Forget every delivery; those still running stop before their next attempt."""
        with self._lock:
            self._deliveries.clear()
            self._generation += 1

    def stop(self) -> None:
        """Wake every waiting delivery and stop it (the server is shutting down)."""
        self._stopping.set()

    def _run(self, delivery: Delivery, generation: int) -> None:
        request = delivery.request
        for attempt_number in range(MAX_ATTEMPTS):
            attempt = self._attempt(request, attempt_number)
            with self._lock:
                if generation != self._generation:
                    return
                delivery.attempts.append(attempt)
                if attempt.succeeded:
                    delivery.state, delivery.next_attempt_at = "delivered", None
                    return
                if attempt_number + 1 == MAX_ATTEMPTS:
                    delivery.state, delivery.next_attempt_at = "failed", None
                    return
                delay_s = RETRY_DELAYS_S[attempt_number] * request.retry_scale
                delivery.next_attempt_at = self._clock() + delay_s
            if self._wait(delay_s) or self._stopping.is_set():
                return

    def _attempt(self, request: DeliveryRequest, attempt_number: int) -> Attempt:
        events = [{**event, "attemptNumber": attempt_number} for event in request.events]
        body = json.dumps(events, separators=(",", ":")).encode()
        now = self._clock()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            **signed_headers(request.client_secret, request.url, body, int(now * 1000), request.legacy_version),
        }
        try:
            status = self._post(request.url, body, headers, request.timeout_s)
        except TimeoutError:
            return Attempt(now, error="timeout")
        except (OSError, http.client.HTTPException) as exc:
            return Attempt(now, error=f"{type(exc).__name__}: {exc}")
        return Attempt(now, status=status)


def _daemon_thread(target: Callable[[], None]) -> None:
    threading.Thread(target=target, name="hubspot-sim-webhook", daemon=True).start()
