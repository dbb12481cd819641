"""The simulator's memory: associations, request log, faults, records, rate windows and OAuth tokens.

One lock guards everything, so the threaded server's handlers see consistent state. The clock is
injectable so that rate windows and token expiry can be tested without waiting.
"""

from __future__ import annotations

import random
import re
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def parse_rate(text: str | None) -> tuple[int, float] | None:
    """``100/10s`` → (100, 10.0); ``190/10000ms`` too; None or empty → no limit."""
    if not text:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*(ms|s)\s*", text)
    if not match:
        raise ValueError(f"expected N/<window>s, e.g. 100/10s, got {text!r}")
    window = float(match.group(2)) / (1000 if match.group(3) == "ms" else 1)
    return int(match.group(1)), window


@dataclass
class Faults:
    """Injected failures (see the control API in README.md)."""

    error_rate: float = 0.0
    error_status: int = 503
    hang_rate: float = 0.0
    hang_ms: int = 30_000
    latency_ms: int = 0
    script: list[dict[str, Any]] = field(default_factory=list)
    endpoints: list[str] | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "error_rate": self.error_rate,
            "error_status": self.error_status,
            "hang_rate": self.hang_rate,
            "hang_ms": self.hang_ms,
            "latency_ms": self.latency_ms,
            "script": list(self.script),
            "endpoints": self.endpoints,
        }


@dataclass(frozen=True)
class Decision:
    """What the fault layer decided for one request: nothing, a scripted/injected answer, a hang, latency."""

    latency_ms: int = 0
    hang_ms: int = 0
    answer: dict[str, Any] | None = None


