"""The circuit breaker per portal: stop calling HubSpot for a portal whose calls cannot succeed, then probe.

A revoked or wrong token (a 401 on a private app's token, a 401 on an OAuth token just refreshed, an OAuth
refresh HubSpot refuses), a token missing scopes (a 403 for a whole call), or a run of 5xx answers and
timeouts (``HUBLINK_CIRCUIT_ERRORS`` within ``HUBLINK_CIRCUIT_WINDOW_S``; the OAuth token endpoint's 429s
and 5xx count too) *opens* the portal's circuit.
While it is open, the portal's lanes are paused (the ``circuit:<portal>`` field of the ``paused`` hash,
read by claim.lua): the drain that tripped it hands its claimed work back without spending an attempt,
nothing is dead-lettered for it, and every other drain of the portal claims nothing. Every
``HUBLINK_CIRCUIT_PROBE_S`` one drain (whichever takes the ``circuit:<portal>:probe`` slot) sends one real
association as a probe; any answer from HubSpot that is not itself a reason to open (a 2xx, or a 404 for
that pair) closes the circuit and wakes the portal's lanes. Alerts for both changes are sent by
``hublink.ops.alerts`` from the ``circuits`` hash, never from here.

The decision is pure (:func:`trip_for`, :func:`trip_for_credentials`, :func:`counts_toward_run`,
:func:`run_trip`); :class:`Breaker` applies it to a :class:`CircuitStore`: :class:`RedisCircuitStore`, or
:class:`MemoryCircuitStore` for unit tests. Keys owned: ``circuits``, ``circuit:<portal>:errors``,
``circuit:<portal>:probe``, and the ``circuit:<portal>`` field of ``paused`` (through
``hublink.delivery.pauses``). Fails closed: raises StoreUnavailableError when Redis does not answer.

**Uninstalled apps** (docs/reference/hubspot.md §9.6). A refresh token HubSpot refuses as
``BAD_REFRESH_TOKEN``, or the journal's app-lifecycle ``APP_UNINSTALL`` event, opens the circuit with the
reason ``app_uninstalled``: the portal is *uninstalled*. Its circuit is probed every
``HUBLINK_UNINSTALLED_PROBE_S`` (an hour) instead, and the probe is a token refresh, never a call with a
token HubSpot revoked: a refresh that works (a reinstall, or a new refresh token in the portals file)
closes it and the backlog goes out. Its work waits ``HUBLINK_UNINSTALLED_HOLD_H`` from the uninstall, then
every drain of its lanes dead-letters it as ``app_uninstalled`` without a call (:class:`Uninstall`). The
alert is the circuit's, sent once per change.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Protocol

from redis import Redis

from hublink.delivery.pauses import MemoryPauses, PauseStore
from hublink.domain.errors import (
    AuthError,
    ConnectionFailedError,
    DeliveryError,
    ForbiddenError,
    HubSpotTimeoutError,
    PermanentError,
    ServerError,
    TokenEndpointError,
    UnknownPortalError,
)
from hublink.store.connections import store_errors, text
from hublink.store.counters import Counters
from hublink.store.keys import Keys, pause_field

log = logging.getLogger("hublink.delivery.circuit")

#: Why a circuit opens, and what an operator should do about it (the alert says both).
ADVICE = {
    "token_rejected": (
        "Replace the portal's private-app token (HUBSPOT_ACCESS_TOKEN or its token_env in HUBLINK_PORTALS_FILE) "
        "and restart the workers; the circuit closes by itself at the next successful probe."
    ),
    "oauth_rejected": (
        "HubSpot refuses the portal's OAuth tokens even after a refresh: check that the app is still installed "
        "in the portal; the circuit closes by itself at the next successful probe."
    ),
    "oauth_refresh_failed": (
        "HubSpot refused to refresh the portal's OAuth token: reinstall the app in the portal and update its "
        "refresh token (refresh_token_env in HUBLINK_PORTALS_FILE), then restart the workers."
    ),
    "missing_scopes": (
        "The token lacks scopes the association calls need: add them to the app (for OAuth, reinstall it) "
        "and update the token; the circuit closes by itself at the next successful probe."
    ),
    "app_uninstalled": (
        "The app was uninstalled from this portal (HubSpot refused its refresh token, or the journal said so). "
        "Nothing is called for it; its work waits HUBLINK_UNINSTALLED_HOLD_H hours, then is dead-lettered as "
        "app_uninstalled. Install the app again (and put the new refresh token in the portals file if it changed): "
        "a token refresh is tried every HUBLINK_UNINSTALLED_PROBE_S, or resume at once with "
        "`hublink resume --portal <portal>`."
    ),
    "server_errors": (
        "HubSpot keeps failing for this portal (5xx answers or timeouts): check status.hubspot.com; nothing is "
        "lost, the work waits and a probe closes the circuit when HubSpot answers again."
    ),
}


@dataclass(frozen=True, slots=True)
class Trip:
    """Why a portal's circuit opens: one of :data:`ADVICE`'s reasons and what HubSpot said (never a token)."""

    reason: str
    message: str

    @property
    def advice(self) -> str:
        """What an operator should do."""
        return ADVICE[self.reason]


def _said(error: DeliveryError) -> str:
    """What HubSpot said, for operators: status, category, message and correlation id."""
    parts = [f"HTTP {error.status}" if error.status else type(error).__name__]
    if error.category:
        parts.append(error.category)
    if error.detail.message:
        parts.append(error.detail.message[:200])
    if error.correlation_id:
        parts.append(f"correlationId {error.correlation_id}")
    return ", ".join(parts)


def trip_for(error: DeliveryError, *, refreshable: bool, refreshed: bool) -> Trip | None:
    """The trip a whole call's failure causes at once, or None (it may still count toward a run).

    ``refreshable``: the token is an OAuth token; ``refreshed``: it was refreshed just before this call
    (a 401 on any other OAuth token is first answered by a refresh, not by opening the circuit).
    """
    if isinstance(error, AuthError):
        if not refreshable:
            return Trip("token_rejected", f"HubSpot refused the private-app token: {_said(error)}")
        if refreshed:
            return Trip("oauth_rejected", f"HubSpot refused a freshly refreshed OAuth token: {_said(error)}")
        return None
    if isinstance(error, ForbiddenError):
        scopes = ", ".join(error.detail.missing_scopes) or "not named"
        return Trip("missing_scopes", f"HubSpot refused the call for missing scopes ({scopes}): {_said(error)}")
    return None


#: The reason of an uninstalled portal's circuit (and the dead-letter reason of its work after the hold).
UNINSTALLED = "app_uninstalled"
#: HubSpot's name for a refresh token it no longer honours: the app was uninstalled (or its token revoked).
BAD_REFRESH_TOKEN = "BAD_REFRESH_TOKEN"  # noqa: S105 - HubSpot's error name, not a secret


def is_uninstall_refusal(error: DeliveryError) -> bool:
    """True for the token endpoint's 400 ``BAD_REFRESH_TOKEN`` (docs/reference/hubspot.md §9.6)."""
    return isinstance(error, PermanentError) and (error.detail.sub_category or "").upper() == BAD_REFRESH_TOKEN


