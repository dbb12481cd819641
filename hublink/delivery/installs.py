"""Installs: which portals the app is uninstalled from, and the journal's app-lifecycle events applied.

A portal is *uninstalled* while its circuit is open with the reason ``app_uninstalled``
(``hublink.delivery.circuit``): HubSpot refused its refresh token as ``BAD_REFRESH_TOKEN``, or the
Webhooks Journal carried the app-lifecycle ``APP_UNINSTALL`` event for it (docs/reference/hubspot.md §9.6).
:class:`Installs` applies those events (the journal poller calls :meth:`Installs.lifecycle`), and
:func:`uninstalled_portals` lists the uninstalled portals for the API, the dashboard and ``/metrics``.

Keys owned: none of its own (the portal's circuit, through :class:`~hublink.delivery.circuit.Breaker`, and
its cached access token, through the credentials). Fails closed: raises StoreUnavailableError without Redis.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from redis import Redis

from hublink.delivery.circuit import Breaker, RedisCircuitStore, read_circuits
from hublink.delivery.credentials import CredentialProvider, forget_access_token
from hublink.delivery.pauses import PauseStore
from hublink.store.clock import now_ms
from hublink.store.keys import Keys

log = logging.getLogger("hublink.delivery.installs")

#: The app-lifecycle actions HubSpot's journal carries (``subscriptionType`` ``app.lifecycle``).
APP_UNINSTALL = "APP_UNINSTALL"
APP_INSTALL = "APP_INSTALL"


@dataclass(frozen=True, slots=True)
class UninstalledPortal:
    """One portal the app is uninstalled from: since when, what said so, and when its work is dead-lettered."""

    portal: str
    since_ms: int
    message: str
    hold_ends_ms: int

    def as_json(self) -> dict[str, object]:
        """The JSON form the API shows."""
        return {
            "portal": self.portal,
            "since_ms": self.since_ms,
            "message": self.message,
            "hold_ends_ms": self.hold_ends_ms,
        }


def uninstalled_portals(redis: Redis, keys: Keys, *, hold_h: float) -> list[UninstalledPortal]:
    """Every portal the app is uninstalled from now, by portal (``hold_h``: HUBLINK_UNINSTALLED_HOLD_H)."""
    return [
        UninstalledPortal(c.portal, c.opened_ms, c.message, c.opened_ms + int(hold_h * 3_600_000))
        for c in read_circuits(redis, keys)
        if c.is_uninstalled
    ]


def resume_uninstalled(redis: Redis, keys: Keys, pauses: PauseStore, portal: str) -> bool:
    """An operator says the app is installed again: forget the portal's cached token (and the refusal) and
    close its ``app_uninstalled`` circuit, waking its lanes; True if it was uninstalled. A refresh HubSpot
    still refuses marks it uninstalled again (and its hold starts again)."""
    store = RedisCircuitStore(redis, keys, pauses)
    circuit = store.get(portal)
    if circuit is None or not circuit.is_uninstalled:
        return False
    forget_access_token(redis, keys, portal)
    resumed = store.close(portal, now_ms()) is not None
    if resumed:
        log.warning("uninstalled portal resumed by an operator", extra={"portal_id": portal})
    return resumed


class Installs:
    """Applies the journal's app-lifecycle events to the portal's circuit and cached token."""

    def __init__(self, breaker: Breaker, credentials: CredentialProvider) -> None:
        self._breaker = breaker
        self._credentials = credentials

    def lifecycle(self, portal: str, action: str) -> None:
        """``APP_UNINSTALL``: the portal is uninstalled (one alert, hourly probes, the hold starts), and its
        cached access token forgotten; ``APP_INSTALL``: an uninstalled portal resumes (its next call refreshes
        the token, and reopens the circuit if HubSpot still refuses it). Other actions are ignored."""
        if action == APP_UNINSTALL:
            self._credentials.invalidate(portal)
            if self._breaker.uninstalled(portal, "the journal's app-lifecycle event APP_UNINSTALL"):
                log.warning("app uninstalled from the portal (journal)", extra={"portal_id": portal})
        elif action == APP_INSTALL and self._breaker.uninstall(portal) is not None:
            self._credentials.invalidate(portal)
            if self._breaker.answered(portal):
                log.warning("app installed again in the portal (journal): resumed", extra={"portal_id": portal})
