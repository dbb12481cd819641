"""Alerts: a JSON POST (Slack-compatible ``text``) when dead letters appear, the error rate climbs, or a
portal's circuit opens or closes.

Every worker's dispatcher thread calls :meth:`Alerter.check` about once a second; Redis decides which of
them sends (``SET NX`` with the interval as TTL), so operators get at most one alert of a kind per
``HUBLINK_ALERT_INTERVAL_S``, carrying the count of everything since the last one. Sending happens in
that thread, never inside a job, and a failing webhook is logged and retried at the next interval: an
alert can never break a worker.

Circuits (``hublink.delivery.circuit``) are alerted once per change: one alert when a portal's circuit
opens (the portal, why, what to do, and a link to the dashboard), one when it closes; the change last
alerted is kept beside the circuit (``circuits`` field ``<portal>:alerted``), and a failed send is tried
again after the interval.

Keys owned: ``alert:<kind>`` (interval lock), ``alert:dead_letters:seen`` (the dead-letter count last
reported; new dead letters are read from the ``associations_dead_lettered`` metric), the ``<portal>:alerted``
fields of ``circuits``.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

import requests
from redis import Redis

from hublink.delivery.circuit import Circuit, read_circuits
from hublink.ops import pagerduty
from hublink.ops.metrics import Metrics
from hublink.store.connections import store_errors
from hublink.store.connections import text as as_text
from hublink.store.keys import Keys

log = logging.getLogger("hublink.alerts")

#: The error rate is judged over this many recent minutes, and only above this many attempts.
ERROR_RATE_WINDOW_MIN = 5
ERROR_RATE_MIN_ATTEMPTS = 20
#: A circuit change that was alerted is not alerted again; the lock only keeps two workers from both sending.
CIRCUIT_ALERT_LOCK_MS = 7 * 86_400_000


class Poster(Protocol):
    """Sends one alert body; raises on failure."""

    def __call__(self, url: str, body: dict[str, object]) -> None:
        """Send ``body`` to ``url``."""
        ...


def post_json(url: str, body: dict[str, object]) -> None:
    """POST ``body`` as JSON with a short timeout; raise for any non-2xx."""
    response = requests.post(url, json=body, timeout=(3.05, 5), headers={"User-Agent": "HubLink alerts"})
    response.raise_for_status()


class Alerter:
    """Decides when to alert and sends at most one alert per kind per interval."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        metrics: Metrics,
        *,
        url: str | None,
        interval_s: float,
        error_rate: float,
        poster: Poster = post_json,
        public_url: str | None = None,
        pagerduty_key: str | None = None,
        pagerduty_url: str = pagerduty.DEFAULT_URL,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._metrics = metrics
        self._url = url
        self._interval_ms = max(int(interval_s * 1000), 1)
        self._error_rate = error_rate
        self._poster = poster
        #: Where the dashboard is (``HUBLINK_PUBLIC_URL`` + ``/admin``); alerts link to it.
        self.dashboard_url = f"{(public_url or '').rstrip('/')}/admin"
        self._pagerduty_key = pagerduty_key
        self._pagerduty_url = pagerduty_url

    @property
    def enabled(self) -> bool:
        """True when an alert webhook or PagerDuty is configured."""
        return bool(self._url or self._pagerduty_key)

    def check(self, now_s: float | None = None) -> list[str]:
        """Send whatever alerts are due; return their kinds. Never raises for a failing webhook."""
        if not self.enabled:
            return []
        sent = self._webhook_alerts(time.time() if now_s is None else now_s) if self._url else []
        sent += self._circuit_alerts()
        return sent

    def _webhook_alerts(self, now_s: float) -> list[str]:
        """Dead letters and the error rate, to the webhook only (they are counts, not incidents to page for)."""
        sent = []
        total = sum(self._metrics.read("associations_dead_lettered").values())
        seen_key = self._keys.alert_dead_letters_seen
        with store_errors():
            # First run: history is not news. Later: everything dead-lettered since the last alert.
            self._redis.set(seen_key, total, nx=True)
            seen = int(self._redis.get(seen_key) or 0)
        if total > seen and self._claim("dead_letters"):
            new = total - seen
            text = (
                f":warning: HubLink: {new} association(s) were dead-lettered since the last alert. "
                f"Inspect them at {self.dashboard_url}/dead-letters or with `hublink dead-letters list`."
            )
            if self._send("dead_letters", text, {"dead_letters": new}):
                with store_errors():
                    self._redis.set(seen_key, total)
                sent.append("dead_letters")
        rate, attempts = self._recent_error_rate(now_s)
        if attempts >= ERROR_RATE_MIN_ATTEMPTS and rate > self._error_rate and self._claim("error_rate"):
            text = (
                f":rotating_light: HubLink: {rate:.0%} of the last {attempts} HubSpot attempts failed "
                f"(threshold {self._error_rate:.0%}, last {ERROR_RATE_WINDOW_MIN} minutes). "
                f"Dashboard: {self.dashboard_url}"
            )
            if self._send("error_rate", text, {"error_rate": round(rate, 4), "attempts": attempts}):
                sent.append("error_rate")
        return sent

    def _circuit_alerts(self) -> list[str]:
        """One alert per circuit change and target not yet alerted (each worker may try; one sends)."""
        sent: list[str] = []
        circuits = read_circuits(self._redis, self._keys)
        targets = [name for name, on in (("alerted", self._url), ("paged", self._pagerduty_key)) if on]
        if not circuits or not targets:
            return sent
        fields = [f"{c.portal}:{target}" for c in circuits for target in targets]
        with store_errors():
            done = dict(zip(fields, self._redis.hmget(self._keys.circuits, fields), strict=True))
        for circuit in circuits:
            marker = f"{circuit.state}-{circuit.opened_ms}"
            for target in targets:
                field = f"{circuit.portal}:{target}"
                if done[field] is not None and as_text(done[field]) == marker:
                    continue
                lock = self._keys.alert(f"circuit-{target}-{circuit.portal}-{marker}")
                with store_errors():
                    if not self._redis.set(lock, "1", nx=True, px=CIRCUIT_ALERT_LOCK_MS):
                        continue
                kind = "circuit_open" if circuit.is_open else "circuit_closed"
                if target == "paged":
                    ok = self._page(circuit)
                    kind += "_pagerduty"
                else:
                    ok = self._send(kind, self.circuit_text(circuit), self.circuit_fields(circuit))
                if ok:
                    with store_errors():
                        self._redis.hset(self._keys.circuits, field, marker)
                    sent.append(kind)
                else:
                    with store_errors():
                        self._redis.pexpire(lock, self._interval_ms)  # try again after the interval
        return sent

    def _page(self, circuit: Circuit) -> bool:
        """Trigger (open) or resolve (closed) the portal's PagerDuty incident; False when it could not be sent."""
        assert self._pagerduty_key is not None
        kind = "circuit_open_pagerduty" if circuit.is_open else "circuit_closed_pagerduty"
        if circuit.is_open:
            body = pagerduty.trigger(
                self._pagerduty_key,
                portal=circuit.portal,
                reason=circuit.reason,
                summary=self.circuit_text(circuit).removeprefix(":rotating_light: "),
                dashboard_url=self.dashboard_url,
                details={"message": circuit.message, "advice": circuit.advice, "opened_ms": circuit.opened_ms},
            )
        else:
            body = pagerduty.resolve(self._pagerduty_key, portal=circuit.portal)
        try:
            self._poster(self._pagerduty_url, body)
        except Exception as exc:  # noqa: BLE001 - an alert must never break a worker, whatever went wrong
            log.warning("pagerduty event failed", extra={"kind": kind, "error": type(exc).__name__})
            self._metrics.apply([self._metrics.op("alerts_sent", kind=kind, outcome="failed")])
            return False
        self._metrics.apply([self._metrics.op("alerts_sent", kind=kind, outcome="sent")])
        log.info("pagerduty event sent", extra={"kind": kind, "portal_id": circuit.portal})
        return True

    def circuit_fields(self, circuit: Circuit) -> dict[str, object]:
        """The machine-readable part of a circuit alert."""
        return {
            "portal": circuit.portal,
            "reason": circuit.reason,
            "state": circuit.state,
            "dashboard": self.dashboard_url,
        }

    def circuit_text(self, circuit: Circuit) -> str:
        """What an operator reads: the portal, the reason, what to do, and the dashboard's address."""
        portal = "single-portal mode (_)" if circuit.portal == "_" else f"portal {circuit.portal}"
        if circuit.is_uninstalled:
            # Sent once, as every circuit change: the hourly probes that follow are not news.
            return (
                f":rotating_light: HubLink: the app was uninstalled from {portal} ({circuit.message}). "
                f"Nothing is called for it and its work waits for a reinstall, then is dead-lettered as "
                f"app_uninstalled. What to do: {circuit.advice} Dashboard: {self.dashboard_url}"
            )
        if circuit.is_open:
            return (
                f":rotating_light: HubLink stopped calling HubSpot for {portal}: its circuit is open "
                f"({circuit.reason}). {circuit.message}. Its work waits in its lanes and nothing is "
                f"dead-lettered for this. What to do: {circuit.advice} Dashboard: {self.dashboard_url}"
            )
        open_s = max(circuit.closed_ms - circuit.opened_ms, 0) / 1000
        return (
            f":white_check_mark: HubLink calls HubSpot for {portal} again: its circuit closed after {open_s:.0f} s "
            f"open ({circuit.reason}); the waiting work is being sent. Dashboard: {self.dashboard_url}"
        )

    def _recent_error_rate(self, now_s: float) -> tuple[float, int]:
        rows = self._metrics.series(now_s, ERROR_RATE_WINDOW_MIN)
        failed = sum(r["failed"] for r in rows)
        attempts = failed + sum(r["linked"] for r in rows)
        return (failed / attempts if attempts else 0.0), attempts

    def _claim(self, kind: str) -> bool:
        with store_errors():
            return bool(self._redis.set(self._keys.alert(kind), "1", nx=True, px=self._interval_ms))

    def _send(self, kind: str, text: str, counts: dict[str, object]) -> bool:
        assert self._url is not None
        try:
            self._poster(self._url, {"text": text, "kind": kind, **counts})
        except Exception as exc:  # noqa: BLE001 - an alert must never break a worker, whatever went wrong
            log.warning("alert webhook failed", extra={"kind": kind, "error": type(exc).__name__})
            self._metrics.apply([self._metrics.op("alerts_sent", kind=kind, outcome="failed")])
            return False
        self._metrics.apply([self._metrics.op("alerts_sent", kind=kind, outcome="sent")])
        log.info("alert sent", extra={"kind": kind})
        return True
