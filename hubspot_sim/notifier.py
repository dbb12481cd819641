"""Where changes go: signed pushes to the apps whose webhook settings cover them, and the webhooks journal.

Pushes (docs/reference/hubspot.md §4): an app registered with its client secret (``POST /_sim/apps``),
with webhook settings whose ``targetUrl`` is a loopback URL and an active subscription covering a change,
gets one event per covering subscription, in batches of at most 100, through the webhook sender (HubSpot's
signatures and retry schedule, the schedule multiplied by ``webhook_retry_scale``). Portals where the app
was uninstalled get nothing.

The journal (§9.1): a change is written only where a journal subscription of its portal covers it (an
app-lifecycle event: where the app subscribed to it, or always under ``journal_auth: any``). Manual
deliveries (``POST /_sim/webhooks/deliver``) are all journalled under ``journal_auth: any`` (as before
journal subscriptions existed), and only the covered ones, matched by ``subscriptionType``, under ``app``.
Thread-safe: the parts it drives hold their own locks, and its counter its own.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from hubspot_sim.changes import ACTIONS, Change
from hubspot_sim.config import Config
from hubspot_sim.journal import Journal, JournalEntry
from hubspot_sim.journal_subscriptions import LIFECYCLE_ACTIONS, JournalSubscriptions
from hubspot_sim.oauth import App
from hubspot_sim.object_types import NAME_TO_TYPE_ID, SINGULAR_TO_NAME
from hubspot_sim.webhook_sender import MAX_EVENTS, DeliveryRequest, WebhookSender, is_loopback_url
from hubspot_sim.webhook_settings import WebhookApps


class Notifier:
    """Turns changes into pushes and journal entries (see the module docstring)."""

    def __init__(
        self,
        *,
        apps: WebhookApps,
        journal: Journal,
        subscriptions: JournalSubscriptions,
        sender: WebhookSender,
        config: Callable[[], Config],
    ) -> None:
        self._apps = apps
        self._journal = journal
        self._subscriptions = subscriptions
        self._sender = sender
        self._config = config
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def clear(self) -> None:
        """Start event ids over (with the rest of the simulator's state)."""
        with self._lock:
            self._ids = itertools.count(1)

    def _next_ids(self, n: int) -> list[int]:
        with self._lock:
            return [next(self._ids) for _ in range(n)]

    def notify(self, changes: Sequence[Change], apps: Sequence[App], uninstalled: Iterable[int]) -> list[str]:
        """Push ``changes`` to the apps covering them and write them to the journal; returns the delivery ids."""
        if not changes:
            return []
        gone = set(uninstalled)
        config = self._config()
        delivery_ids = []
        for app in apps:
            url, subscriptions = self._apps.target(app.app_id)
            if url is None or not subscriptions or not is_loopback_url(url):
                continue  # the simulator never sends off the machine
            wanted = [
                (change, sub)
                for change in changes
                if change.portal_id not in gone
                for sub in subscriptions
                if change.covers(sub.event_type, sub.object_type_id)
            ]
            events = [
                change.push_event(event_id, app.app_id, sub.subscription_id, sub.event_type)
                for (change, sub), event_id in zip(wanted, self._next_ids(len(wanted)), strict=True)
            ]
            for start in range(0, len(events), MAX_EVENTS):
                request = DeliveryRequest(
                    url, app.client_secret, tuple(events[start : start + MAX_EVENTS]), config.webhook_retry_scale
                )
                delivery_ids.append(self._sender.deliver(request, journal=False))
        self._write_journal(changes)
        return delivery_ids

    def _write_journal(self, changes: Sequence[Change]) -> list[JournalEntry]:
        events = []
        for change in changes:
            to_type_id = change.fields.get("toObjectTypeId") if change.kind == "associationChange" else None
            covering = self._subscriptions.covering(change.portal_id, change.type_id, change.action, to_type_id)
            if covering:
                events.append((change, covering[0].subscription_id))
        if not events:
            return []
        ids = self._next_ids(len(events))
        return self._journal.write([c.journal_event(i, s) for (c, s), i in zip(events, ids, strict=True)])

    def delivered(self, events: Sequence[Mapping[str, Any]]) -> list[JournalEntry]:
        """Journal a manual delivery's events: all of them, or (``journal_auth: app``) the covered ones."""
        if self._config().journal_auth == "any":
            return self._journal.write(events)
        return self._journal.write([e for e in events if self._covered(e)])

    def _covered(self, event: Mapping[str, Any]) -> bool:
        subject, _, kind = str(event.get("subscriptionType", "")).partition(".")
        portal = event.get("portalId")
        if not isinstance(portal, int) or isinstance(portal, bool):
            return False
        if subject == "object":
            type_id = str(event.get("objectTypeId", ""))
        else:
            type_id = NAME_TO_TYPE_ID.get(SINGULAR_TO_NAME.get(subject, ""), "")
        if kind == "associationChange":
            action = "ASSOCIATION_REMOVED" if event.get("associationRemoved") else "ASSOCIATION_ADDED"
        else:
            action = ACTIONS.get(kind, kind.upper())
        return bool(type_id) and bool(self._subscriptions.covering(portal, type_id, action))

    def lifecycle(self, portal_id: int, event_type_id: str, app_ids: Sequence[str], occurred_at: float) -> int:
        """Journal an app install or uninstall of ``portal_id`` (with ``journal_auth: app``, where subscribed).

        Returns how many events were written (one per app).
        """
        action = LIFECYCLE_ACTIONS[event_type_id]
        config = self._config()
        covered = (
            bool(self._subscriptions.covering(portal_id, event_type_id, action))
            if config.journal_auth == "app"
            else True
        )
        if not covered:
            return 0
        ids = self._next_ids(max(1, len(app_ids)))
        events = [
            {
                "eventId": event_id,
                "portalId": portal_id,
                "occurredAt": int(occurred_at * 1000),
                "subscriptionType": "app.lifecycle",
                "eventTypeId": event_type_id,
                "action": action,
                **({"appId": int(app_id)} if app_id else {}),
            }
            for event_id, app_id in zip(ids, list(app_ids) or [""], strict=True)
        ]
        self._journal.write(events)
        return len(events)