def trip_for_credentials(error: DeliveryError) -> Trip | None:
    """The trip a failure to get a portal's token causes: a refresh HubSpot refused for good, else None."""
    if is_uninstall_refusal(error):
        return Trip(UNINSTALLED, f"HubSpot refused the portal's refresh token as {BAD_REFRESH_TOKEN}: {_said(error)}")
    if isinstance(error, PermanentError) and not isinstance(error, UnknownPortalError):
        return Trip("oauth_refresh_failed", f"HubSpot refused to refresh the OAuth token: {_said(error)}")
    return None


def counts_toward_run(error: DeliveryError) -> bool:
    """True for the failures a run of which opens the circuit: 5xx (and 423, 477, 52x) and timeouts, and the
    OAuth token endpoint's 429s and 5xx (a portal without a token cannot be served either)."""
    return isinstance(error, ServerError | HubSpotTimeoutError | ConnectionFailedError | TokenEndpointError)


def run_trip(count: int, threshold: int, window_s: float, error: DeliveryError) -> Trip | None:
    """The trip once ``count`` failures in the window reach ``threshold``, else None."""
    if count < threshold:
        return None
    return Trip("server_errors", f"{count} failed calls within {window_s:g} s, the last: {_said(error)}")


def is_circuit_error(error: DeliveryError | None) -> bool:
    """True for an outcome that says nothing about the association itself (handed back when a circuit opens)."""
    if error is None:
        return False
    return isinstance(error, AuthError | ForbiddenError) or counts_toward_run(error) or error.status in (401, 403)