class SimState:
    """All simulator state; every public method takes the lock."""

    def __init__(
        self,
        tokens: list[str] | None = None,
        rate_limit: str | None = None,
        search_rate_limit: str | None = None,
        latency_ms: int = 0,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._rng = rng or random.Random()
        self._start_tokens = list(tokens or [])
        self._start_rate = rate_limit
        self._start_search_rate = search_rate_limit
        self._start_latency = latency_ms
        self.reset()

    def reset(self) -> None:
        """Back to the start-up configuration: no associations, requests, faults, records or OAuth apps."""
        with self._lock:
            self.tokens: set[str] = set(self._start_tokens)
            self.rate = parse_rate(self._start_rate)
            self.search_rate = parse_rate(self._start_search_rate)
            self.base_latency_ms = self._start_latency
            self.oauth_token_ttl_s = 1800.0
            self.associations: dict[tuple[str, str, str, str], float] = {}
            self.windows: dict[str, deque[float]] = {}
            self.search_windows: dict[str, deque[float]] = {}
            self.total = 0
            self.by_status: Counter[str] = Counter()
            self.by_endpoint: Counter[str] = Counter()
            self.recent: deque[dict[str, Any]] = deque(maxlen=200)
            self.inputs_total = 0
            self.first_at: float | None = None
            self.last_at: float | None = None
            self.faults = Faults()
            self.records: dict[tuple[str, str], dict[str, Any]] = {}
            self.invalid_ids: dict[str, list[Any]] = {}  # id -> [status, remaining requests or None]
            self.oauth_apps: dict[str, dict[str, str]] = {}
            self.issued: dict[str, tuple[float, str]] = {}  # access token -> (expiry, portal)

    # --- configuration ---

    def configure(self, body: dict[str, Any]) -> None:
        """Apply ``PUT /_sim/config`` (rate_limit, search_rate_limit, oauth_token_ttl_s, latency_ms, tokens)."""
        with self._lock:
            if "rate_limit" in body:
                self.rate = parse_rate(body["rate_limit"])
                self.windows.clear()
            if "search_rate_limit" in body:
                self.search_rate = parse_rate(body["search_rate_limit"])
            if "oauth_token_ttl_s" in body:
                self.oauth_token_ttl_s = float(body["oauth_token_ttl_s"])
            if "latency_ms" in body:
                self.base_latency_ms = int(body["latency_ms"])
            if "tokens" in body:
                self.tokens = set(body["tokens"] or [])

    def set_faults(self, body: dict[str, Any]) -> None:
        """Merge ``POST /_sim/faults`` into the current faults."""
        with self._lock:
            for key in ("error_rate", "hang_rate"):
                if key in body:
                    setattr(self.faults, key, float(body[key]))
            for key in ("error_status", "hang_ms", "latency_ms"):
                if key in body:
                    setattr(self.faults, key, int(body[key]))
            if "script" in body:
                self.faults.script.extend(body["script"] or [])
            if "endpoints" in body:
                self.faults.endpoints = body["endpoints"]

    def clear_faults(self) -> None:
        """``DELETE /_sim/faults``."""
        with self._lock:
            self.faults = Faults()

    # --- auth and limits ---

    def authorised(self, token: str | None) -> bool:
        """True for a configured static token (any non-empty token when none is configured) or a live OAuth one."""
        if not token:
            return False
        with self._lock:
            issued = self.issued.get(token)
            if issued is not None:
                return issued[0] > self._clock()
            return not self.tokens or token in self.tokens

    def take(self, token: str, *, search: bool = False) -> tuple[bool, dict[str, str]]:
        """Count one request against the token's rolling window; (allowed, rate-limit headers)."""
        with self._lock:
            limit = self.search_rate if search else self.rate
            if limit is None:
                return True, {}
            windows = self.search_windows if search else self.windows
            window = windows.setdefault(token, deque())
            now = self._clock()
            while window and window[0] <= now - limit[1]:
                window.popleft()
            # Only accepted requests count: a client that keeps retrying into a 429 gets no further behind.
            allowed = len(window) < limit[0]
            if allowed:
                window.append(now)
            headers = (
                {}
                if search
                else {
                    "X-HubSpot-RateLimit-Max": str(limit[0]),
                    "X-HubSpot-RateLimit-Remaining": str(max(limit[0] - len(window), 0)),
                    "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(limit[1] * 1000)),
                }
            )
            return allowed, headers

    # --- faults ---

    def decide(self, endpoint: str) -> Decision:
        """What the fault layer does to this request (scripted answers come first, in order)."""
        with self._lock:
            f = self.faults
            latency = self.base_latency_ms + f.latency_ms
            if f.endpoints is not None and endpoint not in f.endpoints:
                return Decision(latency_ms=latency)
            if f.script:
                return Decision(latency_ms=latency, answer=f.script.pop(0))
            if f.hang_rate and self._rng.random() < f.hang_rate:
                return Decision(latency_ms=latency, hang_ms=f.hang_ms)
            if f.error_rate and self._rng.random() < f.error_rate:
                return Decision(latency_ms=latency, answer={"status": f.error_status})
            return Decision(latency_ms=latency)

    # --- records, invalid ids ---

    def seed_records(self, records: list[dict[str, Any]], normalise: Callable[[str], str | None]) -> int:
        """Add or replace records; returns how many."""
        with self._lock:
            for record in records:
                object_type = normalise(str(record["objectType"])) or str(record["objectType"])
                self.records[(object_type, str(record["id"]))] = dict(record.get("properties") or {})
            return len(records)

    def record(self, object_type: str, object_id: str) -> dict[str, Any] | None:
        """A seeded record's properties, or None."""
        with self._lock:
            found = self.records.get((object_type, object_id))
            return dict(found) if found is not None else None

    def search(self, object_type: str, filters: list[tuple[str, str]], limit: int) -> list[tuple[str, dict[str, Any]]]:
        """Records of ``object_type`` whose properties equal every (name, value), case-insensitively."""
        with self._lock:
            found = []
            for (rtype, rid), props in self.records.items():
                if rtype != object_type:
                    continue
                if all(str(props.get(name, "")).lower() == value.lower() for name, value in filters):
                    found.append((rid, dict(props)))
            return found[:limit] if limit else found

    def mark_invalid(self, ids: list[str], status: int, ttl_requests: int | None) -> None:
        """Make ids answer ``status`` (400 invalid / 404 not found), for the next ``ttl_requests`` mentions."""
        with self._lock:
            for i in ids:
                self.invalid_ids[str(i)] = [status, ttl_requests]

    def invalid_status(self, ids: tuple[str, ...]) -> tuple[int, list[str]] | None:
        """If any id is invalid now: (status, the invalid ids); counts the mention down."""
        with self._lock:
            bad = [i for i in ids if i in self.invalid_ids]
            if not bad:
                return None
            status = int(self.invalid_ids[bad[0]][0])
            for i in bad:
                remaining = self.invalid_ids[i][1]
                if remaining is not None:
                    remaining -= 1
                    if remaining <= 0:
                        del self.invalid_ids[i]
                    else:
                        self.invalid_ids[i][1] = remaining
            return status, bad

    # --- associations and the log ---

    def associate(self, pairs: list[tuple[str, str, str, str]]) -> None:
        """Record associations (a set: re-associating is an idempotent success)."""
        now = self._clock()
        with self._lock:
            for pair in pairs:
                self.associations.setdefault(pair, now)

    def log(self, *, method: str, path: str, status: int, endpoint: str, token: str | None, inputs: int = 0) -> None:
        """Count one API request."""
        now = self._clock()
        with self._lock:
            self.total += 1
            self.by_status[str(status)] += 1
            self.by_endpoint[endpoint] += 1
            if status == 200:
                self.inputs_total += inputs
            self.first_at = self.first_at or now
            self.last_at = now
            self.recent.append(
                {
                    "method": method,
                    "path": path,
                    "status": status,
                    "at": now,
                    "endpoint": endpoint,
                    "inputs": inputs,
                    "token_hint": (token or "")[-4:],
                }
            )

    def associations_json(self) -> dict[str, Any]:
        """``GET /_sim/associations``."""
        with self._lock:
            return {
                "associations": [
                    {"fromObjectType": a, "fromObjectId": b, "toObjectType": c, "toObjectId": d, "received_at": at}
                    for (a, b, c, d), at in self.associations.items()
                ]
            }

    def requests_json(self) -> dict[str, Any]:
        """``GET /_sim/requests``."""
        with self._lock:
            return {
                "total": self.total,
                "by_status": dict(self.by_status),
                "by_endpoint": dict(self.by_endpoint),
                "recent": list(self.recent),
                "inputs_total": self.inputs_total,
                "first_at": self.first_at,
                "last_at": self.last_at,
            }

    # --- OAuth ---

    def register_oauth_app(self, client_id: str, client_secret: str, refresh_token: str, portal_id: str) -> None:
        """``POST /_sim/oauth-apps``."""
        with self._lock:
            self.oauth_apps[client_id] = {"secret": client_secret, "refresh": refresh_token, "portal": portal_id}

    def refresh(self, client_id: str, client_secret: str, refresh_token: str) -> dict[str, Any] | None:
        """Issue an access token for a valid refresh; None when the app, secret or refresh token is wrong."""
        with self._lock:
            app = self.oauth_apps.get(client_id)
            if app is None or app["secret"] != client_secret or app["refresh"] != refresh_token:
                return None
            token = "sim-oauth-" + secrets.token_urlsafe(24)
            self.issued[token] = (self._clock() + self.oauth_token_ttl_s, app["portal"])
            return {
                "access_token": token,
                "refresh_token": refresh_token,
                "expires_in": int(self.oauth_token_ttl_s),
                "token_type": "bearer",
                "hub_id": int(app["portal"]) if app["portal"].isdigit() else app["portal"],
                "scopes": ["crm.objects.deals.write", "crm.objects.contacts.write"],
                "token_use": "access_token",
            }