@dataclass(frozen=True, slots=True, kw_only=True)
class CircuitSettings:
    """The breaker's thresholds (from Settings)."""

    errors: int = 20
    window_s: float = 60.0
    probe_s: float = 30.0
    #: An uninstalled portal's probe interval, and how long its work waits for a reinstall.
    uninstalled_probe_s: float = 3600.0
    uninstalled_hold_s: float = 72 * 3600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Circuit:
    """One portal's circuit as the ``circuits`` hash keeps it (JSON): open or closed, why, since when."""

    portal: str
    state: str
    reason: str
    message: str
    opened_ms: int
    closed_ms: int = 0

    @property
    def is_open(self) -> bool:
        """True while calls for the portal are stopped."""
        return self.state == "open"

    @property
    def advice(self) -> str:
        """What an operator should do about it."""
        return ADVICE.get(self.reason, "")

    @property
    def is_uninstalled(self) -> bool:
        """True while the app is uninstalled from the portal (the circuit is open for that reason)."""
        return self.is_open and self.reason == UNINSTALLED

    def to_json(self) -> str:
        """The stored form."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> Circuit:
        """Read the stored form (raises ValueError for something else)."""
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise ValueError("circuit: expected a JSON object")
        return cls(
            portal=str(body["portal"]),
            state=str(body["state"]),
            reason=str(body.get("reason", "")),
            message=str(body.get("message", "")),
            opened_ms=int(body.get("opened_ms", 0)),
            closed_ms=int(body.get("closed_ms", 0)),
        )


class CircuitStore(Protocol):
    """Where circuits live: Redis (:class:`RedisCircuitStore`) or memory (:class:`MemoryCircuitStore`)."""

    def count_error(self, portal: str, window_ms: int) -> int:
        """Count one failure in the portal's current window; the count so far."""
        ...

    def open(self, circuit: Circuit, probe_ms: int) -> bool:
        """Open (pause the portal's lanes, hold the probe slot ``probe_ms``); True if it was closed."""
        ...

    def take_probe(self, portal: str, probe_ms: int) -> int:
        """0 if the caller may probe now (the slot is then held ``probe_ms``), else ms until it may."""
        ...

    def close(self, portal: str, now_ms: int) -> Circuit | None:
        """Close (resume the portal's lanes, wake them); the closed circuit, or None if it was not open."""
        ...

    def circuits(self) -> list[Circuit]:
        """Every portal's circuit that ever opened, by portal."""
        ...

    def get(self, portal: str) -> Circuit | None:
        """The portal's circuit record, or None if it never opened."""
        ...

    def reopen(self, circuit: Circuit, probe_ms: int) -> bool:
        """Record ``circuit`` over an open one of another reason (its pause stays); True if it did."""
        ...


@dataclass(frozen=True, slots=True)
class Uninstall:
    """What an uninstalled portal's drain does now: dead-letter its work (the hold is over), or wait ``wait_ms``."""

    circuit: Circuit
    hold_ends_ms: int

    def expired(self, now_ms: int) -> bool:
        """True once the hold is over: the portal's work is dead-lettered as ``app_uninstalled``."""
        return now_ms >= self.hold_ends_ms


class Breaker:
    """Applies the pure decision to a store: records failures, opens, hands out probes, closes."""

    def __init__(
        self, store: CircuitStore, settings: CircuitSettings, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock

    @property
    def probe_ms(self) -> int:
        """The probe interval in ms."""
        return max(int(self._settings.probe_s * 1000), 1)

    @property
    def uninstalled_probe_ms(self) -> int:
        """An uninstalled portal's probe interval in ms."""
        return max(int(self._settings.uninstalled_probe_s * 1000), 1)

    @property
    def hold_h(self) -> float:
        """How long (hours) an uninstalled portal's work waits for a reinstall."""
        return self._settings.uninstalled_hold_s / 3600

    def circuit(self, portal: str) -> Circuit | None:
        """The portal's circuit record, or None."""
        return self._store.get(portal)

    def uninstall(self, portal: str) -> Uninstall | None:
        """The portal's uninstall while it lasts (its circuit open as ``app_uninstalled``), else None."""
        circuit = self._store.get(portal)
        if circuit is None or not circuit.is_uninstalled:
            return None
        return Uninstall(circuit, circuit.opened_ms + int(self._settings.uninstalled_hold_s * 1000))

    def park_ms(self, portal: str) -> int:
        """How long a lane whose work went back for the portal's circuit parks: the probe interval, or for an
        uninstalled portal the hourly probe or the hold's end, whichever comes first."""
        uninstall = self.uninstall(portal)
        if uninstall is None:
            return self.probe_ms
        left = uninstall.hold_ends_ms - int(self._clock() * 1000)
        return max(min(self.uninstalled_probe_ms, left), 1000 if left > 0 else 1)

    def uninstalled(self, portal: str, how: str) -> bool:
        """The app was uninstalled from ``portal`` (``how``: what said so): True if that is news."""
        return self._open(portal, Trip(UNINSTALLED, f"the app was uninstalled: {how}"))

    def failed(self, portal: str, error: DeliveryError, *, refreshable: bool, refreshed: bool = False) -> Trip | None:
        """Record a whole call's failure; the trip if it opens (or would have opened) the portal's circuit."""
        trip = trip_for(error, refreshable=refreshable, refreshed=refreshed)
        if trip is None and counts_toward_run(error):
            count = self._store.count_error(portal, int(self._settings.window_s * 1000))
            trip = run_trip(count, self._settings.errors, self._settings.window_s, error)
        if trip is not None:
            self._open(portal, trip)
        return trip

    def failed_credentials(self, portal: str, error: DeliveryError) -> Trip | None:
        """Record a failure to get the portal's token; the trip if it opens (or would have opened) the circuit.

        A refusal for good opens it at once; the token endpoint's 429s and 5xx count toward a run.
        """
        trip = trip_for_credentials(error)
        if trip is None and counts_toward_run(error):
            count = self._store.count_error(portal, int(self._settings.window_s * 1000))
            trip = run_trip(count, self._settings.errors, self._settings.window_s, error)
        if trip is not None:
            self._open(portal, trip)
        return trip

    def _open(self, portal: str, trip: Trip) -> bool:
        now_ms = int(self._clock() * 1000)
        circuit = Circuit(portal=portal, state="open", reason=trip.reason, message=trip.message, opened_ms=now_ms)
        uninstalled = trip.reason == UNINSTALLED
        probe_ms = self.uninstalled_probe_ms if uninstalled else self.probe_ms
        # An uninstall found while the circuit is open for another reason replaces that reason: what holds
        # the work, how often it is probed and when it ends all change (and operators are told once).
        if self._store.open(circuit, probe_ms) or (uninstalled and self._store.reopen(circuit, probe_ms)):
            log.warning(
                "circuit opened: calls for the portal stop until a probe succeeds",
                extra={"portal_id": portal, "reason": trip.reason, "detail": trip.message},
            )
            return True
        return False

    def probe_wait_ms(self, portal: str, *, uninstalled: bool = False) -> int:
        """0 when the caller should probe the open circuit now (one caller per interval), else ms to wait."""
        return self._store.take_probe(portal, self.uninstalled_probe_ms if uninstalled else self.probe_ms)

    def answered(self, portal: str) -> bool:
        """HubSpot answered a probe: close the circuit; True if this call closed it."""
        closed = self._store.close(portal, int(self._clock() * 1000))
        if closed is not None:
            log.warning(
                "circuit closed: HubSpot answered the probe",
                extra={
                    "portal_id": portal,
                    "reason": closed.reason,
                    "open_s": (closed.closed_ms - closed.opened_ms) / 1000,
                },
            )
        return closed is not None


class RedisCircuitStore:
    """Circuits in Redis: the ``circuits`` hash, each portal's error window and probe slot, its pause."""

    def __init__(self, redis: Redis, keys: Keys, pauses: PauseStore, counters: Counters | None = None) -> None:
        self._redis = redis
        self._keys = keys
        self._pauses = pauses
        self._counters = counters

    def count_error(self, portal: str, window_ms: int) -> int:
        """INCR the window's counter; the first failure of a window starts its expiry."""
        key = self._keys.circuit_errors(portal)
        with store_errors():
            count = int(self._redis.incr(key))
            if count == 1:
                self._redis.pexpire(key, window_ms)
        return count

    def open(self, circuit: Circuit, probe_ms: int) -> bool:
        """Pause the portal's circuit field first (the one writer wins), then record it and hold the probe."""
        if not self._pauses.pause("circuit", circuit.portal, circuit.reason):
            return False
        with store_errors():
            pipe = self._redis.pipeline(transaction=True)
            pipe.hset(self._keys.circuits, circuit.portal, circuit.to_json())
            pipe.set(self._keys.circuit_probe(circuit.portal), "1", px=probe_ms)
            pipe.delete(self._keys.circuit_errors(circuit.portal))
            pipe.execute()
        self._count("opened", circuit.reason)
        return True

    def take_probe(self, portal: str, probe_ms: int) -> int:
        """SET NX the probe slot; else its remaining time."""
        key = self._keys.circuit_probe(portal)
        with store_errors():
            if self._redis.set(key, "1", nx=True, px=probe_ms):
                return 0
            return max(int(self._redis.pttl(key)), 1)

    def close(self, portal: str, now_ms: int) -> Circuit | None:
        """Resume the circuit's pause (waking the lanes); record the close if this call lifted it."""
        if not self._pauses.resume("circuit", portal):
            return None
        with store_errors():
            raw = self._redis.hget(self._keys.circuits, portal)
            opened = Circuit.from_json(text(raw)) if raw is not None else None
            closed = replace(opened, state="closed", closed_ms=now_ms) if opened else None
            pipe = self._redis.pipeline(transaction=True)
            if closed is not None:
                pipe.hset(self._keys.circuits, portal, closed.to_json())
            pipe.delete(self._keys.circuit_probe(portal), self._keys.circuit_errors(portal))
            pipe.execute()
        self._count("closed", closed.reason if closed else "")
        return closed or Circuit(portal=portal, state="closed", reason="", message="", opened_ms=0, closed_ms=now_ms)

    def circuits(self) -> list[Circuit]:
        """Every recorded circuit (fields that are not a portal's record are skipped)."""
        return read_circuits(self._redis, self._keys)

    def get(self, portal: str) -> Circuit | None:
        """HGET the portal's record (an unreadable one is None)."""
        with store_errors():
            raw = self._redis.hget(self._keys.circuits, portal)
        try:
            return Circuit.from_json(text(raw)) if raw is not None else None
        except (ValueError, KeyError):
            return None

    def reopen(self, circuit: Circuit, probe_ms: int) -> bool:
        """Replace an open record of another reason, and the reason its pause shows; restart the probe slot."""
        current = self.get(circuit.portal)
        if current is None or not current.is_open or current.reason == circuit.reason:
            return False
        pause = json.dumps({"since_ms": circuit.opened_ms, "reason": circuit.reason})
        with store_errors():
            pipe = self._redis.pipeline(transaction=True)
            pipe.hset(self._keys.circuits, circuit.portal, circuit.to_json())
            pipe.hset(self._keys.paused, pause_field("circuit", circuit.portal), pause)
            pipe.set(self._keys.circuit_probe(circuit.portal), "1", px=probe_ms)
            pipe.execute()
        self._count("opened", circuit.reason)
        return True

    def _count(self, event: str, reason: str) -> None:
        if self._counters is not None:
            self._counters.apply([self._counters.op("circuit_changes", event=event, reason=reason)])


def read_circuits(redis: Redis, keys: Keys) -> list[Circuit]:
    """Every portal's circuit that ever opened, by portal (for the dashboard, /metrics and alerts)."""
    with store_errors():
        raw = redis.hgetall(keys.circuits)
    found = []
    for field, value in raw.items():
        if ":" in text(field):
            continue  # the alerts' bookkeeping (``<portal>:alerted``)
        try:
            found.append(Circuit.from_json(text(value)))
        except (ValueError, KeyError):
            continue
    return sorted(found, key=lambda c: c.portal)


class MemoryCircuitStore:
    """Circuits in memory, pausing through a :class:`MemoryPauses`: the unit tests' twin."""

    def __init__(self, pauses: MemoryPauses, clock: Callable[[], float] = time.time) -> None:
        self._pauses = pauses
        self._clock = clock
        self._errors: dict[str, tuple[int, int]] = {}
        self._probe_until: dict[str, int] = {}
        self.records: dict[str, Circuit] = {}
        self.events: list[tuple[str, str]] = []

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def count_error(self, portal: str, window_ms: int) -> int:
        """Count in a fixed window, as the Redis counter with its expiry does."""
        count, ends = self._errors.get(portal, (0, 0))
        if ends <= self._now_ms():
            count, ends = 0, self._now_ms() + window_ms
        self._errors[portal] = (count + 1, ends)
        return count + 1

    def open(self, circuit: Circuit, probe_ms: int) -> bool:
        """Open unless open."""
        if not self._pauses.pause("circuit", circuit.portal, circuit.reason):
            return False
        self.records[circuit.portal] = circuit
        self._probe_until[circuit.portal] = self._now_ms() + probe_ms
        self._errors.pop(circuit.portal, None)
        self.events.append(("opened", circuit.reason))
        return True

    def take_probe(self, portal: str, probe_ms: int) -> int:
        """0 and hold the slot, or the time left."""
        left = self._probe_until.get(portal, 0) - self._now_ms()
        if left > 0:
            return left
        self._probe_until[portal] = self._now_ms() + probe_ms
        return 0

    def close(self, portal: str, now_ms: int) -> Circuit | None:
        """Close if open."""
        if not self._pauses.resume("circuit", portal):
            return None
        closed = replace(self.records[portal], state="closed", closed_ms=now_ms)
        self.records[portal] = closed
        self._probe_until.pop(portal, None)
        self.events.append(("closed", closed.reason))
        return closed

    def circuits(self) -> list[Circuit]:
        """Every recorded circuit."""
        return sorted(self.records.values(), key=lambda c: c.portal)

    def get(self, portal: str) -> Circuit | None:
        """The portal's record."""
        return self.records.get(portal)

    def reopen(self, circuit: Circuit, probe_ms: int) -> bool:
        """Replace an open record of another reason."""
        current = self.records.get(circuit.portal)
        if current is None or not current.is_open or current.reason == circuit.reason:
            return False
        self.records[circuit.portal] = circuit
        self._probe_until[circuit.portal] = self._now_ms() + probe_ms
        self.events.append(("opened", circuit.reason))
        return True
